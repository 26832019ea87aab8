"""Redaction of secret-looking locals by name and by value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ServerFactory, newsroom_argv, run_hangdoctor

from hangdoctor.capture.pyspy import dump
from hangdoctor.capture.redact import REDACTED, is_secret_name, redact_snapshot, redact_text
from hangdoctor.model import Frame, Local, Snapshot, Thread
from hangdoctor.probe.server import free_port


def _snapshot(*locals_: Local, command: str | None = None) -> Snapshot:
    frame = Frame(function="handler", file="/app/api.py", line=3, locals=locals_)
    thread = Thread(tid=7, name="MainThread", frames=(frame,))
    return Snapshot(pid=7, taken_at=1.0, threads=(thread,), command=command)


def _locals(snap: Snapshot) -> dict[str, Local]:
    return {x.name: x for x in snap.threads[0].frames[0].locals}


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "access_token",
        "csrfToken",
        "password",
        "db_passwd",
        "client_secret",
        "key",
        "api_key",
        "apikey",
        "apiKey",
        "private_key",
        "AWS_ACCESS_KEY",
        "authorization",
        "auth",
        "auth_header",
        "cookie",
        "session_id",
        "credentials",
        "sentry_dsn",
        "signature",
    ],
)
def test_secret_names(name: str) -> None:
    """Names that hold secrets are recognised, whatever their case and separators."""
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["monkey", "turkey", "keyword", "author", "authors", "self", "item", "loop", "t"]
)
def test_harmless_names(name: str) -> None:
    """Names that merely contain `key` or `auth` inside another word are left alone."""
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"Bearer eyJhbGciOi.abc"', f'"Bearer {REDACTED}"'),
        ("'Basic dXNlcjpwdw=='", f"'Basic {REDACTED}'"),
        ('"postgres://app:hunter2@db:5432/news"', f'"postgres://app:{REDACTED}@db:5432/news"'),
        (
            '"https://api.example/v1?token=abc123&page=2"',
            f'"https://api.example/v1?token={REDACTED}&page=2"',
        ),
        ("Settings(api_key='xyz', debug=True)", f"Settings(api_key='{REDACTED}', debug=True)"),
        ("{'password': 'pw', 'user': 'bob'}", f"{{'password': '{REDACTED}', 'user': 'bob'}}"),
        ('"http://host:8080/a@b"', '"http://host:8080/a@b"'),
        ('"hello world"', '"hello world"'),
    ],
)
def test_values_that_look_secret(text: str, expected: str) -> None:
    """Auth headers, URL passwords and secret key=value pairs are masked, the rest kept."""
    assert redact_text(text) == expected


def test_redact_snapshot_by_name_and_value() -> None:
    """Secret names lose their repr, secret values are masked, addresses always stay."""
    snap = _snapshot(
        Local("api_key", '"sk-live-1"', addr=0x10),
        Local("headers", "{'authorization': 'Bearer abc'}", addr=0x20),
        Local("dsn_url", None, addr=0x30),
        Local("note", '"hello"', addr=0x40, is_arg=True),
        Local("url", '"postgres://app:pw@db/news"', addr=0x50),
        command="python -m app --db postgres://app:pw@db/news",
    )
    out = redact_snapshot(snap)
    by_name = _locals(out)
    assert by_name["api_key"].repr == REDACTED
    assert "abc" not in (by_name["headers"].repr or "")
    assert by_name["dsn_url"].repr is None
    assert by_name["note"] == Local("note", '"hello"', addr=0x40, is_arg=True)
    assert by_name["url"].repr == f'"postgres://app:{REDACTED}@db/news"'
    assert [x.addr for x in out.threads[0].frames[0].locals] == [0x10, 0x20, 0x30, 0x40, 0x50]
    assert out.command == f"python -m app --db postgres://app:{REDACTED}@db/news"
    assert (out.pid, out.taken_at, out.threads[0].tid) == (snap.pid, snap.taken_at, 7)


def test_reveal_returns_the_snapshot_unchanged() -> None:
    """reveal=True keeps every repr (the user asked to see secrets)."""
    snap = _snapshot(Local("password", '"hunter2"', addr=1))
    assert redact_snapshot(snap, reveal=True) is snap


def test_redacting_a_real_capture(sleeper: Callable[..., Any]) -> None:
    """On a real py-spy --locals capture, the api_key local is hidden and `note` kept."""
    target = sleeper()
    by_name = _locals_of_main(redact_snapshot(dump(target.pid, locals=True)))
    assert by_name["api_key"].repr == REDACTED
    assert by_name["api_key"].addr
    assert by_name["note"].repr == '"hello"'


def _locals_of_main(snap: Snapshot) -> dict[str, Local]:
    main = next(t for t in snap.threads if t.tid == snap.pid)
    return {x.name: x for x in main.frames[0].locals}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "uvicorn app:app --ssl-keyfile-password hunter2 --port 8000",
            f"uvicorn app:app --ssl-keyfile-password {REDACTED} --port 8000",
        ),
        ("serve --api-key 'two words' -v", f"serve --api-key '{REDACTED}' -v"),
        ("serve --password=hunter2", f"serve --password={REDACTED}"),
        ("uvicorn --ssl-keyfile /etc/key.pem", "uvicorn --ssl-keyfile /etc/key.pem"),
        ("serve --workers 2 --port 80", "serve --workers 2 --port 80"),
        ('api_token = "sk-live-1"', f'api_token = "{REDACTED}"'),
        ('run(["--api-token=sk-1"])', f'run(["--api-token={REDACTED}"])'),
        (
            'headers = {"Authorization": "Bearer abc"}',
            f'headers = {{"Authorization": "{REDACTED}"}}',
        ),
        ("password = read_password()", "password = read_password()"),
    ],
)
def test_command_lines_and_source_lines(text: str, expected: str) -> None:
    """An option's value as the next word, and string literals given to secret names, are masked."""
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # scrubbing twice changes nothing


@pytest.mark.e2e
def test_diagnose_save_keeps_no_secret_of_the_command_line(
    newsroom: ServerFactory, tmp_path: Path
) -> None:
    """`diagnose --save` of a real server started with `--ssl-keyfile-password VALUE` masks it."""
    port = free_port()
    argv = [*newsroom_argv(port), "--ssl-keyfile-password", "hunter2-keyfile-pw"]
    server = newsroom(argv=argv)
    saved = tmp_path / "capture.json"
    proc = run_hangdoctor("diagnose", "--pid", str(server.pid), "--save", str(saved))
    assert proc.returncode in (0, 1), proc.stderr
    text = saved.read_text(encoding="utf-8")
    assert "hunter2-keyfile-pw" not in text
    assert f"--ssl-keyfile-password {REDACTED}" in text
