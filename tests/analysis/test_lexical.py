"""What a coroutine holds and awaits at a line, read from its source (analysis.lexical)."""

from __future__ import annotations

import ast
import textwrap

import pytest

from hangdoctor.analysis.lexical import awaited_at, held_at, module_names, simple_expression

SOURCE = textwrap.dedent(
    """\
    import asyncio

    lock_a = asyncio.Lock()
    pool: Pool = make_pool()

    async def transfer(self, other):
        async with lock_a:
            await step()
            async with self.accounts[other].lock, lock_b:
                await asyncio.wait_for(self.done.wait(), 5)
            try:
                await fut
            except KeyError:
                async with pool.acquire() as conn:
                    await conn.fetch()

    async def relock():
        async with lock_a, \\
                lock_b:
            pass
    """
)
TREE = ast.parse(SOURCE)


def _line(text: str) -> int:
    for n, line in enumerate(SOURCE.splitlines(), 1):
        if text in line:
            return n
    raise AssertionError(text)


def test_held_items_are_the_async_withs_around_the_line_outermost_first() -> None:
    held = held_at(TREE, _line("self.done.wait()"))
    assert [h.expr for h in held] == ["lock_a", "self.accounts[other].lock", "lock_b"]
    assert [h.simple for h in held] == [True, False, True]
    assert held[0].line == _line("async with lock_a:")


def test_waiting_on_the_header_holds_only_the_outer_blocks() -> None:
    assert [h.expr for h in held_at(TREE, _line("async with self.accounts"))] == ["lock_a"]


def test_a_multi_line_header_holds_the_items_written_before_the_waited_one() -> None:
    assert [h.expr for h in held_at(TREE, _line("lock_b:"))] == ["lock_a"]


def test_an_except_handler_body_is_inside_its_try() -> None:
    assert [h.expr for h in held_at(TREE, _line("await conn.fetch()"))] == [
        "lock_a",
        "pool.acquire()",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("async with lock_a:", "lock_a"),
        ("self.done.wait(), 5", "self.done"),
        ("await fut", "fut"),
        ("await step()", None),
        ("async with pool.acquire()", "pool"),  # waiting for the pool itself
    ],
)
def test_awaited_is_named_as_the_code_names_it(text: str, expected: str | None) -> None:
    assert awaited_at(TREE, _line(text)) == expected


def test_module_names_and_simple_expressions() -> None:
    assert {"lock_a", "pool"} <= module_names(TREE)
    assert "transfer" not in module_names(TREE)
    assert simple_expression("self.pool.lock")
    assert not simple_expression("locks[0]")
    assert not simple_expression("make()")
    assert not simple_expression("a b")
