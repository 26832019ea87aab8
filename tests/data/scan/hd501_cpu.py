# ruff: noqa
"""HD501: recognisably heavy CPU work in async code."""

import hashlib
import json
import re
import zlib

import bcrypt


async def heavy(password: bytes, salt: bytes, blob: bytes) -> bytes:
    hashlib.pbkdf2_hmac("sha256", password, salt, 600_000)  # error: HD501
    bcrypt.hashpw(password, bcrypt.gensalt())  # error: HD501
    return zlib.compress(blob)  # error: HD501


async def light(body: bytes) -> object:
    data = json.loads(body)  # small payloads: not reported by the scan
    re.match(r"\d+", "12")
    hashlib.sha256(body).hexdigest()
    return data
