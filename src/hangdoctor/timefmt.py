"""Moments in JSON: ISO 8601 UTC with milliseconds and a `Z`, one format for every output.

Python code keeps wall-clock moments as epoch seconds (`time.time()`); every JSON
document and record (schema_version 2) writes them with `iso_utc` and reads them
back with `epoch_from_iso`, so a moment is a string a human and `jq` can read, and
no two outputs disagree on its form.

Standard library only: the runtime imports this inside production services.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["epoch_from_iso", "iso_utc", "to_millis"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def to_millis(epoch: float) -> float:
    """`epoch` kept to the millisecond: the precision `iso_utc` writes, so it reads back equal."""
    return round(epoch, 3)


def iso_utc(epoch: float) -> str:
    """`1796546102.1234` -> `"2026-12-06T08:35:02.123Z"`."""
    millis = round(to_millis(epoch) * 1000)
    # whole milliseconds from the epoch, so no float rounding can write `.1000`
    moment = _EPOCH + timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_from_iso(value: str | float | int) -> float:
    """A moment as `iso_utc` writes it (or, from schema_version 1, epoch seconds) -> epoch.

    ValueError, with the value in its message, for anything else.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return to_millis(float(value))
    if not isinstance(value, str):
        raise ValueError(f"not a moment: {value!r}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 moment: {value!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"an ISO 8601 moment without a time zone: {value!r}")
    return (moment - _EPOCH) // _MS / 1000
