"""Renderers: the diagnosis and the catalog for a terminal, as JSON, and as docs/rules/.

Renderers never analyse; they only read the model and the catalog.
"""

from __future__ import annotations

from hangdoctor.report.explain import render_rule, render_rule_list
from hangdoctor.report.json_report import diagnosis_from_json, diagnosis_to_json
from hangdoctor.report.terminal import render_terminal

__all__ = [
    "diagnosis_from_json",
    "diagnosis_to_json",
    "render_rule",
    "render_rule_list",
    "render_terminal",
]
