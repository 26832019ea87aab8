"""What git ignores is not scanned: nested .gitignore files, negations, info/exclude,
the global excludes file, whole folders; named paths, --no-respect-gitignore, and trees
outside git. Real `git` is the oracle where it can be."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hangdoctor.scan import ScanConfig, ScanConfigError, load_config
from hangdoctor.scan.files import discover
from tests.scan.test_cli import _run

GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="git is not installed")

BLOCKS = "import time\n\n\nasync def f():\n    time.sleep(1)\n"


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A HOME and XDG_CONFIG_HOME of the test's own: no global git settings leak in."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return dict(os.environ)


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [GIT or "git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _found(root: Path, *paths: Path, respect: bool = True) -> list[str]:
    """The files a scan of `paths` (default: `root`) reads, relative to `root`."""
    config = ScanConfig(root=root, respect_gitignore=respect)
    files, _ = discover(list(paths) or [root], config, cwd=root)
    return sorted(f.relative for f in files)


def _git_sees(root: Path) -> list[str]:
    """The .py files `git ls-files` lists as not ignored, the oracle."""
    out = _git(root, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.py")
    return sorted(p for p in out.split("\0") if p)


TREE = {
    ".gitignore": "gen/\n*_pb2.py\n!keep_pb2.py\n/top_only.py\ndata/*\n!data/wanted.py\n",
    "main.py": BLOCKS,
    "top_only.py": BLOCKS,
    "sub/top_only.py": BLOCKS,
    "msg_pb2.py": BLOCKS,
    "keep_pb2.py": BLOCKS,
    "gen/a.py": BLOCKS,
    "gen/deep/b.py": BLOCKS,
    "data/wanted.py": BLOCKS,
    "data/other.py": BLOCKS,
    # a nested .gitignore adds patterns, and a deeper one takes a pattern back
    "pkg/.gitignore": "local.py\nscratch/\n",
    "pkg/local.py": BLOCKS,
    "pkg/mod.py": BLOCKS,
    "pkg/scratch/s.py": BLOCKS,
    "pkg/inner/.gitignore": "!local.py\n",
    "pkg/inner/local.py": BLOCKS,
    "pkg/inner/more/local.py": BLOCKS,
    "excluded_locally.py": BLOCKS,
    "globally_ignored.py": BLOCKS,
}


def _repo(root: Path) -> Path:
    _tree(root, TREE)
    _git(root, "init", "-q")
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("excluded_locally.py\n")
    return root


def test_same_files_as_git(tmp_path: Path, git_env: dict[str, str]) -> None:
    """Nested files, negations, anchored patterns, `dir/*` with an exception,
    .git/info/exclude and the global excludes file: the scan reads what git lists."""
    (Path(git_env["XDG_CONFIG_HOME"]) / "git").mkdir()
    (Path(git_env["XDG_CONFIG_HOME"]) / "git" / "ignore").write_text("globally_ignored.py\n")
    root = _repo(tmp_path / "repo")
    found = _found(root)
    assert found == _git_sees(root)
    assert found == [
        "data/wanted.py",
        "keep_pb2.py",
        "main.py",
        "pkg/inner/local.py",
        "pkg/inner/more/local.py",
        "pkg/mod.py",
        "sub/top_only.py",
    ]


def test_core_excludes_file_setting(tmp_path: Path, git_env: dict[str, str]) -> None:
    """`core.excludesFile` in ~/.gitconfig replaces the default global file."""
    home = Path(git_env["HOME"])
    (home / "my-ignores").write_text("main.py\n")
    (home / ".gitconfig").write_text(
        '[user]\n\tname = x\n[core]\n\texcludesFile = "~/my-ignores"\n'
    )
    root = _repo(tmp_path / "repo")
    found = _found(root)
    assert "main.py" not in found and "pkg/mod.py" in found
    assert found == _git_sees(root)


def test_a_subfolder_scanned_alone_keeps_the_rules_above(
    tmp_path: Path, git_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scanning `pkg/` applies the repository's and pkg's .gitignore files."""
    root = _repo(tmp_path / "repo")
    assert _found(root, root / "pkg") == [
        "pkg/inner/local.py",
        "pkg/inner/more/local.py",
        "pkg/mod.py",
    ]
    # a relative path with `..` in it finds the same repository
    monkeypatch.chdir(root)
    dotted = _found(root, Path("pkg") / ".." / "pkg")
    assert [os.path.normpath(p) for p in dotted] == _found(root, root / "pkg")


def test_ignored_folder_is_not_entered(tmp_path: Path, git_env: dict[str, str]) -> None:
    """A folder ignored wholesale is skipped without a look inside (a symlink loop in it,
    which a walk would report, goes unseen)."""
    root = _repo(tmp_path / "repo")
    (root / "gen" / "loop").symlink_to(root / "gen")
    config = ScanConfig(root=root)
    files, problems = discover([root], config, cwd=root)
    assert not [f for f in files if f.relative.startswith("gen/")]
    assert problems == []
    _, problems = discover([root], ScanConfig(root=root, respect_gitignore=False), cwd=root)
    assert any("gen/loop" in p.path for p in problems)


def test_named_paths_are_scanned_even_when_ignored(tmp_path: Path, git_env: dict[str, str]) -> None:
    """Like ruff: a file named on the command line is scanned whatever git says, and so
    is a named folder (the .gitignore files inside it still apply)."""
    root = _repo(tmp_path / "repo")
    assert _found(root, root / "msg_pb2.py") == ["msg_pb2.py"]
    assert _found(root, root / "gen") == ["gen/a.py", "gen/deep/b.py"]
    (root / "gen" / ".gitignore").write_text("deep/\n")
    assert _found(root, root / "gen") == ["gen/a.py"]
    code, out, _ = _run("--no-cache", "--format", "concise", "msg_pb2.py", cwd=root)
    assert code == 1 and out.startswith("msg_pb2.py:5:5: HD201")


def test_no_respect_gitignore(tmp_path: Path, git_env: dict[str, str]) -> None:
    """--no-respect-gitignore and `respect-gitignore = false` scan everything (but the
    always-skipped folders); the flag wins over the setting."""
    root = _repo(tmp_path / "repo")
    _tree(root, {".venv/lib/x.py": BLOCKS, "node_modules/y.py": BLOCKS})
    everything = sorted(p for p in TREE if p.endswith(".py"))
    assert _found(root, respect=False) == everything
    code, out, _ = _run("--no-cache", "--format", "concise", "--no-respect-gitignore", cwd=root)
    assert code == 1
    assert sorted(line.split(":")[0] for line in out.splitlines()) == everything
    (root / "pyproject.toml").write_text("[tool.hangdoctor]\nrespect-gitignore = false\n")
    assert load_config([root]).respect_gitignore is False
    _, out, _ = _run("--no-cache", "--format", "concise", cwd=root)
    assert sorted(line.split(":")[0] for line in out.splitlines()) == everything
    _, out, _ = _run("--no-cache", "--format", "concise", "--respect-gitignore", cwd=root)
    shown = sorted(line.split(":")[0] for line in out.splitlines())
    assert shown == [p for p in _git_sees(root) if not p.startswith((".venv/", "node_modules/"))]


def test_bad_setting_is_one_sentence(tmp_path: Path) -> None:
    """`respect-gitignore = "no"` is refused with what to write, exit 2."""
    (tmp_path / "pyproject.toml").write_text('[tool.hangdoctor]\nrespect-gitignore = "no"\n')
    with pytest.raises(ScanConfigError, match="not true or false"):
        load_config([tmp_path])
    code, out, err = _run("--no-cache", cwd=tmp_path)
    assert code == 2 and "respect-gitignore" in out + err and "Traceback" not in out + err


def test_outside_a_git_repository(tmp_path: Path, git_env: dict[str, str]) -> None:
    """With no `.git` at or above the tree a .gitignore is just a file, as for git, ripgrep
    and ruff; the usual folders are still skipped."""
    root = _tree(tmp_path / "plain", dict(TREE))
    _tree(root, {".venv/lib/x.py": BLOCKS, "build/z.py": BLOCKS})
    assert _found(root) == sorted(p for p in TREE if p.endswith(".py"))


def test_nested_repository_has_its_own_rules(tmp_path: Path, git_env: dict[str, str]) -> None:
    """A clone inside the tree follows its own ignore files, not the outer ones; a tree
    that is no repository still honours the clones in it."""
    outer = _tree(tmp_path / "outer", {".gitignore": "vendored.py\n", "vendored.py": BLOCKS})
    _git(outer, "init", "-q")
    inner = _tree(outer / "clone", {".gitignore": "secret.py\n", "vendored.py": BLOCKS})
    _tree(inner, {"secret.py": BLOCKS, "ok.py": BLOCKS})
    _git(inner, "init", "-q")
    assert _found(outer) == ["clone/ok.py", "clone/vendored.py"]
    plain = _tree(tmp_path / "plain", {"a.py": BLOCKS})
    shutil.move(str(inner), str(plain / "clone"))
    assert _found(plain) == ["a.py", "clone/ok.py", "clone/vendored.py"]


def test_worktree_reads_the_shared_exclude(tmp_path: Path, git_env: dict[str, str]) -> None:
    """In a `git worktree` (`.git` is a file) info/exclude is the main repository's."""
    main = _tree(tmp_path / "main", {"a.py": BLOCKS, "b.py": BLOCKS})
    _git(main, "init", "-q")
    _git(main, "add", ".")
    _git(main, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "one")
    _git(main, "worktree", "add", "-q", str(tmp_path / "wt"))
    wt = tmp_path / "wt"
    (main / ".git" / "info").mkdir(exist_ok=True)
    (main / ".git" / "info" / "exclude").write_text("new.py\n")
    _tree(wt, {"new.py": BLOCKS, "other.py": BLOCKS})
    assert (wt / ".git").is_file()
    assert _found(wt) == ["a.py", "b.py", "other.py"] == _git_sees(wt)
