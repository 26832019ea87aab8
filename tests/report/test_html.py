"""The HTML report's diagnosis section: what it says about the locals it shows."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

import hangdoctor.report
from hangdoctor.model import Diagnosis
from hangdoctor.probe.timeline import HealthSample, ProbeConfig, ProbeResult, summarize
from hangdoctor.report.html import CSS_RESOURCE, render_probe_html
from tests.report.conftest import with_user_locals


def _result(diagnosis: Diagnosis) -> ProbeResult:
    config = ProbeConfig(url="http://127.0.0.1:8000", streams=("/news/stream",), health="/health")
    health = tuple(HealthSample(i * 0.1, 0.002, 200) for i in range(20))
    summary, stalls, verdict = summarize(config, health, ())
    return ProbeResult(
        config=config,
        started_at=1_700_000_000.0,
        elapsed_s=2.0,
        health=health,
        streams=(),
        stalls=stalls,
        summary=summary,
        verdict=verdict,
        diagnosis=diagnosis,
        diagnosis_t=0.5,
        pid=3731,
    )


@pytest.mark.parametrize(
    ("redacted", "heading", "value"),
    [
        (True, "(secrets redacted)", "&lt;redacted&gt;"),
        (False, "(not redacted: --show-secrets)", "nr-0123456789abcdef"),
    ],
)
def test_locals_heading_says_whether_they_were_redacted(
    blocked: Diagnosis, redacted: bool, heading: str, value: str
) -> None:
    """Locals are headed "secrets redacted" only when they were; shown as captured, the
    heading says so instead."""
    page = render_probe_html(_result(with_user_locals(blocked, redacted=redacted)))
    title = f"<h4>Locals of <code>news_stream.&lt;locals&gt;.gen</code> {heading}</h4>"
    assert title in page
    assert value in page


def _with_source(diagnosis: Diagnosis, source: str) -> Diagnosis:
    finding = replace(diagnosis.findings[0], source=source)
    return replace(diagnosis, findings=(finding, *diagnosis.findings[1:]))


def _source_block(page: str) -> str:
    found = re.search(r'<pre class="source">(.*?)</pre>', page, re.S)
    assert found, "no source block"
    return found.group(1)


def test_source_line_is_highlighted_by_pygments_token_classes(blocked: Diagnosis) -> None:
    """The caught line keeps its marked block and number; Pygments' tokens give the spans,
    builtins and an unclosed triple-quoted string included, which the stdlib tokenizer
    left plain."""
    code = 'await asyncio.sleep(len(items))  # drain\nx = """never closed'
    block = _source_block(render_probe_html(_result(_with_source(blocked, code))))
    assert block.startswith('<span class="ln">35</span>')
    assert '<span class="tk">await</span>' in block
    assert '<span class="tb">len</span>' in block  # Token.Name.Builtin
    assert '<span class="tc"># drain</span>' in block
    assert '<span class="ts">&quot;&quot;&quot;never closed</span>' in block
    assert html.unescape(re.sub(r"<[^>]+>", "", block)) == "35" + code  # no text lost


def test_stylesheet_is_package_data_inlined_in_the_page(blocked: Diagnosis) -> None:
    """The CSS is a file beside the modules (so the wheel carries it), and each page holds
    it whole in its <style>: the report loads nothing."""
    sheet = resources.files(hangdoctor.report).joinpath(CSS_RESOURCE)
    assert sheet.is_file()
    package_dir = Path(hangdoctor.report.__file__).parent
    assert (package_dir / CSS_RESOURCE).is_file()  # in the package's folder, not generated
    css = sheet.read_text("utf-8")
    assert ".tk {" in css and ".tb {" in css and "--fail-banner" in css
    page = render_probe_html(_result(blocked))
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert styles == [css]
    assert "<link" not in page and "@import" not in css and "url(" not in css
