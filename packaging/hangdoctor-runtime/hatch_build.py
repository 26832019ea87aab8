"""Picks hangdoctor-runtime's files out of the checkout's src/hangdoctor for its wheel.

A build hook rather than `force-include` in pyproject.toml: hatchling applies
force-include to editable installs too, and those copies in site-packages would shadow
the checkout, hiding the command line's modules from a development install. An
editable install gets only the .pth of `dev-mode-dirs`.

The root pyproject.toml leaves these same files out of the `hangdoctor` wheel
(tests/test_packaging.py checks that the two lists agree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SRC = Path(__file__).resolve().parents[2] / "src" / "hangdoctor"

# what the runtime imports, and nothing that needs a third-party package
RUNTIME_FILES = (
    "__init__.py",
    "__main__.py",
    "_lazy.py",
    "errors.py",
    "executors.py",
    "model.py",
    "py.typed",
    "pytest_plugin.py",
    "timefmt.py",
    "analysis",
    "capture/__init__.py",
    "capture/inprocess.py",
    "capture/redact.py",
    "capture/schedstat.py",
    "catalog",
    "runtime",
)


class RuntimeFiles(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        if not SRC.is_dir():
            raise RuntimeError(
                f"hangdoctor-runtime is built from a checkout of hangdoctor: {SRC} is missing"
            )
        for name in RUNTIME_FILES:
            build_data["force_include"][str(SRC / name)] = f"hangdoctor/{name}"
