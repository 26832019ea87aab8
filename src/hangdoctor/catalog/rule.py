"""What a catalog entry is: one cause, written down once.

A `Rule` carries the prose (`explain`, `docs/rules/`, reports) and the matchers:
a stack signature for live and watchdog captures (`frames`), and the callables
that identify it at a source line when the wait happens in C and leaves no
Python frame (`calls`, `methods`). The static scan reuses `calls` and `methods`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FramePattern", "Rule"]


@dataclass(frozen=True)
class FramePattern:
    """A library frame that shows a cause, matched by name over the whole stack.

    `path` is a file path relative to its root (stdlib or site-packages), e.g.
    `concurrent/futures/thread.py`; a trailing `/` matches a whole package
    (`requests/`). `function` is the qualified name py-spy prints
    (`ThreadPoolExecutor.shutdown`); None matches any function in `path`.
    """

    path: str
    function: str | None = None

    def describe(self) -> str:
        return f"{self.function or '*'} ({self.path})"


@dataclass(frozen=True)
class Rule:
    """One cause of a hang: how to recognise it, why it hangs, how to fix it."""

    code: str  # stable: HD101
    name: str  # kebab case, reads as the pattern: executor-shutdown-on-loop
    summary: str  # one line
    why: str  # a paragraph: why the loop stops answering
    bad: str  # example that hangs
    good: str  # the same code, fixed
    fix: str  # the fix in words
    fix_min_python: str | None = None  # lowest Python the fix as written needs
    fix_safety: str = ""  # whether an automatic fix keeps behaviour
    frames: tuple[FramePattern, ...] = ()  # stack signature (any one matches)
    calls: tuple[str, ...] = ()  # fully qualified callables: "time.sleep"
    methods: tuple[str, ...] = ()  # method names on objects of unknown type: "acquire"
    live: bool = True  # can be seen in a capture of a running process
    static: bool = True  # can be found by `scan`
    family: str = ""  # set by the registry from the module that defines it

    @property
    def title(self) -> str:
        return f"{self.code} {self.name}"
