# ruff: noqa
"""Suppression comments."""

import time


async def silenced() -> None:
    time.sleep(1)  # noqa: HD201
    time.sleep(1)  # noqa
    time.sleep(1)  # hangdoctor: ignore[HD201]
    time.sleep(1)  # hangdoctor: ignore
    time.sleep(1)  # NOQA:HD201,HD202
    time.sleep(1)  # noqa: E501  # error: HD201
    time.sleep(1)  # hangdoctor: ignore[HD202]  # error: HD201
    print("# noqa"); time.sleep(1)  # noqa: E702  # error: HD201  # fmt: skip


def helper() -> None:
    time.sleep(1)  # noqa: HD201  (silenced here: callers are not told either)


def helper2() -> None:
    time.sleep(1)


async def callers() -> None:
    helper()
    helper2()  # error: HD201
    helper2()  # noqa: HD201
