"""What the watchdog reports: one `StallRecord` per stall of one event loop.

A record is built from the same `Finding` the live diagnosis produces, so a
stall seen in-process carries the same catalog code, user file:line and
"waits for" as `hangdoctor diagnose` would have printed, plus what only the
process itself knows: the exact duration and the request that was running.

A record never holds a secret-looking value: the source lines and sentences it
quotes from the user's code (`--api-token=...`, `Authorization: Bearer ...`) are
scrubbed with `redact_text` when it is made, so `watch --out`, watch's stderr,
the logging `extra`, the debug page and listeners all get the scrubbed record.

Standard library only: this module is imported inside production services.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from threading import Lock
from typing import Any, ClassVar, Generic, TypeVar

from hangdoctor.capture.redact import redact_text
from hangdoctor.model import Frame, RequestInfo, WaitTarget, frame_from_dict
from hangdoctor.timefmt import epoch_from_iso, iso_utc, to_millis

__all__ = ["Recent", "RequestInfo", "StallRecord", "recent_stalls"]

R = TypeVar("R")

# stall and stuck records (src/hangdoctor/schemas/stall.json, stuck.json): raised only when
# a key is renamed or removed or its meaning changes, never when one is added
RECORD_SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: JSON Lines logs a service wrote before 2


class JsonRecord:
    """A record of the runtime as one JSON object, its kind under `record` first.

    `watch --out` writes stall and stuck records into one JSON Lines file; the key
    tells them apart (`record`, not `kind`: `kind` already names what a task waits on).
    The JSON names follow the contract of every hangdoctor output where the Python
    attribute says it otherwise (`JSON_KEYS`), and moments (`MOMENTS`) are ISO 8601 UTC.
    """

    KIND: ClassVar[str]
    JSON_KEYS: ClassVar[dict[str, str]] = {}  # attribute -> its JSON key, where they differ
    MOMENTS: ClassVar[tuple[str, ...]] = ()  # attributes holding epoch seconds

    def to_dict(self) -> dict[str, Any]:
        # the version last: readers find the kind first, and lines written before it still parse
        data: dict[str, Any] = {"record": self.KIND}
        for key, value in asdict(self).items():  # type: ignore[call-overload]
            data[self.JSON_KEYS.get(key, key)] = iso_utc(value) if key in self.MOMENTS else value
        data["schema_version"] = RECORD_SCHEMA_VERSION
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)

    @classmethod
    def attributes(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A record's JSON (version 1 or 2) keyed by attribute, moments as epoch seconds.

        ValueError, in one sentence, for a version this hangdoctor cannot read.
        """
        version = data.get("schema_version", 1)  # lines older than the key are version 1
        if version not in READABLE_VERSIONS:
            raise ValueError(
                f"This {cls.KIND} record has schema_version {version!r}; this hangdoctor reads "
                f"{' and '.join(map(str, READABLE_VERSIONS))}."
            )
        # version 1 wrote the attributes' own names (and moments as epoch seconds)
        by_json = {} if version == 1 else {v: k for k, v in cls.JSON_KEYS.items()}
        out = {by_json.get(k, k): v for k, v in data.items()}
        for key in cls.MOMENTS:
            if key in out:
                out[key] = epoch_from_iso(out[key])
        return out


@dataclass(frozen=True)
class StallRecord(JsonRecord):
    """One stall of one event loop: the cause, where, how long, and for which request."""

    code: str  # catalog code: HD101, HD201, ... HD900
    name: str  # the catalog entry's name: executor-shutdown-on-loop
    message: str  # one sentence, as `diagnose` words it
    file: str
    line: int
    function: str
    duration: float  # seconds the loop did not run its callbacks (see LoopWatchdog)
    started_at: float  # wall clock (time.time()) of the heartbeat the loop missed
    detected_after: float  # seconds from that heartbeat to the first stack capture
    pid: int
    thread: str | None
    tid: int
    state: str  # "blocked" (waiting) or "busy" (CPU work on the loop)
    samples: int  # stack captures taken while the stall went on
    source: str | None = None  # the source line at file:line
    stack: tuple[Frame, ...] = ()  # the loop thread's stack, innermost first
    waits_for: WaitTarget | None = None
    request: RequestInfo | None = None
    in_flight: int | None = None  # requests in flight on the loop (middleware present)
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # frozen: the scrubbed values replace the given ones before anyone can read them
        for name in ("message", "source"):
            value = getattr(self, name)
            if value:
                object.__setattr__(self, name, redact_text(value))
        waits = self.waits_for
        if waits is not None:
            scrubbed = replace(
                waits,
                description=redact_text(waits.description),
                source=redact_text(waits.source) if waits.source else waits.source,
            )
            if scrubbed != waits:
                object.__setattr__(self, "waits_for", scrubbed)
        if self.notes:
            object.__setattr__(self, "notes", tuple(redact_text(n) for n in self.notes))
        # the JSON writes the moment to the millisecond: a record read back is equal
        object.__setattr__(self, "started_at", to_millis(self.started_at))

    KIND: ClassVar[str] = "stall"  # task records say "stuck" (see `stuck`)
    # the same idea has the same key in every output: `blocked_for_s` as in `diagnose`
    JSON_KEYS: ClassVar[dict[str, str]] = {
        "duration": "blocked_for_s",
        "detected_after": "detected_after_s",
        "thread": "thread_name",
    }
    MOMENTS: ClassVar[tuple[str, ...]] = ("started_at",)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StallRecord:
        """A record from its JSON, as written now (schema_version 2) or by version 1."""
        data = cls.attributes(data)
        wf = data.get("waits_for")
        req = data.get("request")
        return cls(
            code=data["code"],
            name=data["name"],
            message=data["message"],
            file=data["file"],
            line=int(data["line"]),
            function=data["function"],
            duration=float(data["duration"]),
            started_at=data["started_at"],
            detected_after=float(data["detected_after"]),
            pid=int(data["pid"]),
            thread=data.get("thread"),
            tid=int(data["tid"]),
            state=data["state"],
            samples=int(data["samples"]),
            source=data.get("source"),
            stack=tuple(frame_from_dict(f) for f in data.get("stack", ())),
            waits_for=WaitTarget(**wf) if wf else None,
            request=RequestInfo(**req) if req else None,
            in_flight=data.get("in_flight"),
            notes=tuple(data.get("notes", ())),
        )

    def summary(self) -> str:
        """One line for a log or a terminal."""
        where = f"{self.file}:{self.line} in {self.function}"
        text = f"event loop stalled {self.duration:.3f} s: {self.code} {self.name} at {where}"
        if self.request is not None:
            text += f" during {self.request.method} {self.request.route or self.request.path}"
        return text


class Recent(Generic[R]):
    """The last records of every watchdog of the process, bounded, safe across threads.

    The debug endpoint and tests read them; the watchdogs' own threads add to them.
    """

    def __init__(self, maxlen: int = 100) -> None:
        self._items: deque[R] = deque(maxlen=maxlen)
        self._lock = Lock()

    def add(self, record: R) -> None:
        with self._lock:
            self._items.append(record)

    def last(self, limit: int = 100) -> list[R]:
        """The last `limit` records, oldest first."""
        with self._lock:
            items = list(self._items)
        return items[-limit:] if limit > 0 else []


_RECENT: Recent[StallRecord] = Recent()
_remember = _RECENT.add


def recent_stalls(limit: int = 100) -> list[StallRecord]:
    """The last `limit` stalls seen by any watchdog of this process, oldest first."""
    return _RECENT.last(limit)
