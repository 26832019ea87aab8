"""Every blocking call that ruff's and flake8-async's ASYNC2xx rules know, `scan` knows too.

The lists are the peers' own (flake8-async `visitor2xx.py`, ruff
`flake8_async/rules/*.rs`), written here as calls in an async function, each with
the HD code that must report it. A team that moves from those linters to
hangdoctor loses none of them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scan.conftest import DATA, expected_markers, run_scan

_IMPORTS = """\
import io, os, os.path, subprocess, time, typing, urllib.request, urllib3, httpx, requests
from pathlib import Path
from typing import IO, BinaryIO, Optional, TextIO, Union
"""

# peer rule -> (calls as written in `async def f(...)`, the HD code that reports them)
PEERS: dict[str, tuple[list[str], str]] = {
    "ASYNC210": (
        [
            *(
                f"{lib}.{verb}(u)"
                for lib in ("requests", "httpx")
                for verb in ("get", "post", "put", "patch", "delete", "head", "options", "request")
            ),
            "urllib.request.urlopen(u)",
            "urllib3.request('GET', u)",
        ],
        "HD202",
    ),
    "ASYNC212": (
        [
            *(
                f"client.{m}(u)"
                for m in (
                    "delete",
                    "get",
                    "head",
                    "options",
                    "patch",
                    "post",
                    "put",
                    "request",
                    "send",
                    "stream",
                )
            ),
            "client.close()",
            "maybe.get(u)",
            "either.get(u)",
            "pool.request('GET', u)",
            "pool.urlopen('GET', u)",
            "proxy.request('GET', u)",
            "cpool.request('GET', u)",
        ],
        "HD202",
    ),
    "ASYNC220": (
        [
            "subprocess.Popen(['x'])",
            "os.popen('x')",
            *(f"os.spawn{v}(os.P_NOWAIT, 'x', 'x')" for v in ("l", "le", "lp", "lpe")),
            *(f"os.spawn{v}(os.P_NOWAIT, 'x', ['x'])" for v in ("v", "ve", "vp", "vpe")),
        ],
        "HD204",
    ),
    "ASYNC221": (
        [
            *(
                f"subprocess.{f}(['x'])"
                for f in (
                    "run",
                    "call",
                    "check_call",
                    "check_output",
                    "getoutput",
                    "getstatusoutput",
                )
            ),
            "os.system('x')",
            "os.posix_spawn('x', ['x'], {})",
            "os.posix_spawnp('x', ['x'], {})",
            "os.spawnl(os.P_WAIT, 'x', 'x')",
        ],
        "HD204",
    ),
    "ASYNC222": (
        ["os.wait()", "os.wait3(0)", "os.wait4(1, 0)", "os.waitid(0, 0, 0)", "os.waitpid(1, 0)"],
        "HD204",
    ),
    "ASYNC230": (["open(u)", "io.open(u)", "io.open_code(u)", "Path(u).open()"], "HD205"),
    "ASYNC231": (["os.fdopen(3)"], "HD205"),
    "ASYNC232": (
        [
            "text.read()",
            "binary.write(b'')",
            "anyio_.readline()",
            "wrapper.read()",
            "reader.read()",
            "writer.write(b'')",
            "rand.seek(0)",
            "opt.read()",
        ],
        "HD205",
    ),
    "ASYNC240": (
        [
            *(
                f"os.path.{f}(u)"
                for f in (
                    "exists",
                    "isfile",
                    "isdir",
                    "islink",
                    "getsize",
                    "getmtime",
                    "getatime",
                    "getctime",
                    "realpath",
                    "abspath",
                    "expanduser",
                    "lexists",
                    "ismount",
                )
            ),
            *(
                f"path.{m}()"
                for m in (
                    "exists",
                    "is_dir",
                    "is_file",
                    "is_symlink",
                    "stat",
                    "lstat",
                    "iterdir",
                    "resolve",
                    "absolute",
                    "expanduser",
                    "unlink",
                    "rmdir",
                    "touch",
                    "mkdir",
                    "readlink",
                    "owner",
                    "group",
                    "read_text",
                    "read_bytes",
                )
            ),
            "path.glob('*')",
            "path.rglob('*')",
            "path.rename(u)",
            "path.replace(u)",
            "path.chmod(0)",
            "path.samefile(u)",
            "path.symlink_to(u)",
            "path.hardlink_to(u)",
            "path.write_text(u)",
            "path.write_bytes(b'')",
        ],
        "HD205",
    ),
    "ASYNC250": (["input()", "input('name: ')"], "HD205"),
    "ASYNC251": (["time.sleep(1)"], "HD201"),
}

_PARAMS = """\
    u: str,
    client: httpx.Client,
    maybe: Optional[httpx.Client],
    either: Union[httpx.Client, None],
    pool: urllib3.PoolManager,
    proxy: urllib3.ProxyManager,
    cpool: urllib3.HTTPSConnectionPool,
    text: TextIO,
    binary: BinaryIO,
    anyio_: IO[str],
    wrapper: io.TextIOWrapper,
    reader: io.BufferedReader,
    writer: io.BufferedWriter,
    rand: io.BufferedRandom,
    opt: typing.Optional[io.FileIO],
    path: Path,
"""


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_every_peer_call_is_found(peer: str, tmp_path: Path) -> None:
    """Each call a peer rule lists is reported, under the matching HD code, on its line."""
    calls, code = PEERS[peer]
    body = "".join(f"    {c}\n" for c in calls)
    source = f"{_IMPORTS}\n\nasync def f(\n{_PARAMS}) -> None:\n{body}"
    (tmp_path / "peer.py").write_text(source, encoding="utf-8")
    result = run_scan([tmp_path / "peer.py"], tmp_path)
    assert result.problems == ()
    first = source.splitlines().index(f"    {calls[0]}") + 1
    found = {(f.line, f.code) for f in result.findings}
    missing = [c for i, c in enumerate(calls) if (first + i, code) not in found]
    assert not missing, f"{peer}: not reported as {code}: {missing}"
    assert len(result.findings) == len(calls)


def _ruff() -> str | None:
    beside = Path(sys.executable).with_name("ruff")
    return str(beside) if beside.exists() else shutil.which("ruff")


@pytest.mark.parametrize("path", sorted(DATA.glob("hd2*.py")), ids=lambda p: p.stem)
def test_ruff_finds_nothing_scan_misses(path: Path) -> None:
    """On the HD2xx eval files, every line ruff's ASYNC2xx rules report is a line `scan`
    must report (a `# error:` marker), except polls that cannot block (`os.WNOHANG`)."""
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed")
    out = subprocess.run(
        [
            ruff,
            "check",
            "--isolated",
            "--preview",
            "--ignore-noqa",
            "--select",
            "ASYNC2",
            "--output-format",
            "json",
            "--exit-zero",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = path.read_text(encoding="utf-8").splitlines()
    marked = {line for line, _ in expected_markers(path)}
    unmarked = [
        (d["location"]["row"], d["code"])
        for d in json.loads(out)
        if d["location"]["row"] not in marked and "WNOHANG" not in lines[d["location"]["row"] - 1]
    ]
    assert not unmarked, f"ruff reports lines scan does not: {unmarked}"
