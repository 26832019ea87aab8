"""Why a probe could not run: one sentence and the remedy for each way it fails.

A probe that cannot talk to the service (bad URL, nothing listening, TLS
refused, a path that is not an event stream, a server that died mid-run) ends
with exit 2: it could not look, which is different from "it looked and the
service hung" (exit 1).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

from hangdoctor.errors import HangdoctorError

__all__ = ["ProbeError", "describe_connect_error"]


class ProbeError(HangdoctorError):
    """The probe could not measure the service (exit 2)."""


def describe_connect_error(exc: BaseException, netloc: str, *, secure: bool) -> ProbeError:
    """The sentence and remedy for a failure to connect (or to shake hands) with `netloc`."""
    if isinstance(exc, socket.gaierror):
        return ProbeError(
            f"The host of {netloc} could not be resolved ({exc.strerror or exc}).",
            "Check the host name in the URL, or use the server's IP address.",
        )
    if isinstance(exc, ConnectionRefusedError):
        return ProbeError(
            f"Nothing accepts connections at {netloc} (connection refused).",
            "Start the server, or fix the port in the URL.",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProbeError(
            f"The TLS certificate of {netloc} was not accepted ({exc.verify_message}).",
            "Fix the certificate, or pass --insecure to skip verification "
            "(for a self-signed certificate on a test server).",
        )
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        hint = (
            "The server may speak plain HTTP: use an http:// URL."
            if "WRONG_VERSION_NUMBER" in str(reason).upper() or "wrong version" in str(exc)
            else "Check that the port serves HTTPS and that its TLS setup is valid."
        )
        return ProbeError(f"The TLS handshake with {netloc} failed ({reason}).", hint)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        what = "a TLS connection" if secure else "the connection"
        return ProbeError(
            f"{netloc} did not accept {what} in time: the host is unreachable or filtered.",
            "Check the host and port in the URL, and that a firewall lets the connection through.",
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return ProbeError(
            f"{netloc} is unreachable ({exc.strerror}).",
            "Check the host in the URL and the network route to it.",
        )
    if isinstance(exc, ConnectionError):
        return ProbeError(
            f"{netloc} closed the connection before answering ({type(exc).__name__}).",
            "Check that the URL's port serves HTTP"
            + (" over TLS." if secure else ", not HTTPS (use https:// for TLS)."),
        )
    return ProbeError(
        f"Could not connect to {netloc} ({type(exc).__name__}: {exc}).",
        "Check the URL, and that the server is running.",
    )
