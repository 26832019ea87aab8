"""A bare ASGI app (no framework) under HangdoctorMiddleware: what a production image of
hangdoctor-runtime alone runs. `uvicorn runtime_only_app:app`; `HANGDOCTOR_TEST_OUT` names
the file each stall record is appended to, as JSON.

- `/health`: 200 "ok";
- `/block`: blocks the loop for `BLOCK_S` seconds with `time.sleep` (HD201);
- `/imports`: JSON: where rich, click, libcst, pygments and py-spy would come from (null:
  nowhere), and which hangdoctor modules this process has loaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from typing import Any

from hangdoctor.runtime import HangdoctorMiddleware, LoopWatchdog, StallRecord

BLOCK_S = 0.5
OUT = os.environ.get("HANGDOCTOR_TEST_OUT", "stalls.jsonl")


def _keep(record: StallRecord) -> None:
    with open(OUT, "a", encoding="utf-8") as f:
        f.write(json.dumps(record.to_dict()) + "\n")


def _imports() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in ("rich", "click", "libcst", "pygments", "py_spy"):
        spec = importlib.util.find_spec(name)
        found[name] = None if spec is None else spec.origin
    found["hangdoctor_modules"] = sorted(m for m in sys.modules if m.startswith("hangdoctor"))
    return found


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b"ok"
    if scope["path"] == "/block":
        time.sleep(BLOCK_S)  # runtime-only: blocks
    elif scope["path"] == "/imports":
        body = json.dumps(_imports()).encode("utf-8")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


app = HangdoctorMiddleware(_app, watchdog=LoopWatchdog(threshold=0.2, on_stall=_keep))
