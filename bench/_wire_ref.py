"""The wire clock for bench/probe.py: the probe's own health requests, timed on the loopback.

A separate process reads every TCP packet of the server's port from `lo`
(an AF_PACKET socket, so it needs root or CAP_NET_RAW), with the kernel's
receive timestamps. For each connection whose first request bytes are
`GET PATH `, the wire latency runs from that request packet to the last
server packet carrying data: the part of the request the server is responsible
for. The probe's clock starts before its connect() and stops when its event
loop has read the response, so the difference is what the probe adds: its
connect, the delay before its loop sends the request, and the delay before
its loop reads the answer. The probe measures the same requests from inside its
event loop; the difference is the probe's own measuring error, free of the
server's jitter (which a second client would see differently).

Runs until stdin is closed, then prints one JSON line per health connection:
[who, wall time of the request packet, wire latency s], where who is "probe"
(the request carries the probe's User-Agent) or "other" (the reference client).

Usage: python bench/_wire_ref.py PORT PATH
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys

_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4  # loopback shows each packet twice: keep the incoming copy
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_SYN, _FIN = 0x02, 0x01


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    marker = f"GET {path} ".encode()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    sock.bind(("lo", 0))
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
    print("ready", flush=True)
    syn: dict[int, float] = {}  # client port -> SYN time
    health: dict[int, tuple[str, float]] = {}  # client port -> (who, request time)
    last_data: dict[int, float] = {}  # client port -> time of the last server data packet
    done: list[tuple[str, float, float]] = []
    while True:
        ready, _, _ = select.select([sock, sys.stdin], [], [], 1.0)
        if sys.stdin in ready and not sys.stdin.readline():
            break
        if sock not in ready:
            continue
        data, anc, _flags, addr = sock.recvmsg(65535, 64)
        if addr[2] == _PACKET_OUTGOING or len(data) < 14 + 20:
            continue
        ts = None
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", value[:16])
                ts = sec + nsec / 1e9
        if ts is None:
            continue
        ip = data[14:]
        if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP:
            continue
        ihl = (ip[0] & 0x0F) * 4
        tcp = ip[ihl:]
        sport, dport = struct.unpack("!HH", tcp[:4])
        flags = tcp[13]
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if dport == port:  # client -> server
            if flags & _SYN:
                syn[sport] = ts
            elif payload.startswith(marker) and sport in syn:
                who = "probe" if b"User-Agent: hangdoctor-probe" in payload else "other"
                health[sport] = (who, ts)  # the server can answer from here on
        elif sport == port and dport in health:  # server -> a health client
            if payload:
                last_data[dport] = ts
            if flags & _FIN and dport in last_data:
                who, start = health.pop(dport)
                done.append((who, start, last_data.pop(dport) - start))
                syn.pop(dport, None)
    for row in done:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
