"""Errors a user can hit, each with one sentence and the exact remedy.

Every `HangdoctorError` is shown as `error: <message>` plus `remedy: <remedy>`
and exit code 2 (could not look); a traceback only with `-v`.
"""

from __future__ import annotations

__all__ = [
    "EXIT_COULD_NOT_LOOK",
    "EXIT_OK",
    "EXIT_PROBLEM",
    "AlreadyTracedError",
    "BadDumpError",
    "CaptureError",
    "HangdoctorError",
    "NoEventLoopError",
    "NoTargetError",
    "NotPermittedError",
    "NotPythonError",
    "ProcessGoneError",
    "ProcessStoppedError",
    "UnknownRuleError",
]

EXIT_OK = 0  # healthy / nothing found
EXIT_PROBLEM = 1  # a problem was found
EXIT_COULD_NOT_LOOK = 2  # usage, permission, target gone, unreadable input


class HangdoctorError(Exception):
    """A failure the user can act on: `message` says what, `remedy` says how."""

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return self.message if not self.remedy else f"{self.message} {self.remedy}"


class ProcessGoneError(HangdoctorError):
    """The PID does not exist (or exited while we looked)."""


class ProcessStoppedError(HangdoctorError):
    """The process is stopped (SIGSTOP, Ctrl-Z): it answers nothing and cannot be sampled."""


class NoEventLoopError(HangdoctorError):
    """The processes looked at run Python but no asyncio or uvloop event loop."""


class NotPythonError(HangdoctorError):
    """The process runs no Python interpreter py-spy can read."""


class NotPermittedError(HangdoctorError):
    """ptrace is refused: other user, no CAP_SYS_PTRACE, ptrace_scope, container."""


class AlreadyTracedError(HangdoctorError):
    """Another tracer (a debugger, another py-spy) is attached."""


class CaptureError(HangdoctorError):
    """py-spy failed or timed out for another reason."""


class NoTargetError(HangdoctorError):
    """No process matched, or several did and the user must choose."""


class BadDumpError(HangdoctorError):
    """A saved dump that is not one of the formats we read, or is cut short."""


class UnknownRuleError(HangdoctorError):
    """`explain` was given a code that is not in the catalog."""
