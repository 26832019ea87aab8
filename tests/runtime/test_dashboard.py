"""docs/grafana/hangdoctor-dashboard.json asks only for metrics the runtime exports, and
shows every one of them.

The exported names come from a real scrape: `HangdoctorMetrics` in its own registry,
served by prometheus_client's HTTP server on 127.0.0.1 and read over HTTP, so a renamed
metric, or a suffix the client adds (`_total`, `_bucket`), is seen as Prometheus sees it.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from hangdoctor.runtime.metrics import HangdoctorMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "hangdoctor-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# PromQL words that are neither functions (followed by `(`) nor metric names
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
KEYWORDS |= {"and", "or", "unless", "inf", "nan"}
NAME = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*")  # not the `m` of `5m`, nor of `1e3`


@pytest.fixture(scope="module")
def scrape() -> dict[str, set[str]]:
    """{metric family: its sample names}, from a real /metrics scrape over HTTP."""
    registry = CollectorRegistry()
    metrics = HangdoctorMetrics(registry)
    metrics.loop_lag.observe(0.02)
    metrics.stalls.labels("HD201").inc()  # labelled series appear once they have a child
    metrics.stuck.labels("HD601").inc()
    metrics.stream_opened()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode("utf-8")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    families: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("hangdoctor_"):
            # the client also exports `X_created` (a timestamp) for a counter or histogram X;
            # the text format makes it a family of its own: it belongs to X
            name = family.name.removesuffix("_created")
            families.setdefault(name, set()).update(s.name for s in family.samples)
    return families


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            text = query["query"] if isinstance(query, dict) else query
            # label_values(METRIC{...}, label): the metric is a name, the label is not
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", text)
            yield f"variable {var['name']}", m.group(1) if m else text


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings (label values, legends)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    names = set()
    for m in NAME.finditer(text):
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or m.group(0).lower() in KEYWORDS:
            continue  # a function or an operator
        names.add(m.group(0))
    return names


def test_metric_name_parser() -> None:
    """The parser finds the names, and not functions, labels, variables or durations."""
    expr = (
        'histogram_quantile(0.99, sum by (instance, le) (rate(hd_a_bucket{job=~"$job"}'
        "[$__rate_interval]))) / on (instance) group_left max(hd_b) > bool 0 and hd_c offset 5m"
    )
    assert metric_names(expr) == {"hd_a_bucket", "hd_b", "hd_c"}


def test_scrape_has_every_metric_of_the_module(scrape: dict[str, set[str]]) -> None:
    """The six families the module documents, with the suffixes Prometheus stores."""
    assert set(scrape) == {
        "hangdoctor_loop_lag_seconds",
        "hangdoctor_stalls",
        "hangdoctor_stuck",
        "hangdoctor_anyio_worker_threads_busy",
        "hangdoctor_anyio_worker_threads_limit",
        "hangdoctor_open_streams",
    }
    assert "hangdoctor_stalls_total" in scrape["hangdoctor_stalls"]
    assert "hangdoctor_loop_lag_seconds_bucket" in scrape["hangdoctor_loop_lag_seconds"]


def test_dashboard_queries_name_only_exported_metrics(scrape: dict[str, set[str]]) -> None:
    """Every metric a panel or a variable reads is a series the runtime exports."""
    exported = set().union(*scrape.values())
    queries = list(_queries(_dashboard()))
    assert len(queries) >= 10
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where} reads no metric: {expr}"
        assert names <= exported, f"{where} reads {sorted(names - exported)}, not exported"


def test_every_exported_metric_has_a_panel(scrape: dict[str, set[str]]) -> None:
    """Each metric family is read by at least one panel."""
    read: set[str] = set()
    for panel in _dashboard()["panels"]:
        for target in panel["targets"]:
            read |= metric_names(target["expr"])
    missing = [family for family, samples in scrape.items() if not samples & read]
    assert not missing, f"no panel shows {missing}"


def test_dashboard_structure() -> None:
    """A datasource variable every panel and query uses; unique ids and titles; query vars."""
    dash = _dashboard()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == DATASOURCE and panel["targets"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var in variables or var.startswith("__"), var
    for name in ("job", "instance"):
        assert variables[name]["datasource"] == DATASOURCE
