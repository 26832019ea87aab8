"""The catalog as the scan reads it: which qualified callable or method name is which code.

Built once per run from `hangdoctor.catalog` (the rules' `static_calls`,
`scan_methods`, `sinks`, `guards`) and `hangdoctor.catalog.library` (types and
aliases), plus the project's own `blocking-calls` / `blocking-methods`. Its
`fingerprint` is part of every cache key: change the catalog or the config's
blocking functions and cached per-file facts are recomputed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from hangdoctor.catalog import all_rules
from hangdoctor.catalog.library import (
    ALIASES,
    CANCELLATION,
    NONBLOCKING_FLAGS,
    NONBLOCKING_KEYWORDS,
    NONBLOCKING_SETUP,
    QUIET_METHODS,
    RETURNS,
    UNKNOWN_RECEIVER_RETURNS,
)

__all__ = ["PROPAGATING", "Knowledge", "build_knowledge", "canonical"]

# codes that a sync helper passes on to the async code that calls it
PROPAGATING = frozenset(
    {"HD101", "HD102", "HD201", "HD202", "HD203", "HD204", "HD205", "HD206", "HD207", "HD501"}
)


@lru_cache(maxsize=65536)
def canonical(name: str) -> str:
    """`name` with a known alias of it, or of its longest aliased prefix, replaced."""
    if name in ALIASES:
        return ALIASES[name]
    head = name.rpartition(".")[0]
    while head:
        if head in ALIASES:
            return f"{ALIASES[head]}.{name[len(head) + 1 :]}"
        head = head.rpartition(".")[0]
    return name


@dataclass(frozen=True)
class Knowledge:
    """Lookup tables for one scan."""

    calls: Mapping[str, str]  # canonical qualified callable -> code
    types: Mapping[str, str]  # "redis.Redis" -> code: every method of the type blocks
    methods: Mapping[str, str]  # method name, on an object of unknown type -> code
    sinks: frozenset[str]  # callables that stream an async generator to a client
    guards: tuple[str, ...]  # lower-case substrings that show disconnect handling
    cancel_names: frozenset[str] = CANCELLATION
    fingerprint: str = ""

    def call_code(self, name: str) -> str | None:
        """The code of a call to the qualified callable `name` (canonical), or None."""
        code = self.calls.get(name)
        if code is not None:
            return code
        owner = name.rpartition(".")[0]
        if not owner or name in QUIET_METHODS:  # `s3.generate_presigned_url()` sends nothing
            return None
        return self.types.get(owner)

    def returns(self, name: str) -> str | None:
        """The type a call to `name` returns when the name alone does not say it."""
        return RETURNS.get(name)

    @staticmethod
    def unknown_receiver_returns(method: str) -> str | None:
        return UNKNOWN_RECEIVER_RETURNS.get(method)

    @staticmethod
    def nonblocking_keywords() -> Mapping[str, object]:
        return NONBLOCKING_KEYWORDS

    @staticmethod
    def nonblocking_flags() -> frozenset[str]:
        return NONBLOCKING_FLAGS

    @staticmethod
    def nonblocking_setup() -> Mapping[str, object]:
        return NONBLOCKING_SETUP


def build_knowledge(
    extra_calls: Mapping[str, str] | None = None,
    extra_methods: Mapping[str, str] | None = None,
) -> Knowledge:
    """Tables from the catalog plus the project's extra blocking calls and method names."""
    calls: dict[str, str] = {}
    types: dict[str, str] = {}
    methods: dict[str, str] = {}
    sinks: set[str] = set()
    guards: list[str] = []
    for rule in all_rules():
        if not rule.static:
            continue
        for name in rule.static_calls:
            if name.endswith(".*"):
                types.setdefault(canonical(name[:-2]), rule.code)
            else:
                calls.setdefault(canonical(name), rule.code)
        for method in rule.scan_methods:
            methods.setdefault(method, rule.code)
        sinks.update(canonical(s) for s in rule.sinks)
        guards.extend(g.lower() for g in rule.guards)
    for name, code in (extra_calls or {}).items():
        if name.endswith(".*"):
            types[canonical(name[:-2])] = code
        else:
            calls[canonical(name)] = code
    methods.update(extra_methods or {})
    payload = json.dumps(
        [
            sorted(calls.items()),
            sorted(types.items()),
            sorted(methods.items()),
            sorted(sinks),
            guards,
            sorted(RETURNS.items()),
            sorted(ALIASES.items()),
            sorted(UNKNOWN_RECEIVER_RETURNS.items()),
            sorted(CANCELLATION),
            sorted(QUIET_METHODS),
            sorted(NONBLOCKING_FLAGS),
            sorted((k, repr(v)) for k, v in NONBLOCKING_SETUP.items()),
            sorted((k, repr(v)) for k, v in NONBLOCKING_KEYWORDS.items()),
        ]
    )
    return Knowledge(
        calls=MappingProxyType(calls),
        types=MappingProxyType(types),
        methods=MappingProxyType(methods),
        sinks=frozenset(sinks),
        guards=tuple(dict.fromkeys(guards)),
        fingerprint=hashlib.sha256(payload.encode()).hexdigest()[:16],
    )
