"""Hide secrets in captured locals before anything is shown or saved.

`py-spy --locals` reprs whatever the stack holds: tokens, passwords, DSNs.
Locals whose name looks secret lose their repr; any other repr is scrubbed of
values that look secret (Authorization headers, URL passwords, `token=` pairs).
Addresses stay: the analysis links threads through them.

`redact_text` is the one scrubber of free text: reprs, command lines (`diagnose
--save`), and the source lines the in-process watchdog puts in its stall records.
Standard library only, as the runtime imports it inside production services.
"""

from __future__ import annotations

import re
from dataclasses import replace

from hangdoctor.model import Frame, Local, Snapshot, Thread

__all__ = ["REDACTED", "is_secret_name", "redact_snapshot", "redact_text"]

REDACTED = "<redacted>"

# Anywhere in the name: these never mean anything harmless.
_SUBSTRINGS = (
    "token",
    "passw",
    "passphrase",
    "secret",
    "authorization",
    "cookie",
    "session",
    "credential",
    "signature",
    "dsn",
    "jwt",
    "bearer",
)
# Whole words only ("pw", not "pwn"); "key" also ends a word: apikey, privatekey.
_WORDS = frozenset({"pw", "pwd", "passwd", "auth", "oauth", "sig", "salt", "otp", "pin"})
# English words that end in "key" and hold no key.
_NOT_KEYS = frozenset({"monkey", "donkey", "turkey", "hockey", "jockey", "whiskey", "lackey"})
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")

_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Digest|Token)(\s+)[^\s'\"\\,;]+", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*):([^@\s/'\"]*)@")
_KEY_EQUALS = re.compile(r"\b([A-Za-z_][A-Za-z0-9_-]*)=(?:(['\"])(.*?)(?<!\\)\2|[^&\s'\",;)]+)")
_QUOTED_PAIR = re.compile(r"(['\"])([A-Za-z_][A-Za-z0-9_-]*)\1(\s*:\s*)(['\"])(.*?)(?<!\\)\4")
# A command-line option and its value as the next word: `--ssl-keyfile-password VALUE`.
_OPTION_VALUE = re.compile(
    r"(?<![\w-])(--?[A-Za-z][A-Za-z0-9_.-]*)(\s+)(?:(['\"])(.*?)(?<!\\)\3|(?!-)[^\s'\",;)\]]+)"
)
# A string literal given to a secret-looking name in code: `api_token = "sk-live-..."`.
_ASSIGNED_LITERAL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)(\s*[=:]\s*)(['\"])(.*?)(?<!\\)\3")


def is_secret_name(name: str) -> bool:
    """Whether a variable, key or parameter name suggests it holds a secret."""
    lowered = name.lower()
    if any(s in lowered for s in _SUBSTRINGS):
        return True
    for word in (w.lower() for w in _WORD_SPLIT.split(name) if w):
        if word in _WORDS or word.startswith("authoriz") or word.startswith("authent"):
            return True
        if word.endswith("key") and word not in _NOT_KEYS:
            return True  # key, apikey, privatekey, accesskey
        if word.endswith("keys") and word[:-1] not in _NOT_KEYS:
            return True
    return False


def redact_text(text: str) -> str:
    """Mask values that look secret inside any text (a repr, a command line)."""
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
    text = _KEY_EQUALS.sub(_mask_key_equals, text)
    text = _OPTION_VALUE.sub(_mask_option_value, text)
    text = _ASSIGNED_LITERAL.sub(_mask_assigned_literal, text)
    return _QUOTED_PAIR.sub(
        lambda m: (
            f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{REDACTED}{m.group(4)}"
            if is_secret_name(m.group(2))
            else m.group(0)
        ),
        text,
    )


def _mask_key_equals(m: re.Match[str]) -> str:
    if not is_secret_name(m.group(1)):
        return m.group(0)
    quote = m.group(2) or ""
    return f"{m.group(1)}={quote}{REDACTED}{quote}"


def _mask_option_value(m: re.Match[str]) -> str:
    if not is_secret_name(m.group(1).lstrip("-")):
        return m.group(0)
    quote = m.group(3) or ""
    return f"{m.group(1)}{m.group(2)}{quote}{REDACTED}{quote}"


def _mask_assigned_literal(m: re.Match[str]) -> str:
    if not is_secret_name(m.group(1)):
        return m.group(0)
    return f"{m.group(1)}{m.group(2)}{m.group(3)}{REDACTED}{m.group(3)}"


def redact_snapshot(snapshot: Snapshot, *, reveal: bool = False) -> Snapshot:
    """The snapshot with secret-looking locals (and command-line secrets) masked.

    `reveal=True` returns it unchanged (the user asked to see secrets).
    """
    if reveal:
        return snapshot
    return replace(
        snapshot,
        threads=tuple(_thread(t) for t in snapshot.threads),
        command=None if snapshot.command is None else redact_text(snapshot.command),
    )


def _thread(thread: Thread) -> Thread:
    if not any(f.locals for f in thread.frames):
        return thread
    return replace(thread, frames=tuple(_frame(f) for f in thread.frames))


def _frame(frame: Frame) -> Frame:
    if not frame.locals:
        return frame
    return replace(frame, locals=tuple(_local(x) for x in frame.locals))


def _local(local: Local) -> Local:
    if local.repr is None:
        return local
    if is_secret_name(local.name):
        return replace(local, repr=REDACTED)
    masked = redact_text(local.repr)
    return local if masked == local.repr else replace(local, repr=masked)
