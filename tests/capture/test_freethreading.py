"""Free-threaded CPython (3.13t/3.14t) is recognised from outside and refused, never guessed.

No free-threaded interpreter is packaged for Debian (sid has no python3.14-nogil) and
none can be built here, so these targets are real processes laid out as one is: the
interpreter binary under its free-threaded name (python3.14t), or a shared object
under the name a free-threaded runtime or extension module has (libpython3.14t.so,
*.cpython-314t-*.so) mapped with ctypes. What is recognised is exactly what /proc
shows of a real one (see docs/python-versions.md).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

import pytest
from tests.capture.conftest import READY, StartTarget
from tests.conftest import run_hangdoctor

from hangdoctor.capture.freethreading import FreeThreadedError, free_threaded_evidence
from hangdoctor.capture.preflight import preflight
from hangdoctor.capture.procs import process_info
from hangdoctor.errors import EXIT_COULD_NOT_LOOK

SLEEP = f"import time\nprint({READY!r}, flush=True)\ntime.sleep(120)\n"


def _interpreter_named(tmp_path: Path, name: str) -> Path:
    """A copy of this interpreter's binary under `name` (a symlink would resolve in /proc)."""
    copy = tmp_path / name
    shutil.copy2(os.path.realpath(sys.executable), copy)
    return copy


def _mapping(python_target: StartTarget, library: Path) -> int:
    """A default-build Python that has mapped `library` (dlopen through ctypes)."""
    code = f"import ctypes\nctypes.CDLL({str(library)!r})\n{SLEEP}"
    return python_target(code).pid


def _extension_module() -> Path:
    """A real extension module of this interpreter, to copy under a free-threaded name."""
    for name in ("_ctypes", "_socket", "_struct", "select", "_json"):
        path = getattr(importlib.import_module(name), "__file__", None)
        if path and path.endswith(".so"):
            return Path(path)
    pytest.skip("this interpreter has its extension modules built in: none to copy")


def test_interpreter_named_python314t_is_refused(
    python_target: StartTarget, tmp_path: Path
) -> None:
    """GIVEN a process whose executable is python3.14t WHEN preflight runs THEN it is refused
    with the evidence named, before py-spy could misread it."""
    pid = python_target(argv=[str(_interpreter_named(tmp_path, "python3.14t")), "-c", SLEEP]).pid
    assert free_threaded_evidence(process_info(pid)) == "its interpreter is python3.14t"
    with pytest.raises(FreeThreadedError) as err:
        preflight(pid)
    assert "free-threaded" in err.value.message and "python3.14t" in err.value.message
    assert "default (GIL) build" in err.value.remedy


def test_debug_build_name_is_recognised(python_target: StartTarget, tmp_path: Path) -> None:
    """The free-threaded debug build's name (python3.13td) is recognised too."""
    pid = python_target(argv=[str(_interpreter_named(tmp_path, "python3.13td")), "-c", SLEEP]).pid
    assert free_threaded_evidence(process_info(pid)) == "its interpreter is python3.13td"


def test_mapped_free_threaded_runtime_is_recognised(
    python_target: StartTarget, tmp_path: Path
) -> None:
    """An embedding program that maps libpython3.13t.so is free-threaded, whatever its name."""
    lib = tmp_path / "libpython3.13t.so.1.0"
    shutil.copy2(_extension_module(), lib)
    pid = _mapping(python_target, lib)
    assert free_threaded_evidence(process_info(pid)) == "libpython3.13t.so is mapped"


def test_free_threaded_extension_modules_are_recognised(
    python_target: StartTarget, tmp_path: Path
) -> None:
    """A renamed, static interpreter still gives itself away by its extension modules' ABI tag
    (cpython-314t), e.g. from site-packages."""
    site = tmp_path / "site-packages"
    site.mkdir()
    module = site / "_speedups.cpython-314t-x86_64-linux-gnu.so"
    shutil.copy2(_extension_module(), module)
    pid = _mapping(python_target, module)
    assert free_threaded_evidence(process_info(pid)) == (
        "it loads extension modules built for cpython-314t"
    )


def test_default_builds_are_not_refused(python_target: StartTarget, tmp_path: Path) -> None:
    """A default build is never taken for free-threaded: this interpreter, one copied as
    python3.14 (no `t`), and one that maps a default-ABI extension module."""
    assert free_threaded_evidence(process_info(os.getpid())) is None
    plain = python_target(argv=[str(_interpreter_named(tmp_path, "python3.14")), "-c", SLEEP])
    assert free_threaded_evidence(process_info(plain.pid)) is None
    preflight(plain.pid)  # no error
    module = tmp_path / "_speedups.cpython-314-x86_64-linux-gnu.so"
    shutil.copy2(_extension_module(), module)
    assert free_threaded_evidence(process_info(_mapping(python_target, module))) is None


@pytest.mark.e2e
def test_diagnose_refuses_in_one_sentence(python_target: StartTarget, tmp_path: Path) -> None:
    """`diagnose --pid` of a free-threaded target exits 2 with the sentence, no traceback,
    and never a verdict."""
    pid = python_target(argv=[str(_interpreter_named(tmp_path, "python3.14t")), "-c", SLEEP]).pid
    proc = run_hangdoctor("diagnose", "--pid", str(pid), "--format", "json")
    assert proc.returncode == EXIT_COULD_NOT_LOOK, proc.stdout + proc.stderr
    assert "runs a free-threaded Python (its interpreter is python3.14t)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "healthy" not in proc.stdout.lower() and "blocked" not in proc.stdout.lower()
