"""What a catalog entry is: one cause, written down once.

A `Rule` carries the prose (`explain`, `docs/rules/`, reports) and the matchers:
a stack signature for live and watchdog captures (`frames`), and the callables
that identify it at a source line when the wait happens in C and leaves no
Python frame (`calls`, `methods`). The static scan reuses `calls` (or
`scan_calls` where the live list is too broad for code review) but not
`methods`: on a live stack a method name at the blocked line is strong
evidence, in source code `.get()` is usually a dict. The scan reports a method
on an object of unknown type only by the names in `scan_methods`.
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
    # seen in the tasks of a running process (await chains, waits, holders), not a thread
    # stack: the runtime on any Python, `diagnose` from outside on CPython 3.14+
    tasks: bool = False
    static: bool = True  # can be found by `scan`
    # the static scan (docs/scan.md): a name "pkg.Type.*" matches every method of the type
    scan_calls: tuple[str, ...] | None = None  # what `scan` reports; None: the same as `calls`
    scan_methods: tuple[str, ...] = ()  # method names distinctive on an object of unknown type
    sinks: tuple[str, ...] = ()  # callables that stream an async generator to a client
    guards: tuple[str, ...] = ()  # names (substrings) whose use shows the code handles the cause
    severity: str = "error"  # "error" or "warning": SARIF level, annotation kind
    effect: str = ""  # ends a scan message "`requests.get()` ...": what the call does to the loop
    family: str = ""  # set by the registry from the module that defines it

    @property
    def title(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def static_calls(self) -> tuple[str, ...]:
        """The fully qualified callables the static scan reports for this cause."""
        return self.calls if self.scan_calls is None else self.scan_calls
