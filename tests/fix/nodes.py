"""Helpers for tests that look at libcst trees."""

from __future__ import annotations

import libcst as cst


def calls_in(module: cst.Module) -> list[cst.Call]:
    """Every call of the module, in the order a visit meets them."""
    found: list[cst.Call] = []

    class _Calls(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            found.append(node)

    module.visit(_Calls())
    return found
