"""The two distributions built from src/hangdoctor stay a clean split.

hangdoctor-runtime (packaging/hangdoctor-runtime: the watchdog, middleware, executors and
pytest plugin, standard library only) and hangdoctor (the root pyproject.toml: the CLI,
which depends on it) share one source tree. Each file must belong to exactly one of them,
the runtime's files must never import a module only the CLI ships (a production image
with the runtime alone would fail at import, or worse, at the first stall), nor a
third-party package, and the versions must agree. Read from the sources here, in
milliseconds; tests/test_wheel.py checks the built wheels themselves.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.imports import imported_modules

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SRC = ROOT / "src" / "hangdoctor"
RUNTIME_PROJECT = ROOT / "packaging" / "hangdoctor-runtime"
# imported only where the extra is installed (runtime/metrics.py, runtime/otel.py)
EXTRAS = {"prometheus_client": "prometheus", "opentelemetry": "otel"}
# the plugin module runs inside pytest, which is there whenever it is loaded
PROVIDED = {"hangdoctor/pytest_plugin.py": {"pytest", "_pytest", "pluggy"}}


def _runtime_files() -> tuple[str, ...]:
    """RUNTIME_FILES of the runtime's build hook, read without importing hatchling."""
    tree = ast.parse((RUNTIME_PROJECT / "hatch_build.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "RUNTIME_FILES" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple)
            return tuple(str(v) for v in value)
    raise AssertionError("RUNTIME_FILES not found in hatch_build.py")


def _pyproject(path: Path) -> dict[str, object]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _expand(names: tuple[str, ...]) -> set[str]:
    """Every .py file (relative to src/, e.g. hangdoctor/runtime/stall.py) the names cover."""
    files: set[str] = set()
    for name in names:
        path = SRC / name
        found = sorted(path.rglob("*")) if path.is_dir() else [path]
        assert path.exists(), f"{name} is listed but does not exist"
        files |= {
            p.relative_to(SRC.parent).as_posix()
            for p in found
            if p.is_file() and "__pycache__" not in p.parts
        }
    return files


def _module_file(module: str) -> str | None:
    """The file under src/ of a hangdoctor module; None when there is none."""
    parts = module.split(".")
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts) / "__init__.py"):
        if (SRC.parent / candidate).is_file():
            return candidate.as_posix()
    return None


def _imports(file: str) -> set[str]:
    """Every module `file` must import (see `imported_modules`, `required_only`)."""
    path = SRC.parent / file
    module = file.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return imported_modules(
        path.read_text(encoding="utf-8"),
        module,
        is_package=path.name == "__init__.py",
        required_only=True,
    )


def test_each_file_belongs_to_exactly_one_distribution() -> None:
    """The root wheel leaves out exactly what the runtime's build hook picks."""
    runtime = _runtime_files()
    wheel = _pyproject(ROOT / "pyproject.toml")["tool"]["hatch"]["build"]["targets"]["wheel"]  # type: ignore[index]
    excluded = tuple(x.removeprefix("src/hangdoctor/") for x in wheel["exclude"])  # type: ignore[index]
    assert sorted(excluded) == sorted(runtime)


def test_the_runtime_imports_only_its_own_files_and_the_standard_library() -> None:
    runtime = _expand(_runtime_files())
    problems: list[str] = []
    for file in sorted(runtime):
        if not file.endswith(".py"):
            continue
        for module in sorted(_imports(file)):
            top = module.split(".")[0]
            if top == "hangdoctor":
                target = _module_file(module)
                if target is not None and target not in runtime:
                    problems.append(f"{file} imports {module} ({target}), not in the runtime")
            elif top in EXTRAS:
                if not file.startswith(("hangdoctor/runtime/metrics", "hangdoctor/runtime/otel")):
                    problems.append(f"{file} imports {module} outside the {EXTRAS[top]} module")
            elif (
                top not in sys.stdlib_module_names
                and top != "__future__"
                and top not in PROVIDED.get(file, set())
                and not top.startswith("_")  # C modules of the standard library
            ):
                problems.append(f"{file} imports {module}: not the standard library")
    # the CLI's own modules exist and are left out: the check above can find such imports
    assert _module_file("hangdoctor.cli.main") not in runtime
    assert not problems, "\n".join(problems)


def test_the_import_check_sees_late_imports_and_skips_guarded_ones() -> None:
    # the guards the runtime test relies on: a late import is still an import...
    assert "hangdoctor.runtime.watchdog" in _imports("hangdoctor/runtime/autoinstall.py")
    # ...and one whose failure is handled is not required
    assert "anyio.to_thread" not in _imports("hangdoctor/runtime/metrics.py")
    assert "hangdoctor.cli.main" not in _imports("hangdoctor/__main__.py")


def test_versions_agree() -> None:
    """One version: both projects, the pin on the runtime, and `hangdoctor.__version__`."""
    tool = _pyproject(ROOT / "pyproject.toml")["project"]
    runtime = _pyproject(RUNTIME_PROJECT / "pyproject.toml")["project"]
    version = tool["version"]  # type: ignore[index]
    assert runtime["version"] == version  # type: ignore[index]
    assert f"hangdoctor-runtime=={version}" in tool["dependencies"]  # type: ignore[index]
    namespace: dict[str, object] = {}
    init = (SRC / "__init__.py").read_text(encoding="utf-8")
    exec(compile(ast.parse(init), "__init__.py", "exec"), namespace)
    assert namespace["__version__"] == version


@pytest.mark.parametrize("extra", sorted(set(EXTRAS.values())))
def test_the_tools_extras_are_the_runtimes(extra: str) -> None:
    """`hangdoctor[otel]` installs what `hangdoctor-runtime[otel]` does: one list, not two."""
    tool = _pyproject(ROOT / "pyproject.toml")["project"]["optional-dependencies"]  # type: ignore[index]
    runtime = _pyproject(RUNTIME_PROJECT / "pyproject.toml")["project"]["optional-dependencies"]  # type: ignore[index]
    assert tool[extra] == [f"hangdoctor-runtime[{extra}]"]
    assert runtime[extra]
