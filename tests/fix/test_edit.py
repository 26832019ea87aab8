"""apply_plans: rebuilding only the nodes above the edits gives what a walk of the whole
module gives, nested edits included."""

from __future__ import annotations

import libcst as cst
from tests.fix.nodes import calls_in

from hangdoctor.fix.context import indexed
from hangdoctor.fix.edit import Plan, apply_plans
from hangdoctor.fix.model import FixSite

SOURCE = '''import time


class Store:
    """Docs."""

    def sync(self):
        return open("x").read()

    async def load(self, key):
        def inner():
            return time.sleep(1)

        data = [open(k).read() for k in key]  # a comment
        return await self.other(time.sleep(2), inner())


async def main():
    time.sleep(3)
'''


def _plans(module: cst.Module) -> list[Plan]:
    """One plan per call: renamed `f` -> `f_`, and awaited when it is a `time.sleep`;
    calls inside other calls are edited too, so edits nest."""

    def rename(node: cst.Call) -> cst.BaseExpression:
        func = node.func
        if isinstance(func, cst.Name):
            return node.with_changes(func=func.with_changes(value=func.value + "_"))
        if isinstance(func, cst.Attribute):
            new = func.with_changes(attr=func.attr.with_changes(value=func.attr.value + "_"))
            return node.with_changes(func=new)
        return node

    return [
        Plan(FixSite("HD205", i + 1, 0), i + 1, "rename", False, {call: rename})
        for i, call in enumerate(calls_in(module))
    ]


def test_only_the_paths_to_the_edits_give_the_same_code() -> None:
    module = cst.parse_module(SOURCE)
    plans = _plans(module)
    assert len(plans) == 9
    whole = apply_plans(module, plans)
    with indexed(module, SOURCE) as index:
        along = apply_plans(module, plans, index.ancestors)
        for some in (plans[:1], plans[2:5], plans[-1:]):
            assert apply_plans(module, some, index.ancestors) == apply_plans(module, some)
    assert along == whole
    assert "self.other_(time.sleep_(2), inner_())" in whole
    assert "open_(k).read_()" in whole and "# a comment" in whole


def test_no_plans_keep_the_module() -> None:
    module = cst.parse_module(SOURCE)
    with indexed(module, SOURCE) as index:
        assert apply_plans(module, [], index.ancestors) == SOURCE
