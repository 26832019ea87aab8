"""The pre-commit hook, run by the real pre-commit in a real git repository, and the
`--project` mode it uses: a staged file is judged with the rest of its project.

The hook under test is the one in the project's .pre-commit-hooks.yaml: its entry,
args, types, pass_filenames and require_serial are copied into a `repo: local` hook
(`language: system`, the entry pointing at this venv's hangdoctor), because pre-commit
would otherwise pip-install hangdoctor from the network."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.scan.conftest import ROOT
from tests.scan.test_cli import _run

BIN = Path(sys.executable).parent
PRE_COMMIT = BIN / "pre-commit"
HANGDOCTOR = BIN / "hangdoctor"
GIT = shutil.which("git")
DEADLINE = 120  # seconds, for every git and pre-commit run

NET = "import requests\n\n\ndef fetch(url):\n    return requests.get(url, timeout=5).json()\n"
DB = (
    "import sqlite3\n\n\n"
    "def load():\n    return sqlite3.connect('app.db').execute('select 1').fetchall()\n"
)
ROUTES = """\
from app.db import load
from app.net import fetch


async def news():
    return fetch("http://127.0.0.1:9/news")


async def rows():
    return load()
"""
ROUTES_FIXED = """\
import asyncio

from app.db import load
from app.net import fetch


async def news():
    return await asyncio.to_thread(fetch, "http://127.0.0.1:9/news")


async def rows():
    return await asyncio.to_thread(load)
"""
LEGACY = "import time\n\n\nasync def old():\n    time.sleep(1)\n"
CACHE = "def latest():\n    return {'items': []}\n"
CACHE_BLOCKING = (
    "import requests\n\n\ndef latest():\n"
    "    return requests.get('http://127.0.0.1:9/feed', timeout=5).json()\n"
)
FEED = "from app.cache import latest\n\n\nasync def feed():\n    return latest()\n"


def _hook_config() -> str:
    """A `repo: local` config running the manifest's hook with this venv's hangdoctor."""
    manifest = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (hook,) = [h for h in manifest if h["id"] == "hangdoctor-scan"]
    program, _, rest = hook["entry"].partition(" ")
    assert program == "hangdoctor"
    local = {
        "id": hook["id"],
        "name": hook["name"],
        "entry": f"{shlex.quote(str(HANGDOCTOR))} {rest}".strip(),
        "language": "system",
    }
    for key in ("args", "types", "types_or", "pass_filenames", "require_serial", "files"):
        if key in hook:
            local[key] = hook[key]
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": [local]}]}, sort_keys=False)


class Repo:
    """A git repository in a temporary folder, with its own HOME and pre-commit cache."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "repo"
        self.path.mkdir()
        home = tmp_path / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
        env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_CACHE_HOME=str(home / ".cache"),
            PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="Hang Doctor",
            GIT_AUTHOR_EMAIL="hd@example.invalid",
            GIT_COMMITTER_NAME="Hang Doctor",
            GIT_COMMITTER_EMAIL="hd@example.invalid",
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        self.env = env
        self.git("init", "-q", "-b", "main")

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )

    def git(self, *args: str) -> str:
        done = self.run(GIT or "git", *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            path = self.path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def commits(self) -> int:
        return int(self.git("rev-list", "--count", "HEAD"))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A project with a blocking HTTP helper, a blocking database helper, a legacy module
    with a finding of its own, and the hook configured; committed before the hook is
    installed, then `pre-commit install`."""
    if GIT is None:
        pytest.skip("git is not installed")
    if not PRE_COMMIT.exists():
        pytest.skip("pre-commit is not installed: it is in the test extra (.[test])")
    r = Repo(tmp_path)
    r.write(
        {
            "pyproject.toml": '[project]\nname = "app"\nversion = "0"\n',
            ".pre-commit-config.yaml": _hook_config(),
            "app/__init__.py": "",
            "app/net.py": NET,
            "app/db.py": DB,
            "app/cache.py": CACHE,
            "app/feed.py": FEED,
            "legacy.py": LEGACY,
        }
    )
    r.git("add", ".")
    r.git("commit", "-qm", "helpers")
    installed = r.run(PRE_COMMIT, "install")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return r


def test_commit_refused_when_a_staged_route_calls_a_blocking_helper(repo: Repo) -> None:
    """The staged route's cause is in modules that are not staged: the hook sees it,
    `git commit` is refused with both chains shown, and goes through once fixed, though
    another file of the project (not staged) still has a finding."""
    repo.write({"app/routes.py": ROUTES})
    repo.git("add", "app/routes.py")

    # the old hook: the staged file scanned alone passes
    alone = repo.run(HANGDOCTOR, "scan", "--no-cache", "app/routes.py")
    assert alone.returncode == 0, alone.stdout

    ran = repo.run(PRE_COMMIT, "run")
    out = ran.stdout + ran.stderr
    assert ran.returncode == 1, out
    assert "Failed" in out
    assert "6:12  HD202" in out and "app/net.py:5" in out
    assert "10:12  HD203" in out and "app/db.py:5" in out
    assert "legacy.py" not in out  # not staged, not reached: not this commit's business

    refused = repo.run(GIT or "git", "commit", "-m", "routes")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    assert "HD202" in out and "HD203" in out and "app/routes.py" in out
    assert repo.commits() == 1

    repo.write({"app/routes.py": ROUTES_FIXED})
    repo.git("add", "app/routes.py")
    allowed = repo.run(GIT or "git", "commit", "-m", "routes")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "hangdoctor scan" in allowed.stdout + allowed.stderr  # the hook did run
    assert repo.commits() == 2


def test_commit_refused_when_a_staged_helper_starts_blocking(repo: Repo) -> None:
    """A helper made to block is staged alone: the unchanged async route that calls it
    (not staged) is reported, with a note naming the staged file it goes through."""
    repo.write({"app/cache.py": CACHE_BLOCKING})
    repo.git("add", "app/cache.py")
    refused = repo.run(GIT or "git", "commit", "-m", "fetch the feed")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    assert "app/feed.py" in out and "HD202" in out
    assert "app/feed.py:5: HD202 is reported though app/feed.py is not among the files" in out
    assert "its chain goes through app/cache.py" in out
    assert repo.commits() == 1


# ---- --project without pre-commit ------------------------------------------------------


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


APP = {
    "pyproject.toml": '[project]\nname = "app"\n',
    "app/__init__.py": "",
    "app/net.py": NET,
    "app/db.py": DB,
    "app/routes.py": ROUTES,
    "app/cache.py": CACHE_BLOCKING,
    "app/feed.py": FEED,
    "legacy.py": LEGACY,
    "broken.py": "def f(:\n",
}


def _lines(out: str) -> list[str]:
    return [" ".join(line.split()[:2]) for line in out.splitlines()]


def test_project_reports_what_concerns_the_given_files(tmp_path: Path) -> None:
    """Findings in the given file through other modules, in callers through it; not the
    rest of the project, whose syntax error does not make the status 2 either."""
    root = _project(tmp_path, APP)
    code, out, err = _run(
        "--no-cache", "--format", "concise", "--project", "app/routes.py", cwd=root
    )
    assert (code, _lines(out), err) == (
        1,
        ["app/routes.py:6:12: HD202", "app/routes.py:10:12: HD203"],
        "",
    )
    code, out, err = _run(
        "--no-cache", "--format", "concise", "--project", "app/cache.py", cwd=root
    )
    assert (code, _lines(out)) == (1, ["app/feed.py:5:12: HD202"])
    assert "its chain goes through app/cache.py" in err
    code, out, _ = _run(
        "--no-cache", "--format", "concise", "--project", "app/db.py", "app/net.py", cwd=root
    )
    assert (code, _lines(out)) == (1, ["app/routes.py:6:12: HD202", "app/routes.py:10:12: HD203"])
    code, out, _ = _run("--no-cache", "--project", "app/__init__.py", cwd=root)
    assert code == 0 and "No problems found" in out
    # a given file that does not parse is still reported, and still exits 2
    code, out, _ = _run("--no-cache", "--format", "concise", "--project", "broken.py", cwd=root)
    assert code == 2 and out.startswith("broken.py:1:")


def test_project_is_found_from_a_subfolder(tmp_path: Path) -> None:
    """Run from anywhere, the project is the nearest pyproject.toml above the file."""
    root = _project(tmp_path, APP)
    code, out, _ = _run(
        "--no-cache", "--format", "concise", "--project", "routes.py", cwd=root / "app"
    )
    assert (code, _lines(out)) == (1, ["routes.py:6:12: HD202", "routes.py:10:12: HD203"])


def test_project_per_project_in_a_monorepo(tmp_path: Path) -> None:
    """Files of two projects in one repository: each is judged within its own project."""
    for name in ("one", "two"):
        _project(tmp_path / name, {k: v for k, v in APP.items() if k != "broken.py"})
    (tmp_path / ".git").mkdir()
    code, out, _ = _run(
        "--no-cache", "--format", "concise", "--project", "one/app/routes.py", "two/app/cache.py",
        cwd=tmp_path,
    )  # fmt: skip
    assert (code, _lines(out)) == (
        1,
        [
            "one/app/routes.py:6:12: HD202",
            "one/app/routes.py:10:12: HD203",
            "two/app/feed.py:5:12: HD202",
        ],
    )


def test_project_scan_uses_the_cache(tmp_path: Path) -> None:
    """A second hook run on an unchanged tree parses nothing."""
    root = _project(tmp_path, APP)
    args = ("--format", "json", "--project", "app/routes.py")
    _, first, _ = _run(*args, cwd=root)
    code, second, _ = _run(*args, cwd=root)
    assert json.loads(first)["stats"]["parsed"] == 7  # broken.py does not parse
    stats = json.loads(second)["stats"]
    assert code == 1 and stats["parsed"] == 0 and stats["cached"] == 7
    assert [f["line"] for f in json.loads(second)["findings"]] == [6, 10]


def test_project_fixes_only_the_given_files(tmp_path: Path) -> None:
    """--fix in a hook does not rewrite files that were not staged: the caller reported
    through a staged helper is left as it is."""
    root = _project(tmp_path, APP)
    code, _, _ = _run(
        "--no-cache", "--project", "--fix", "--unsafe-fixes", "app/cache.py", cwd=root
    )
    assert code == 1
    assert (root / "app" / "feed.py").read_text() == FEED
    code, _, _ = _run(
        "--no-cache", "--fix", "--unsafe-fixes", "app/feed.py", "app/cache.py", cwd=root
    )
    assert (root / "app" / "feed.py").read_text() != FEED  # the fix exists: it was held back


def test_project_startup_findings_of_other_files_stay_out(tmp_path: Path) -> None:
    """A blocking call in a lifespan that is neither given nor reached through a given
    file does not fail the hook, even with --fail-on-startup; given, it does."""
    life = (
        "import time\nfrom contextlib import asynccontextmanager\n\nfrom fastapi import FastAPI"
        "\n\n\n@asynccontextmanager\nasync def setup(app):\n    time.sleep(1)\n    yield\n\n\n"
        "app = FastAPI(lifespan=setup)\n"
    )
    root = _project(tmp_path, {**APP, "app/life.py": life})
    args = ("--no-cache", "--format", "concise", "--fail-on-startup", "--project")
    code, out, _ = _run(*args, "app/__init__.py", cwd=root)
    assert (code, out) == (0, "")
    code, out, _ = _run(*args, "app/life.py", cwd=root)
    assert code == 1 and out.startswith("app/life.py:9:5: note: HD201 [startup]")
