"""Option types every command shares, so a bad value gets the same sentence everywhere."""

from __future__ import annotations

import math
from typing import Any

import click

__all__ = ["FiniteFloatRange"]


class FiniteFloatRange(click.FloatRange):
    """A number of seconds (or a threshold): finite, never negative, within a range.

    click's FloatRange lets `nan` through: it only compares, and every
    comparison with nan is false, so `--interval nan` reached the sampler. It
    also takes `inf` where there is no upper bound. Every float option of every
    command uses this type instead.
    """

    name = "number"

    def __init__(
        self,
        min: float = 0.0,  # click's own parameter names
        max: float | None = None,
        *,
        min_open: bool = False,
        max_open: bool = False,
    ) -> None:
        if min < 0:
            raise ValueError("a negative lower bound makes no sense for seconds or thresholds")
        super().__init__(min, max, min_open=min_open, max_open=max_open, clamp=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return super().convert(value, param, ctx)  # click's own "is not a valid float"
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(value, param, ctx)
