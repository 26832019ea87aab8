"""A fix that takes away the last use of an imported name removes that import, and only then
(issue 11, item 5): no `import time` left behind, nothing else touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hangdoctor.fix import FixSite, fix_source

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")


def _sites(text: str) -> list[FixSite]:
    """An HD201 site at every line that starts with a sleep call."""
    lines = text.splitlines()
    starts = ("t.", "time.", "sleep(", "nap(")
    return [
        FixSite("HD201", n, 4) for n, ln in enumerate(lines, 1) if ln.strip().startswith(starts)
    ]


def _fix(text: str, *, unsafe: bool = False, sites: list[FixSite] | None = None) -> str:
    out = fix_source(text, sites if sites is not None else _sites(text), unsafe=unsafe)
    assert out.applied, out.skipped
    return out.text


def _lint(text: str, tmp_path: Path) -> str:
    """ruff's default rules plus E402, on `text`: "" when clean."""
    path = tmp_path / "fixed.py"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [str(RUFF), "check", "--isolated", "--no-cache", "--select", "E4,E7,E9,F,E402",
         "--output-format", "concise", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return "" if proc.returncode == 0 else proc.stdout + proc.stderr


GONE = {
    "import_time": (
        "import time\n\n\nasync def f():\n    time.sleep(1)\n",
        "import asyncio\n\n\nasync def f():\n    await asyncio.sleep(1)\n",
    ),
    "from_time_import_sleep": (
        "from time import sleep\n\n\nasync def f():\n    sleep(1)\n",
        "import asyncio\n\n\nasync def f():\n    await asyncio.sleep(1)\n",
    ),
    "import_time_as_t": (
        "import asyncio\nimport time as t\n\n\nasync def f():\n    t.sleep(1)\n"
        "    await asyncio.sleep(0)\n",
        "import asyncio\n\n\nasync def f():\n    await asyncio.sleep(1)\n"
        "    await asyncio.sleep(0)\n",
    ),
    "one_alias_of_several": (
        "from time import monotonic, sleep\n\n\nasync def f():\n    sleep(1)\n    "
        "return monotonic()\n",
        "import asyncio\nfrom time import monotonic\n\n\nasync def f():\n"
        "    await asyncio.sleep(1)\n    return monotonic()\n",
    ),
    "parenthesised_with_trailing_comma": (
        "from time import (\n    monotonic,  # clock\n    sleep,\n)\n\n\nasync def f():\n"
        "    sleep(1)\n    return monotonic()\n",
        "import asyncio\nfrom time import (\n    monotonic,  # clock\n)\n\n\nasync def f():\n"
        "    await asyncio.sleep(1)\n    return monotonic()\n",
    ),
    "comment_above_stays": (
        '"""Doc."""\n\nimport json\n\n# the clock\nimport time\n\nimport requests\n\n\n'
        "async def f():\n    time.sleep(1)\n    return json, requests\n",
        '"""Doc."""\n\nimport asyncio\nimport json\n\n# the clock\n\nimport requests\n\n\n'
        "async def f():\n    await asyncio.sleep(1)\n    return json, requests\n",
    ),
    "import_in_the_function": (
        "async def f():\n    import time\n\n    time.sleep(1)\n",
        "import asyncio\n\n\nasync def f():\n    await asyncio.sleep(1)\n",
    ),
    "two_sleeps_two_names": (
        "import time\nfrom time import sleep as nap\n\n\nasync def f():\n    time.sleep(1)\n"
        "    nap(2)\n",
        "import asyncio\n\n\nasync def f():\n    await asyncio.sleep(1)\n"
        "    await asyncio.sleep(2)\n",
    ),
}


@pytest.mark.parametrize("name", sorted(GONE))
def test_the_import_goes_with_its_last_use(name: str, tmp_path: Path) -> None:
    """Every spelling of the sleep's import goes when the fix took its last use; the rest of
    the import block, its comments and its blank lines stay; the result passes ruff."""
    before, expected = GONE[name]
    assert _lint(before, tmp_path) == ""
    after = _fix(before)
    assert after == expected
    assert _lint(after, tmp_path) == ""


KEPT = {
    "used_elsewhere": (
        "import time\n\n\nasync def f():\n    time.sleep(1)\n    return time.time()\n"
    ),
    "used_in_a_sync_helper": (
        "from time import sleep\n\n\ndef helper():\n    sleep(1)\n\n\nasync def f():\n"
        "    sleep(1)\n"
    ),
    "listed_in_dunder_all": (
        '__all__ = ["sleep", "f"]\n\nfrom time import sleep\n\n\nasync def f():\n    sleep(1)\n'
    ),
    "re_exported_as_itself": "from time import sleep as sleep\n\n\nasync def f():\n    sleep(1)\n",
    "conditional_import": (
        "try:\n    import time\nexcept ImportError:\n    time = None\n\n\nasync def f():\n"
        "    time.sleep(1)\n"
    ),
}


@pytest.mark.parametrize("name", sorted(KEPT))
def test_an_import_still_needed_or_exported_stays(name: str) -> None:
    """The import stays when the name is still used, exported (`__all__`, `as` itself) or
    imported under a condition (a fallback the fixer does not judge)."""
    before = KEPT[name]
    after = _fix(before)
    import_lines = [ln for ln in before.splitlines() if "import" in ln and "asyncio" not in ln]
    for line in import_lines:
        assert line in after.splitlines()


def test_an_import_that_was_already_unused_is_not_the_fixers_business() -> None:
    """Only imports the fix made unused go: one unused before the fix stays."""
    before = (
        "import time\n\n\ndef other():\n    import time\n\n    return 1\n\n\n"
        "async def f():\n    time.sleep(1)\n"
    )
    after = _fix(before)
    assert after.startswith("import asyncio\n\n\ndef other():\n    import time\n")
    assert "await asyncio.sleep(1)" in after


def test_a_third_party_name_moved_to_a_thread_is_still_used_and_stays(tmp_path: Path) -> None:
    """`from requests import get`: the unsafe fix passes `get` to `asyncio.to_thread`, so its
    import is still used, and stays."""
    before = "from requests import get\n\n\nasync def f(url):\n    return get(url)\n"
    after = _fix(before, unsafe=True, sites=[FixSite("HD202", 5, 11)])
    assert after == (
        "import asyncio\n\nfrom requests import get\n\n\nasync def f(url):\n"
        "    return await asyncio.to_thread(get, url)\n"
    )
    assert _lint(after, tmp_path) == ""


def test_the_hd101_fix_and_the_sleep_fix_drop_their_imports_together(tmp_path: Path) -> None:
    """Two fixes in one file each take the last use of an import: both imports go, and the
    `import asyncio` the sleep fix needs takes their place in the block."""
    before = (
        "import time\nfrom concurrent.futures import ThreadPoolExecutor\n\n\n"
        "async def f(loop):\n    with ThreadPoolExecutor() as ex:\n"
        "        x = await loop.run_in_executor(ex, len, 'abc')\n    time.sleep(x)\n"
    )
    sites = [FixSite("HD101", 6, 4), FixSite("HD201", 8, 4)]
    after = _fix(before, sites=sites)
    assert after == (
        "import asyncio\n\n\nasync def f(loop):\n"
        "    x = await loop.run_in_executor(None, len, 'abc')\n    await asyncio.sleep(x)\n"
    )
    assert _lint(after, tmp_path) == ""
