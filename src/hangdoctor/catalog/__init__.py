"""The rule catalog: one entry per cause, with a stable code.

`explain`, `docs/rules/`, the live analysis, the dump analysis, the watchdog and
the static scan all read their knowledge from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from hangdoctor.catalog import blocking, executors, scheduling, streaming, tasks
from hangdoctor.catalog.rule import FramePattern, Rule
from hangdoctor.errors import UnknownRuleError

__all__ = ["RULES", "FramePattern", "Rule", "all_rules", "get_rule"]


def _build() -> Mapping[str, Rule]:
    rules: dict[str, Rule] = {}
    for module in (executors, blocking, streaming, scheduling, tasks):
        family = module.__doc__.split(":", 1)[1].strip() if module.__doc__ else ""
        for rule in module.RULES:
            if rule.code in rules:  # a cause is written down once
                raise RuntimeError(f"duplicate catalog code {rule.code}")
            rules[rule.code] = replace(rule, family=family)
    return MappingProxyType(dict(sorted(rules.items())))


RULES: Mapping[str, Rule] = _build()


def all_rules() -> tuple[Rule, ...]:
    return tuple(RULES.values())


def get_rule(code: str) -> Rule:
    """The entry for `code` (case-insensitive); UnknownRuleError names the known codes."""
    key = code.strip().upper()
    try:
        return RULES[key]
    except KeyError:
        by_name = {r.name: r for r in RULES.values()}
        if code.strip().lower() in by_name:
            return by_name[code.strip().lower()]
        raise UnknownRuleError(
            f"There is no catalog entry {code!r}.",
            "Known codes: " + ", ".join(RULES) + " (run `hangdoctor explain --list`).",
        ) from None
