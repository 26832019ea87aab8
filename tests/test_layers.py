"""The layers of DESIGN.md, read from the imports: sources and analysis never reach up to renderers.

Sources (capture, probe) produce the model, the analysis judges it, renderers (report) draw
it, and the CLI ties them together. A lower layer that imports a renderer or the CLI is
the start of a tangle (and of import cycles), so every import of every module is read,
those inside functions included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import imported_modules

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hangdoctor"

# the layers under the renderers: none of them may import report/ or cli/
LOWER = ("model.py", "catalog", "capture", "analysis", "probe", "scan", "fix", "runtime")
UPPER = ("hangdoctor.report", "hangdoctor.cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _reaches_up(name: str) -> bool:
    return any(name == upper or name.startswith(upper + ".") for upper in UPPER)


def _modules(layer: str) -> list[Path]:
    root = PACKAGE / layer
    return [root] if root.is_file() else sorted(root.rglob("*.py"))


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_never_import_renderers_or_the_cli(layer: str) -> None:
    """capture, analysis, probe (and the rest under report/) import neither report/ nor cli/."""
    modules = _modules(layer)
    assert modules, layer
    wrong: list[str] = []
    for path in modules:
        name = _module_name(path)
        source = path.read_text(encoding="utf-8")
        imported = imported_modules(source, name, is_package=path.name == "__init__.py")
        wrong += [f"{name} imports {m}" for m in sorted(imported) if _reaches_up(m)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "source",
    [
        "import hangdoctor.report.terminal",
        "from hangdoctor.report.terminal import render_terminal",
        "from hangdoctor import report",
        "from ..report import html",
        "from ..cli.main import entry",
        "def f():\n    from hangdoctor.report.json_report import diagnosis_to_jsonable\n",
    ],
)
def test_every_form_of_import_is_seen(source: str) -> None:
    """Absolute, relative, `from package import module`, and imports inside functions."""
    imported = imported_modules(source, "hangdoctor.probe.engine")
    assert any(_reaches_up(m) for m in imported), imported


def test_imports_inside_the_layer_are_not_flagged() -> None:
    """A probe module importing the model or its own package is fine."""
    source = "from hangdoctor.model import Frame\nfrom . import timeline\nimport rich.table\n"
    imported = imported_modules(source, "hangdoctor.probe.engine")
    assert "hangdoctor.probe.timeline" in imported
    assert not any(_reaches_up(m) for m in imported)
