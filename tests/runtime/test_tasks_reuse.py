"""Later looks of a TaskTracker reuse what has not moved, and give what a first look gives.

A task still parked on the future it was parked on at the last look keeps its read
(chain, what it waits on, what it holds) and the Task made of it; only what changes
while it waits is read again: counters, its name, who awaits it. Each look here is
checked against `snapshot_tasks` at the same moment, which reads every task anew.
"""

from __future__ import annotations

import asyncio
from dataclasses import FrozenInstanceError, replace
from pathlib import Path
from typing import Any

import pytest

from hangdoctor.model import Frame, Task, WaitKind, WaitsOn
from hangdoctor.runtime import tasks as runtime_tasks
from hangdoctor.runtime.tasks import TaskTracker, snapshot_tasks

HERE = Path(__file__).resolve()


def _line_of(marker: str) -> int:
    for n, text in enumerate(HERE.read_text(encoding="utf-8").splitlines(), start=1):
        if text.rstrip().endswith(f"# tr: {marker}"):
            return n
    raise AssertionError(f"no line marked {marker}")


def test_later_looks_give_what_a_fresh_look_gives_while_counters_names_and_awaiters_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read: list[int] = []  # the tasks the tracker read anew
    real_read = runtime_tasks._read

    def look(tracker: TaskTracker) -> tuple[dict[int, Task], dict[int, Task]]:
        """The tracker's look, and a fresh snapshot of the same moment, by task id."""
        waits = tracker.waits()
        read.clear()
        monkeypatch.setattr(runtime_tasks, "_read", counted)
        mine = tracker.look(None, waits)
        monkeypatch.setattr(runtime_tasks, "_read", real_read)
        return {t.id: t for t in mine}, {t.id: t for t in snapshot_tasks(waiting=waits)}

    def counted(task: asyncio.Task[Any], memo: Any = None) -> Any:
        read.append(id(task))
        return real_read(task, memo)

    async def main() -> None:
        slots = asyncio.BoundedSemaphore(5)
        news = asyncio.Event()
        jobs: asyncio.Queue[int] = asyncio.Queue()

        async def hold() -> None:
            async with slots:
                await news.wait()

        async def take() -> None:
            await jobs.get()

        async def borrow(until: asyncio.Event) -> None:
            async with slots:
                await until.wait()

        async def await_it(task: asyncio.Task[None]) -> None:
            await task

        holders = [asyncio.create_task(hold(), name=f"hold-{i}") for i in range(3)]
        takers = [asyncio.create_task(take(), name=f"take-{i}") for i in range(3)]
        parked = {id(t) for t in holders + takers}
        await asyncio.sleep(0.01)
        tracker = TaskTracker()
        first, fresh = look(tracker)
        assert first == fresh
        assert parked <= set(read)

        # nothing moved: no parked task is read again, each Task the same but for its age
        again, fresh = look(tracker)
        assert again == fresh
        assert not parked & set(read)
        for tid in parked:
            assert again[tid] == replace(first[tid], waiting_s=again[tid].waiting_s)

        # still parked where they were, but: one more slot taken, a task renamed, a task
        # now awaited by another; and a queue item handed to one task (it moves on, ends)
        done = asyncio.Event()
        borrower = asyncio.create_task(borrow(done), name="borrower")
        holders[0].set_name("renamed")
        awaiter = asyncio.create_task(await_it(holders[1]), name="awaiter")
        jobs.put_nowait(1)
        await asyncio.sleep(0.01)
        after, fresh = look(tracker)
        assert after == fresh
        assert id(takers[0]) not in after
        assert not parked & set(read)
        assert after[id(holders[0])].name == "renamed"
        assert after[id(holders[1])].awaited_by == (id(awaiter),)
        for holder in holders:
            (slot,) = after[id(holder)].holds
            assert (slot.type, slot.in_use) == ("asyncio.BoundedSemaphore", 4)

        # the slot given back: the holders' counters follow, still without a read
        done.set()
        await asyncio.sleep(0.01)
        last, fresh = look(tracker)
        assert last == fresh
        assert not parked & set(read)
        for holder in holders:
            (slot,) = last[id(holder)].holds
            assert slot.in_use == 3

        everything = [*holders, *takers, borrower, awaiter]
        for task in everything:
            task.cancel()
        await asyncio.gather(*everything, return_exceptions=True)

    asyncio.run(main())


async def _either(first: bool, a: asyncio.Event, b: asyncio.Event) -> None:
    if first:
        await a.wait()  # tr: first
    else:
        await b.wait()  # tr: second


def test_tasks_of_one_function_parked_at_different_lines_keep_their_own_lines() -> None:
    """What a chain of places means is worked out once per chain: per code *and* line."""

    async def main() -> tuple[Task, ...]:
        a, b = asyncio.Event(), asyncio.Event()
        started = [
            asyncio.create_task(_either(n % 2 == 0, a, b), name=f"either-{n}") for n in range(6)
        ]
        await asyncio.sleep(0.01)
        tracker = TaskTracker()
        tracker.snapshot()
        seen = tracker.snapshot()
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
        return seen

    tasks = [t for t in asyncio.run(main()) if t.name.startswith("either-")]
    assert len(tasks) == 6
    for task in tasks:
        user = next(f for f in task.frames if f.function == "_either")
        first = int(task.name.rsplit("-", 1)[1]) % 2 == 0
        assert user.line == _line_of("first" if first else "second")
        assert task.waits_on is not None and task.waits_on.kind is WaitKind.EVENT
        assert task.waits_on.name == ("a" if first else "b")


def test_a_task_aged_is_the_task_with_its_new_age() -> None:
    task = Task(
        id=1,
        name="t",
        frames=(Frame(function="f", file="app.py", line=3),),
        waits_on=WaitsOn(kind=WaitKind.EVENT, key="0x1"),
        holds=(WaitsOn(kind=WaitKind.LOCK, key="0x2"),),
        awaited_by=(7,),
        waiting_s=1.0,
        loop_tid=9,
    )
    aged = runtime_tasks._aged(task, 2.5)
    expected = replace(task, waiting_s=2.5)
    assert type(aged) is Task
    assert aged == expected and hash(aged) == hash(expected)
    assert task.waiting_s == 1.0  # the last look's Task is left as it was
    assert runtime_tasks._aged(task, 1.0) is task
    with pytest.raises(FrozenInstanceError):
        aged.waiting_s = 3.0  # type: ignore[misc]
