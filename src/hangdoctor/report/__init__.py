"""Renderers: the diagnosis and the catalog for a terminal, as JSON, and as docs/rules/.

Renderers never analyse; they only read the model and the catalog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hangdoctor._lazy import lazy_attributes

if TYPE_CHECKING:
    from hangdoctor.report.explain import render_rule, render_rule_list
    from hangdoctor.report.json_report import diagnosis_from_json, diagnosis_to_json
    from hangdoctor.report.terminal import render_terminal

# rich is imported by the renderers that use it: `scan --format concise` in a
# pre-commit hook never pays for it
_LAZY = {
    "render_rule": "hangdoctor.report.explain",
    "render_rule_list": "hangdoctor.report.explain",
    "diagnosis_from_json": "hangdoctor.report.json_report",
    "diagnosis_to_json": "hangdoctor.report.json_report",
    "render_terminal": "hangdoctor.report.terminal",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "diagnosis_from_json",
    "diagnosis_to_json",
    "render_rule",
    "render_rule_list",
    "render_terminal",
]
