"""`[*]` / `[unsafe fix]` agree with what `--fix` then does (issue 11, item 5).

The marks come from the fixer's own dry run (hangdoctor.fix.marks); these tests
read them the way a user does, from `hangdoctor scan` output, and then run
`scan --fix` (and `--fix --unsafe-fixes`) on a copy and read what it says it did.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from hangdoctor.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = sorted((ROOT / "tests" / "data" / "fixes").glob("*/before.py"))
EVAL = sorted((ROOT / "tests" / "data" / "scan").glob("*.py"))
FILES = {f"fixes/{p.parent.name}": p for p in GOLDEN} | {f"scan/{p.stem}": p for p in EVAL}
NOT_FIXED = re.compile(r"^app\.py:(\d+): (HD\d{3}) not fixed: ", re.M)


def _scan(*args: str, cwd: Path) -> tuple[int, str, str]:
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, ["scan", "--no-cache", *args], catch_exceptions=False)
    finally:
        os.chdir(old)
    return result.exit_code, result.stdout, result.stderr


def _copy(src: Path, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(src, folder / "app.py")
    return folder


def _fixed_by(folder: Path, *flags: str) -> tuple[int, Counter[tuple[int, str]], str]:
    """`scan --fix FLAGS` on app.py: (fixes made, (line, code) it left alone, stderr)."""
    _, _, err = _scan("--format", "json", "--fix", *flags, "app.py", cwd=folder)
    made = re.search(r"^Fixed (\d+) problems?\.$", err, re.M)
    assert made, err
    left = Counter((int(line), code) for line, code in NOT_FIXED.findall(err))
    return int(made.group(1)), left, err


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_mark_shown_is_what_fix_then_does(name: str, tmp_path: Path) -> None:
    """For every finding of the golden fix inputs and the scan eval files: `[*]` exactly
    when `--fix` changes it, `[unsafe fix]` exactly when only `--fix --unsafe-fixes` does;
    the count of `--unsafe-fixes` fixes `--fix` announces is the number of `[unsafe fix]`."""
    src = FILES[name]
    folder = _copy(src, tmp_path, "marks")
    _, out, _ = _scan("--format", "json", "app.py", cwd=folder)
    findings = json.loads(out)["findings"]
    mark = {(f["line"], f["code"]): f["fix"] for f in findings}
    assert len(mark) == len(findings)
    _, concise, _ = _scan("--format", "concise", "app.py", cwd=folder)
    for f in findings:  # the same marks in the other formats (`CODE [*] message`)
        label = {"safe": " [*]", "unsafe": " [unsafe fix]", None: ""}[f["fix"]]
        assert f"app.py:{f['line']}:{f['column']}: {f['code']}{label} " in concise

    from hangdoctor.fix import FIXABLE

    safe_candidates = Counter(k for k in mark if FIXABLE.get(k[1]))
    every_candidate = Counter(k for k in mark if k[1] in FIXABLE)

    made, left, err = _fixed_by(_copy(src, tmp_path, "safe"))
    safe_marked = Counter(k for k, v in mark.items() if v == "safe")
    assert made == sum(safe_marked.values()), err
    assert safe_candidates - left == safe_marked, err
    unsafe_marked = Counter(k for k, v in mark.items() if v == "unsafe")
    hidden = re.search(r"^(\d+) more can be fixed with `--unsafe-fixes`", err, re.M)
    assert (int(hidden.group(1)) if hidden else 0) == sum(unsafe_marked.values()), err

    made, left, err = _fixed_by(_copy(src, tmp_path, "unsafe"), "--unsafe-fixes")
    assert made == sum(safe_marked.values()) + sum(unsafe_marked.values()), err
    assert every_candidate - left == safe_marked + unsafe_marked, err


def test_labels_follow_the_fixer_not_the_code(tmp_path: Path) -> None:
    """Three findings whose codes all have fixes: a plain `time.sleep` (`[*]`), a
    `requests.get` (`[unsafe fix]`), and an executor block the fixer refuses because the
    pool is also used by `submit` (no mark, though HD101's fix is safe). Every format says
    the same; the human summary counts only what `--fix` will fix."""
    app = tmp_path / "app.py"
    app.write_text(
        "import time\nfrom concurrent.futures import ThreadPoolExecutor\n\nimport requests\n\n\n"
        "async def f(url):\n    time.sleep(1)\n    requests.get(url)\n"
        "    with ThreadPoolExecutor() as ex:\n        ex.submit(print)\n"
    )
    _, human, _ = _scan("--format", "human", "app.py", cwd=tmp_path)
    assert "8:5  HD201 [*]" in human and "9:5  HD202 [unsafe fix]" in human
    assert "HD101 [" not in human and "1 fixable with" in human
    _, concise, _ = _scan("--format", "concise", "app.py", cwd=tmp_path)
    assert [line.split(" ")[1:3] for line in concise.splitlines()] == [
        ["HD201", "[*]"],
        ["HD202", "[unsafe"],
        ["HD101", "`with"],
    ]
    _, github, _ = _scan("--format", "github", "app.py", cwd=tmp_path)
    messages = [line.split("::")[2] for line in github.splitlines()]
    assert messages[0].startswith("[*] ") and messages[1].startswith("[unsafe fix] ")
    assert not messages[2].startswith("[")
    _, sarif, _ = _scan("--format", "sarif", "app.py", cwd=tmp_path)
    results = json.loads(sarif)["runs"][0]["results"]
    assert [r.get("properties", {}).get("fix") for r in results] == ["safe", "unsafe", None]


def test_a_file_too_big_for_the_fixer_gets_no_mark_and_no_fix(tmp_path: Path) -> None:
    """A file over the fixer's size limit is left alone by `--fix`, with the reason, and its
    findings carry no mark: the scan does not promise what the fixer will not do."""
    from hangdoctor.fix.api import MAX_FIX_CHARS

    filler = "".join(f"VALUE_{i} = {i}\n" for i in range(MAX_FIX_CHARS // 12))
    app = tmp_path / "app.py"
    app.write_text("import time\n" + filler + "\n\nasync def f():\n    time.sleep(1)\n")
    _, out, _ = _scan("--format", "json", "app.py", cwd=tmp_path)
    assert [f["fix"] for f in json.loads(out)["findings"]] == [None]
    _, _, err = _scan("--format", "json", "--fix", "app.py", cwd=tmp_path)
    assert "Fixed 0 problems." in err and "more than the fixer reads" in err


def _cached_scan(folder: Path) -> dict[tuple[int, str], str | None]:
    old = Path.cwd()
    os.chdir(folder)
    try:
        run = CliRunner().invoke(cli, ["scan", "--format", "json", "app.py"])
    finally:
        os.chdir(old)
    return {(f["line"], f["code"]): f["fix"] for f in json.loads(run.stdout)["findings"]}


def test_marks_are_kept_beside_the_cache_and_asked_again_when_the_file_changes(
    tmp_path: Path,
) -> None:
    """A repeated scan reuses the dry run's answer (`marks.json` in the scan cache); an
    edited file, or another fixer, is asked again."""
    folder = _copy(ROOT / "tests" / "data" / "scan" / "hd201_sleep.py", tmp_path, "proj")
    (folder / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    first = _cached_scan(folder)
    assert "safe" in first.values()
    store = folder / ".hangdoctor_cache" / "marks.json"
    data = json.loads(store.read_text())
    assert data["entries"]
    # an answer the fixer would never give: a second scan showing it read the store
    for entry in data["entries"].values():
        entry[1], entry[0] = entry[0] + entry[1], []
    store.write_text(json.dumps(data))
    second = _cached_scan(folder)
    assert "safe" not in second.values() and set(second) == set(first)
    # the file changed (one more line at the end): its own dry run, right marks again
    with (folder / "app.py").open("a") as fh:
        fh.write("\n# edited\n")
    assert _cached_scan(folder) == first
