"""Stall records never hold a secret-looking value, whoever reads them.

The watchdog quotes the user's source line in each record; the record scrubs it with
the one redaction function (`redact_text`) when it is made, so the logging `extra`,
listeners, `recent_stalls()` and watch's outputs all get it scrubbed.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tests.runtime.apps.plain_server import SECRETS, _blocking_call

from hangdoctor.capture.redact import REDACTED
from hangdoctor.model import WaitTarget
from hangdoctor.runtime import LoopWatchdog, StallRecord

LINE = 'run([PY, "--api-token=sk-live-0123", "Authorization: Bearer eyJ0.sig"])'


def _record(**changes: object) -> StallRecord:
    fields: dict[str, object] = {
        "code": "HD204",
        "name": "subprocess-wait-in-async",
        "message": f"`subprocess.run()` in handler blocks the loop: {LINE}",
        "file": "/srv/app/api.py",
        "line": 3,
        "function": "handler",
        "duration": 0.8,
        "started_at": 1.0,
        "detected_after": 0.2,
        "pid": 7,
        "thread": "MainThread",
        "tid": 7,
        "state": "blocked",
        "samples": 2,
        "source": LINE,
        "waits_for": WaitTarget(description=f"the call {LINE}", source=LINE),
        "notes": (f"note: {LINE}",),
    }
    fields.update(changes)
    return StallRecord(**fields)  # type: ignore[arg-type]


def test_a_record_is_scrubbed_when_made() -> None:
    """Source, message, what the loop waits for and notes lose the token and bearer value."""
    record = _record()
    text = record.to_json()
    assert not [s for s in SECRETS if s in text], text
    assert (
        record.source == f'run([PY, "--api-token={REDACTED}", "Authorization: Bearer {REDACTED}"])'
    )
    assert record.waits_for is not None and record.waits_for.source == record.source
    assert StallRecord.from_dict(record.to_dict()) == record  # scrubbing twice changes nothing


def test_a_record_without_secrets_is_kept_as_given() -> None:
    """An ordinary line is left exactly as it was."""
    record = _record(source="time.sleep(seconds)", message="`time.sleep()` blocks the loop.")
    assert record.source == "time.sleep(seconds)"
    assert record.message == "`time.sleep()` blocks the loop."


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_logging_extra_of_a_real_stall_carries_no_secret() -> None:
    """A real watchdog on a real loop blocked on a line with a token logs it scrubbed."""
    handler = _Collect()
    logger = logging.getLogger("hangdoctor")
    logger.addHandler(handler)

    async def main() -> None:
        async with LoopWatchdog(0.2):
            await asyncio.sleep(0.05)
            _blocking_call()  # quotes --api-token=... and a bearer token on its line
            deadline = time.monotonic() + 10
            while not handler.records and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

    try:
        asyncio.run(main())
    finally:
        logger.removeHandler(handler)
    assert handler.records, "the stall was not logged"
    logged = handler.records[0]
    stall = logged.__dict__["hangdoctor_stall"]
    assert stall["function"] == "_blocking_call"
    assert f"--api-token={REDACTED}" in stall["source"], stall["source"]
    everything = repr(stall) + logged.getMessage()
    assert not [s for s in SECRETS if s in everything], everything
