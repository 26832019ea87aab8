"""A probe run as one self-contained HTML page: verdict, timeline chart, numbers, diagnosis.

The page must open anywhere, years later, from a CI artifact or an e-mail:
no network (no CDN, no web fonts), no script. The CSS (package data,
assets/report.css) is inlined; the timeline is inline SVG drawn here, so it
is there even with JavaScript off and prints as it shows. Everything that
comes from the target (URL, paths, source lines, reprs, messages) is escaped:
a report of a hostile service must not run its code in the reader's browser.

Renderers never analyse: the verdict, percentiles and stall windows come
from `summarize()`, the cause from the diagnosis. The judgements made here
are presentational: the scale of the chart and which stack frames to fold.
"""

from __future__ import annotations

import functools
import html
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

from pygments.lexers import PythonLexer
from pygments.token import Token, _TokenType

from hangdoctor import __version__
from hangdoctor.analysis.frames import FRAMEWORK_PACKAGES, display_path
from hangdoctor.analysis.tasks import age
from hangdoctor.catalog import Rule, get_rule
from hangdoctor.errors import UnknownRuleError
from hangdoctor.model import (
    Diagnosis,
    Finding,
    Frame,
    Holder,
    LoopReport,
    LoopState,
    Verdict,
    WaitsOn,
    WaitTarget,
)
from hangdoctor.probe.server_view import ServerSample, ServerView
from hangdoctor.probe.timeline import (
    BASELINE_FLOOR_S,
    HealthSample,
    ProbeResult,
    ProbeVerdict,
    RequestSample,
)
from hangdoctor.report.stack_fold import FoldedRun, fold_plan

__all__ = ["render_doctor_html", "render_probe_html", "verdict_reason", "write_probe_html"]

# the stylesheet, relative to this package: hatchling ships it in the wheel with the modules
CSS_RESOURCE = "assets/report.css"


def render_probe_html(result: ProbeResult) -> str:
    """The whole report as one HTML document (a string), with no reference to the network."""
    cfg = result.config
    title = f"hangdoctor probe: {result.verdict.value.upper()} · {cfg.url}"
    body = [
        _banner(result),
        '<main class="page">',
        _run_facts(result),
        _chart_card(result),
        _server_card(result),
        _stats(result),
        _diagnosis_section(result),
        _notes(result.notes, "Notes from the probe"),
        "</main>",
        _footer(),
    ]
    return _document(title, body)


def render_doctor_html(
    before: ProbeResult,
    after: ProbeResult | None = None,
    *,
    fix_diff: str | None = None,
    fixed_file: str | None = None,
) -> str:
    """`doctor`'s report: the run before the fix, the diagnosis and diff, the run after it.

    Both runs keep their own timeline and numbers, and a table puts their figures
    side by side, so the report shows the hang, its cause, the change, and that it
    is gone; a report of the passing run alone would prove nothing.
    """
    final = after or before
    title = f"hangdoctor doctor: {final.verdict.value.upper()} · {before.config.url}"
    body = [
        _doctor_banner(before, after, fixed_file),
        '<main class="page">',
        _comparison(before, after),
        '<h2 class="run-title" id="before">'
        + ("Before the fix" if after is not None else "The probe")
        + "</h2>",
        _run_facts(before, "before-"),
        _chart_card(before, "before-"),
        _server_card(before, "before-"),
        _stats(before, "before-"),
        _diagnosis_section(before, "before-"),
        _notes(before.notes, "Notes from the probe"),
    ]
    if fix_diff:
        where = f" to <code>{_e(fixed_file)}</code>" if fixed_file else ""
        body.append(
            f'<section class="card" id="fix"><h2>The fix applied{where}</h2>'
            f'<pre class="diff">{_diff_lines(fix_diff)}</pre></section>'
        )
    if after is not None:
        body += [
            '<h2 class="run-title" id="after">After the fix</h2>',
            _run_facts(after, "after-"),
            _chart_card(after, "after-"),
            _server_card(after, "after-"),
            _stats(after, "after-"),
            _diagnosis_section(after, "after-"),
            _notes(after.notes, "Notes from the probe after the fix"),
        ]
    body += ["</main>", _footer()]
    return _document(title, body)


def _footer() -> str:
    return f'<footer class="page">Written by hangdoctor {_e(__version__)}.</footer>'


def _document(title: str, body: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # the page may be opened from a hostile service's report: nothing may load or run
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{_e(title)}</title>\n<style>{_css()}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )


def _doctor_banner(before: ProbeResult, after: ProbeResult | None, fixed_file: str | None) -> str:
    final = after or before
    passed = final.verdict is ProbeVerdict.PASS
    cls = "pass" if passed else "fail"
    lines = [f'<p class="reason">{_e(verdict_reason(final))}</p>']
    diag = before.diagnosis
    if diag is not None and diag.findings:
        f = diag.findings[0]
        rule = _rule_or_none(f.code)
        name = f" {_e(rule.name)}" if rule else ""
        lines.append(
            f'<p class="cause">Caught in the act: <strong>{_e(f.code)}{name}</strong> at '
            f"<code>{_e(_location(f.file, f.line, f.cwd))}</code></p>"
        )
    if after is not None:
        target = f" to <code>{_e(fixed_file)}</code>" if fixed_file else ""
        lines.append(
            f'<p class="cause">Before the fix: {before.verdict.value.upper()}. The fix was '
            f"applied{target} and the server probed again: {after.verdict.value.upper()}.</p>"
        )
    return (
        f'<header class="banner {cls}" id="verdict" data-verdict="{final.verdict.value}">'
        '<div class="page">'
        f'<div class="verdict-word">{final.verdict.value.upper()}</div>'
        f'<div class="verdict-text">{"".join(lines)}</div></div></header>'
    )


def _comparison(before: ProbeResult, after: ProbeResult | None) -> str:
    """The figures of both runs side by side (one column without a run after a fix)."""
    runs = [("before the fix" if after is not None else "the probe", before)]
    if after is not None:
        runs.append(("after the fix", after))

    def figures(r: ProbeResult) -> dict[str, str]:
        s = r.summary
        return {
            "verdict": r.verdict.value.upper(),
            "p50": _latency(s.p50_s),
            "p90": _latency(s.p90_s),
            "p99": _latency(s.p99_s),
            "max": _latency(s.max_s),
            "baseline_p99": _latency(s.baseline_p99_s) if s.baseline_requests else "n/a",
            "slowdown": "n/a" if s.slowdown is None else f"{s.slowdown:.1f} times",
            "timeouts": f"{s.timeouts} of {s.requests}",
            "longest_stall": _secs(s.longest_stall_s),
            "streams_aborted": str(s.streams_aborted),
            "requests_stuck": (
                f"{sum(q.stuck for q in r.request_stats)} of {sum(q.sent for q in r.request_stats)}"
            ),
            "cause": (
                r.diagnosis.findings[0].code
                if r.diagnosis is not None and r.diagnosis.findings
                else "none caught"
            ),
        }

    labels = {
        "verdict": "verdict",
        "p50": "health p50",
        "p90": "health p90",
        "p99": "health p99",
        "max": "health max",
        "baseline_p99": "baseline p99 (no streams)",
        "slowdown": "p99 / baseline",
        "timeouts": "timed out",
        "longest_stall": "longest stall window",
        "streams_aborted": "streams dropped",
        "requests_stuck": "requests stuck",
        "cause": "caught in the act",
    }
    if not before.config.requests:
        del labels["requests_stuck"]
    cols = [figures(r) for _, r in runs]
    head = "".join(f'<th scope="col">{_e(name)}</th>' for name, _ in runs)
    rows = "".join(
        f'<tr><th scope="row">{_e(label)}</th>'
        + "".join(f'<td data-run="{i}" data-key="{k}">{_e(c[k])}</td>' for i, c in enumerate(cols))
        + "</tr>"
        for k, label in labels.items()
    )
    return (
        '<section class="card" id="comparison"><h2>'
        + ("Before and after the fix" if after is not None else "The run")
        + f'</h2><table class="stats compare"><tr><th></th>{head}</tr>{rows}</table></section>'
    )


def _diff_lines(diff: str) -> str:
    out = []
    for line in diff.splitlines():
        cls = ""
        if line.startswith("+") and not line.startswith("+++"):
            cls = "add"
        elif line.startswith("-") and not line.startswith("---"):
            cls = "del"
        elif line.startswith("@@"):
            cls = "hunk"
        out.append(f'<span class="{cls}">{_e(line)}</span>' if cls else _e(line))
    return "\n".join(out)


def write_probe_html(result: ProbeResult, path: str | Path) -> Path:
    """Write the report to `path` (atomically: a reader never sees half a file)."""
    from hangdoctor.outfile import write_atomic

    target = Path(path)
    write_atomic(target, render_probe_html(result))
    return target


def verdict_reason(result: ProbeResult) -> str:
    """The verdict in one sentence: "12 health checks timed out; longest stall 18.2 s."."""
    s, cfg = result.summary, result.config
    limit = _setting(cfg.p99_threshold_s)
    if s.requests == 0:
        return "No health request was made."
    parts: list[str] = []
    slower = s.slowdown is not None and s.slowdown > cfg.max_slowdown
    if result.verdict is ProbeVerdict.PASS:
        parts.append(
            f"no health check timed out; p99 {_latency(s.p99_s)} is under the {limit} limit"
        )
        if s.slowdown is not None:
            parts[-1] += (
                f" and {s.slowdown:.1f} times the baseline p99 (limit {cfg.max_slowdown:g})"
            )
        if result.request_stats:
            parts.append("every request was answered before its deadline")
    elif s.timeouts:
        # a timeout already puts the p99 at the deadline: saying so again adds nothing
        parts.append(
            f"{_plural(s.timeouts, 'health check')} got no answer within "
            f"{_setting(cfg.health_timeout_s)}"
        )
    elif s.p99_s is None:
        parts.append("no health check was answered")
    elif s.p99_s >= cfg.p99_threshold_s:
        parts.append(f"p99 {_latency(s.p99_s)} is over the {limit} limit")
    over = s.p99_s is not None and s.p99_s >= cfg.p99_threshold_s
    if slower and result.verdict is ProbeVerdict.FAIL and not s.timeouts and not over:
        parts.append(
            f"p99 {_latency(s.p99_s)} is {s.slowdown:.0f} times the baseline p99 "
            f"{_latency(s.baseline_p99_s)} measured before the streams started "
            f"(limit {cfg.max_slowdown:g})"
        )
    if s.errors:
        parts.append(f"{_plural(s.errors, 'health check')} failed with an error")
    if result.resources is not None:  # threads or open files that grew with the drops
        parts += [growth.message for growth in result.resources.growth]
    # --request paths that got no answer in time (stuck on a healthy loop, or not)
    parts += [r.message for r in result.request_stats if r.message]
    if not parts:
        parts.append(f"the run {result.verdict.value}ed")
    if result.verdict is ProbeVerdict.FAIL and s.longest_stall_s > 0:
        parts.append(f"longest stall {_secs(s.longest_stall_s)}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


# --- formatting ----------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _secs(value: float) -> str:
    return f"{value:.1f} s" if value >= 0.1 else f"{value:.2f} s"


def _latency(value_s: float | None) -> str:
    if value_s is None:
        return "n/a"
    ms = value_s * 1000
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{value_s:.2f} s"


def _setting(value_s: float) -> str:
    """A configured duration, as the user would type it: "500 ms", "2 s"."""
    return f"{value_s * 1000:g} ms" if value_s < 1 else f"{value_s:g} s"


def _num(v: float) -> str:
    """An SVG coordinate: short, and never `-0.0`."""
    text = f"{v:.1f}"
    return "0.0" if text == "-0.0" else text


_INLINE_CODE = re.compile(r"`([^`]+)`")


def _prose(text: str) -> str:
    """A catalog or finding sentence, escaped, with its `inline code` as <code>."""
    return _INLINE_CODE.sub(r"<code>\1</code>", _e(text))


# --- banner and run facts ------------------------------------------------------------------


def _banner(result: ProbeResult) -> str:
    passed = result.verdict is ProbeVerdict.PASS
    cls = "pass" if passed else "fail"
    cause = ""
    diag = result.diagnosis
    if diag is not None and diag.findings:
        f = diag.findings[0]
        rule = _rule_or_none(f.code)
        name = f" {_e(rule.name)}" if rule else ""
        cause = (
            f'<p class="cause">Caught in the act: <strong>{_e(f.code)}{name}</strong> at '
            f"<code>{_e(_location(f.file, f.line, f.cwd))}</code></p>"
        )
    return (
        f'<header class="banner {cls}" id="verdict" data-verdict="{result.verdict.value}">'
        '<div class="page">'
        f'<div class="verdict-word">{result.verdict.value.upper()}</div>'
        f'<div class="verdict-text"><p class="reason">{_e(verdict_reason(result))}</p>'
        f"{cause}</div></div></header>"
    )


def _has_streams(result: ProbeResult) -> bool:
    return bool(result.streams) or (result.config.clients > 0 and bool(result.config.streams))


def _run_facts(result: ProbeResult, key: str = "") -> str:
    cfg = result.config
    streams = ", ".join(cfg.streams)
    started = datetime.fromtimestamp(result.started_at).astimezone()
    rows = [
        ("target", f'<code class="url">{_e(cfg.url)}</code>'),
        (
            "health",
            f"<code>{_e(cfg.health)}</code> every {_setting(cfg.health_interval_s)}, "
            f"deadline {_setting(cfg.health_timeout_s)}",
        ),
        ("streams", f"<code>{_e(cfg.method)} {_e(streams)}</code>"),
        (
            "clients",
            f"{cfg.clients}, each aborting after "
            f"{cfg.abort_min_s:g} to {cfg.abort_max_s:g} s and reconnecting",
        ),
    ]
    if not _has_streams(result):
        rows[2:] = [("streams", "none: health timing only")]
    if cfg.requests:
        names = ", ".join(f"<code>{_e(name)}</code>" for name in cfg.requests)
        rows.append(
            (
                "requests",
                f"{names} every {_setting(cfg.request_interval_s)}, "
                f"deadline {_setting(cfg.request_timeout_s)}",
            )
        )
    rows += [
        ("duration", f"{_secs(result.elapsed_s)} (asked for {cfg.duration_s:g} s)"),
        ("started", _e(started.strftime("%Y-%m-%d %H:%M:%S %Z"))),
    ]
    if result.pid is not None:
        rows.append(("server pid", _e(result.pid)))
    cells = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in rows)
    return f'<section class="card"><dl class="facts" id="{key}run">{cells}</dl></section>'


# --- the timeline chart --------------------------------------------------------------------

_W = 1000.0
_LEFT, _RIGHT, _TOP, _BOTTOM = 78.0, 978.0, 34.0, 262.0
_LANE_H, _LANE_GAP = 14.0, 6.0
_POINT_R = 2.6
_X_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


@dataclass(frozen=True)
class _Scale:
    """Seconds since start to x; latency to y on a log scale (1 ms and 2 s both readable)."""

    t_max: float
    lo_ms: float
    hi_ms: float

    def x(self, t: float) -> float:
        return _LEFT + (_RIGHT - _LEFT) * min(max(t, 0.0), self.t_max) / self.t_max

    def y(self, latency_s: float) -> float:
        ms = min(max(latency_s * 1000, self.lo_ms), self.hi_ms)
        span = math.log10(self.hi_ms) - math.log10(self.lo_ms)
        return _BOTTOM - (_BOTTOM - _TOP) * (math.log10(ms) - math.log10(self.lo_ms)) / span


def _scale(result: ProbeResult) -> _Scale:
    cfg = result.config
    ends = [result.elapsed_s]
    ends += [h.t + h.latency_s for h in result.health]
    ends += [s.t_end if s.t_end is not None else s.t_open for s in result.streams]
    ends += [w.t_end for w in result.stalls]
    ends += [r.t + r.latency_s for r in result.requests]
    if result.diagnosis_t is not None:
        ends.append(result.diagnosis_t)
    t_max = max(ends) if max(ends) > 0 else max(cfg.duration_s, 1.0)
    answered = [h.latency_s * 1000 for h in result.health if h.latency_s > 0]
    low = max(min(answered, default=1.0), 0.01)
    lo_ms = min(1.0, 10 ** math.floor(math.log10(low)))
    top = max([cfg.health_timeout_s * 1000, cfg.p99_threshold_s * 1000, *answered])
    return _Scale(t_max=t_max, lo_ms=lo_ms, hi_ms=top * 1.6)


def _x_step(t_max: float) -> float:
    return next((s for s in _X_STEPS if t_max / s <= 10), _X_STEPS[-1])


def _tick_label(t: float) -> str:
    if t >= 60 and t % 60 == 0:
        return f"{t / 60:g} min"
    return f"{t:g} s"


def _ms_label(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def _chart_card(result: ProbeResult, key: str = "") -> str:
    hint = (
        "One dot per health request (log scale); a cross is a request that got no answer "
        "before its deadline. Shaded spans are stall windows: from the send of a late health "
        "request to the next prompt answer, so one window may hold several stalls back to back."
    )
    if _has_streams(result):
        hint += " Below: when streams were opened and dropped, on the same time axis."
    if result.config.requests:
        hint += (
            " A lane per request path: each request a bar from its send to its answer; red, "
            "one that got no answer before its deadline while health answered (stuck)."
        )
    return (
        '<section class="card chart-card"><h2>Health latency over time</h2>'
        f'<p class="hint">{hint}</p>'
        f'<div class="chart-wrap">{_timeline_svg(result, key)}</div>{_legend(result)}</section>'
    )


def _timeline_svg(result: ProbeResult, key: str = "") -> str:
    cfg = result.config
    sc = _scale(result)
    opened = [s for s in result.streams if s.status is not None]
    aborted = [s for s in result.streams if s.aborted and s.t_end is not None]
    failed = [s for s in result.streams if s.error is not None and not s.aborted]
    lanes: list[tuple[str, str, Sequence[float]]] = []
    if _has_streams(result):
        lanes.append(("opened", "stream-open", [s.t_open for s in opened]))
        lanes.append(("aborted", "stream-abort", [s.t_end for s in aborted if s.t_end is not None]))
    if failed:
        lanes.append(
            (
                "failed",
                "stream-fail",
                [s.t_end if s.t_end is not None else s.t_open for s in failed],
            )
        )
    lanes_top = _BOTTOM + 14
    rows = len(lanes) + len(cfg.requests)
    lanes_bottom = lanes_top + rows * (_LANE_H + _LANE_GAP) - _LANE_GAP if rows else _BOTTOM
    height = lanes_bottom + 50
    timeouts = [h for h in result.health if h.timed_out]
    points = [h for h in result.health if not h.timed_out]
    parts = [
        f'<svg id="{key}timeline" class="timeline" viewBox="0 0 {_W:g} {height:g}" role="img" '
        f'aria-labelledby="{key}timeline-title" preserveAspectRatio="xMidYMid meet" '
        f'data-requests="{len(result.health)}" data-points="{len(points)}" '
        f'data-timeouts="{len(timeouts)}" data-stalls="{len(result.stalls)}" '
        f'data-stream-opens="{len(opened)}" data-stream-aborts="{len(aborted)}" '
        f'data-stream-fails="{len(failed)}" data-request-lanes="{len(cfg.requests)}" '
        f'data-capture="{int(result.diagnosis_t is not None)}">',
        f'<title id="{key}timeline-title">Health latency over {_secs(sc.t_max)}: '
        f"{_e(verdict_reason(result))}</title>",
        f'<rect class="plot-bg" x="{_LEFT:g}" y="{_TOP:g}" width="{_RIGHT - _LEFT:g}" '
        f'height="{_BOTTOM - _TOP:g}"/>',
    ]
    parts += _grid(sc, lanes_bottom)
    parts += [
        _stall_rect(sc, w.t_start, w.t_end, w.worst_latency_s, w.timeouts, w.late)
        for w in result.stalls
    ]
    parts += _limits(sc, cfg.p99_threshold_s, cfg.health_timeout_s)
    parts += [_point(sc, h, cfg.stall_threshold_s) for h in sorted(points, key=lambda h: h.t)]
    parts += [_timeout_mark(sc, h) for h in timeouts]
    for i, (label, cls, times) in enumerate(lanes):
        parts += _lane(sc, lanes_top + i * (_LANE_H + _LANE_GAP), label, cls, times)
    for j, name in enumerate(cfg.requests):
        y = lanes_top + (len(lanes) + j) * (_LANE_H + _LANE_GAP)
        parts += _request_lane(sc, y, name, [r for r in result.requests if r.request == name])
    if result.diagnosis_t is not None:
        parts.append(_capture_mark(sc, result.diagnosis_t, lanes_bottom))
    parts += _axes(sc, lanes_bottom, height)
    if not result.health:
        parts.append(
            f'<text class="empty" x="{(_LEFT + _RIGHT) / 2:g}" y="{(_TOP + _BOTTOM) / 2:g}" '
            'text-anchor="middle">no health requests were recorded</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _grid(sc: _Scale, lanes_bottom: float) -> list[str]:
    out: list[str] = []
    step = _x_step(sc.t_max)
    for i in range(int(sc.t_max / step + 1e-9) + 1):
        x = sc.x(i * step)
        out.append(
            f'<line class="grid" x1="{_num(x)}" x2="{_num(x)}" y1="{_TOP:g}" '
            f'y2="{_num(lanes_bottom)}"/>'
        )
    decade = math.ceil(math.log10(sc.lo_ms) - 1e-9)
    while 10**decade <= sc.hi_ms:
        for m in (1, 2, 5):
            ms = m * 10**decade
            if sc.lo_ms < ms < sc.hi_ms:
                y = _num(sc.y(ms / 1000))
                cls = "grid" if m == 1 else "grid minor"
                out.append(
                    f'<line class="{cls}" x1="{_LEFT:g}" x2="{_RIGHT:g}" y1="{y}" y2="{y}"/>'
                )
        decade += 1
    return out


def _stall_rect(
    sc: _Scale, t0: float, t1: float, worst_s: float, timeouts: int, late: int = 0
) -> str:
    x0, x1 = sc.x(t0), sc.x(t1)
    width = max(x1 - x0, 2.0)
    tip = (
        f"stall window from {t0:.1f} s to {t1:.1f} s ({_secs(t1 - t0)}): "
        f"{_plural(late, 'late health request')}, the slowest {_latency(worst_s)}, "
        f"{_plural(timeouts, 'timeout')}"
    )
    label = ""
    if width >= 64:
        label = (
            f'<text class="stall-label" x="{_num(x0 + width / 2)}" y="{_TOP - 6:g}" '
            f'text-anchor="middle">stall {_secs(t1 - t0)}</text>'
        )
    return (
        f'<g><rect class="stall" x="{_num(x0)}" y="{_TOP:g}" width="{_num(width)}" '
        f'height="{_BOTTOM - _TOP:g}"><title>{_e(tip)}</title></rect>{label}</g>'
    )


def _limits(sc: _Scale, p99_limit_s: float, deadline_s: float) -> list[str]:
    out = []
    for cls, value, text in (
        ("threshold", p99_limit_s, f"p99 limit {_setting(p99_limit_s)}"),
        ("deadline", deadline_s, f"deadline {_setting(deadline_s)}"),
    ):
        y = sc.y(value)
        out.append(
            f'<line class="{cls}" x1="{_LEFT:g}" x2="{_RIGHT:g}" y1="{_num(y)}" y2="{_num(y)}"/>'
            f'<text class="limit-label {cls}-label" x="{_RIGHT - 4:g}" y="{_num(y - 5)}" '
            f'text-anchor="end">{_e(text)}</text>'
        )
    return out


def _failed(h: HealthSample) -> bool:
    """Answered with an error status, or failed without timing out (refused, reset)."""
    if h.timed_out:
        return False
    return h.status is None or not 200 <= h.status < 400


def _point(sc: _Scale, h: HealthSample, slow_s: float) -> str:
    cls = "health-point"
    if _failed(h):
        cls += " error"
    elif h.latency_s >= slow_s:
        cls += " slow"
    what = f"HTTP {h.status}" if h.status is not None else (h.error or "error")
    tip = f"t {h.t:.2f} s · {_latency(h.latency_s)} · {what}"
    return (
        f'<circle class="{cls}" cx="{_num(sc.x(h.t))}" cy="{_num(sc.y(h.latency_s))}" '
        f'r="{_POINT_R:g}"><title>{_e(tip)}</title></circle>'
    )


def _timeout_mark(sc: _Scale, h: HealthSample) -> str:
    x, y, d = sc.x(h.t), sc.y(h.latency_s), 4.0
    tip = f"t {h.t:.2f} s · no answer within {_latency(h.latency_s)}"
    return (
        f'<path class="health-timeout" d="M{_num(x - d)} {_num(y - d)}L{_num(x + d)} '
        f'{_num(y + d)}M{_num(x - d)} {_num(y + d)}L{_num(x + d)} {_num(y - d)}">'
        f"<title>{_e(tip)}</title></path>"
    )


def _lane(sc: _Scale, y: float, label: str, cls: str, times: Iterable[float]) -> list[str]:
    out = [
        f'<rect class="lane-bg" x="{_LEFT:g}" y="{_num(y)}" width="{_RIGHT - _LEFT:g}" '
        f'height="{_LANE_H:g}"/>',
        f'<text class="lane-label" x="{_LEFT - 8:g}" y="{_num(y + _LANE_H - 3)}" '
        f'text-anchor="end">{_e(label)}</text>',
    ]
    out += [
        f'<line class="{cls}" x1="{_num(sc.x(t))}" x2="{_num(sc.x(t))}" y1="{_num(y + 1)}" '
        f'y2="{_num(y + _LANE_H - 1)}"/>'
        for t in times
    ]
    return out


def _request_class(r: RequestSample) -> str:
    if r.stuck:
        return "request stuck"
    if r.timed_out:
        return "request timeout"
    if r.status is None or not 200 <= r.status < 400:
        return "request error"
    return "request ok"


def _request_lane(sc: _Scale, y: float, name: str, requests: Sequence[RequestSample]) -> list[str]:
    """One --request path: a bar per request from its send to its answer (or its deadline)."""
    stuck = sum(r.stuck for r in requests)
    out = [
        f'<g class="request-lane" data-request="{_e(name)}" data-sent="{len(requests)}" '
        f'data-stuck="{stuck}">',
        f'<rect class="lane-bg" x="{_LEFT:g}" y="{_num(y)}" width="{_RIGHT - _LEFT:g}" '
        f'height="{_LANE_H:g}"/>',
    ]
    for r in requests:
        x0, x1 = sc.x(r.t), sc.x(r.t + r.latency_s)
        if r.stuck:
            what = "no answer before the deadline while health answered: stuck"
        elif r.timed_out:
            what = "no answer before the deadline"
        else:
            what = f"HTTP {r.status}" if r.status is not None else (r.error or "error")
        tip = f"{name} · t {r.t:.2f} s · {_latency(r.latency_s)} · {what}"
        out.append(
            f'<rect class="{_request_class(r)}" x="{_num(x0)}" y="{_num(y + 2)}" '
            f'width="{_num(max(x1 - x0, 1.5))}" height="{_LANE_H - 4:g}">'
            f"<title>{_e(tip)}</title></rect>"
        )
    # the path is written inside its lane: "POST /close-day" is wider than the margin
    out.append(
        f'<text class="lane-label request-label" x="{_LEFT + 4:g}" '
        f'y="{_num(y + _LANE_H - 3)}">{_e(name)}</text></g>'
    )
    return out


def _capture_mark(sc: _Scale, t: float, lanes_bottom: float) -> str:
    x = _num(sc.x(t))
    anchor = "end" if sc.x(t) > _RIGHT - 160 else "start"
    dx = -8 if anchor == "end" else 8
    # drawn low, on the time axis: the strip above the plot belongs to the stall labels, and
    # a capture starts in a stall, where no fast dot sits near the floor
    return (
        f'<g class="capture"><line class="capture-line" x1="{x}" x2="{x}" y1="{_TOP:g}" '
        f'y2="{_num(lanes_bottom)}"/>'
        f'<path class="capture-mark" d="M{x} {_BOTTOM - 7:g}l6 7l-6 7l-6 -7z"/>'
        f'<text class="capture-label" x="{_num(sc.x(t) + dx)}" y="{_BOTTOM - 10:g}" '
        f'text-anchor="{anchor}">stacks captured at {t:.1f} s</text>'
        f"<title>{_e(f'the diagnosis capture started at t = {t:.2f} s')}</title></g>"
    )


def _axes(sc: _Scale, lanes_bottom: float, height: float) -> list[str]:
    out = [
        f'<line class="axis" x1="{_LEFT:g}" x2="{_LEFT:g}" y1="{_TOP:g}" y2="{_BOTTOM:g}"/>',
        f'<line class="axis" x1="{_LEFT:g}" x2="{_RIGHT:g}" y1="{_BOTTOM:g}" y2="{_BOTTOM:g}"/>',
    ]
    step = _x_step(sc.t_max)
    for i in range(int(sc.t_max / step + 1e-9) + 1):
        x = _num(sc.x(i * step))
        out.append(
            f'<text class="tick" x="{x}" y="{_num(lanes_bottom + 16)}" '
            f'text-anchor="middle">{_tick_label(round(i * step, 6))}</text>'
        )
    decade = math.ceil(math.log10(sc.lo_ms) - 1e-9)
    while 10**decade < sc.hi_ms:
        ms = 10.0**decade
        out.append(
            f'<text class="tick" x="{_LEFT - 8:g}" y="{_num(sc.y(ms / 1000) + 4)}" '
            f'text-anchor="end">{_ms_label(ms)}</text>'
        )
        decade += 1
    mid_y = (_TOP + _BOTTOM) / 2
    out.append(
        f'<text class="axis-title" x="{(_LEFT + _RIGHT) / 2:g}" y="{_num(height - 8)}" '
        'text-anchor="middle">seconds since the probe started</text>'
    )
    out.append(
        f'<text class="axis-title" x="16" y="{mid_y:g}" text-anchor="middle" '
        f'transform="rotate(-90 16 {mid_y:g})">health latency</text>'
    )
    return out


def _legend(result: ProbeResult) -> str:
    cfg = result.config

    def item(swatch: str, text: str) -> str:
        return (
            f'<li><svg class="swatch" viewBox="0 0 18 14" width="18" height="14" '
            f'aria-hidden="true">{swatch}</svg>{text}</li>'
        )

    items = [
        item('<circle class="lg-point" cx="9" cy="7" r="3.5"/>', "health request"),
        item(
            '<circle class="lg-point slow" cx="9" cy="7" r="3.5"/>',
            f"slow (≥ {_setting(cfg.stall_threshold_s)})",
        ),
        item(
            '<path class="lg-timeout" d="M5 3L13 11M5 11L13 3"/>',
            f"no answer within {_setting(cfg.health_timeout_s)}",
        ),
        item('<rect class="lg-stall" x="1" y="1" width="16" height="12"/>', "stall"),
        item('<line class="lg-threshold" x1="0" x2="18" y1="7" y2="7"/>', "p99 limit"),
    ]
    if _has_streams(result):
        items.append(item('<line class="lg-open" x1="9" x2="9" y1="1" y2="13"/>', "stream opened"))
        items.append(
            item('<line class="lg-abort" x1="9" x2="9" y1="1" y2="13"/>', "stream aborted")
        )
    if any(_failed(h) for h in result.health):
        items.insert(2, item('<circle class="lg-point error" cx="9" cy="7" r="3.5"/>', "error"))
    if any(s.error is not None and not s.aborted for s in result.streams):
        items.append(item('<line class="lg-fail" x1="9" x2="9" y1="1" y2="13"/>', "stream failed"))
    if any(not r.timed_out for r in result.requests):
        items.append(
            item('<rect class="request ok" x="1" y="4" width="16" height="6"/>', "request answered")
        )
        if any(r.stuck for r in result.requests):
            items.append(
                item(
                    '<rect class="request stuck" x="1" y="4" width="16" height="6"/>',
                    "request stuck (no answer while health answered)",
                )
            )
        if any(r.timed_out and not r.stuck for r in result.requests):
            items.append(
                item(
                    '<rect class="request timeout" x="1" y="4" width="16" height="6"/>',
                    "request timed out",
                )
            )
    if result.diagnosis_t is not None:
        items.append(item('<path class="lg-capture" d="M9 1l5 6l-5 6l-5 -6z"/>', "stacks captured"))
    return f'<ul class="legend">{"".join(items)}</ul>'


# --- the server's own view: what the runtime inside it saw, on the same time axis ----------

_PANEL_H, _PANEL_GAP = 64.0, 30.0


def _server_card(result: ProbeResult, key: str = "") -> str:
    view = result.server_view
    head = '<section class="card server-card" id="{}server-view"><h2>What the server saw</h2>'
    head = head.format(key)
    if view is None:
        return ""
    body: list[str] = []
    if view.available:
        body.append(
            f'<p class="hint">From inside the server: its hangdoctor runtime, read from '
            f"{_e(view.url)} every quarter second, on the health chart's time axis. Loop lag is "
            "the slowest heartbeat since the previous read (the upper bound of its histogram "
            "bucket); a red span is a stall the watchdog reported, with its catalog code; a "
            "cross is a read that got no answer in time (the loop that serves it was not "
            "running). A stall's late heartbeat is counted once the loop runs again, so its "
            "lag shows at or just after the span.</p>"
        )
    elif view.url is not None:
        sentence = view.note or f"{view.url} gave no answer during the run."
        body.append(f'<p class="server-none">{_e(sentence)}</p>')
    if view.records_file is not None:
        body.append(
            f'<p class="hint">Recorded by the server: the stall and stuck records its runtime '
            f"appended to <code>{_e(view.records_file)}</code> during the run, each placed "
            "exactly from the moment the runtime wrote in it (a stall from when the loop "
            "stopped, for as long as it stopped; a stuck request when it was seen), with its "
            "catalog code and the line of code.</p>"
        )
        if not view.records:
            body.append(
                '<p class="server-records-none">The server wrote no record during the run.</p>'
            )
        if view.records_note:
            body.append(f'<p class="server-records-note">{_e(view.records_note)}</p>')
    if view.available or view.records:
        body.append(f'<div class="chart-wrap">{_server_svg(result, key)}</div>')
    if view.records:
        body.append(_records_table(view, key))
    return f"{head}{''.join(body)}</section>"


def _server_svg(result: ProbeResult, key: str = "") -> str:
    view = result.server_view
    assert view is not None
    sc = _scale(result)
    samples = view.samples

    def count(v: float) -> str:
        return f"{v:g}"

    def mib(v: float) -> str:
        return f"{v:.0f} MiB"

    panels: list[tuple[str, list[tuple[str, str, list[tuple[float, float]]]], _Fmt]] = [
        (
            "threads",
            [
                ("server-threads", "OS threads", _series(samples, "threads")),
                ("server-busy", "AnyIO threads busy", _series(samples, "threads_busy")),
            ],
            count,
        ),
        ("open streams", [("server-streams", "open", _series(samples, "open_streams"))], count),
        ("RSS", [("server-rss", "RSS", _series(samples, "rss_bytes", 1 / 2**20))], mib),
    ]
    panels = [p for p in panels if any(points for _, _, points in p[1])]
    top = _TOP + 8  # room for the codes above the first panel
    rec_top = top
    if view.records:
        top += _RECORD_LANE_H + _PANEL_GAP
    lag_top = top
    lag_bottom = lag_top + _PANEL_H * 1.5 if view.available else lag_top
    y = lag_bottom + _PANEL_GAP if view.available else lag_top
    height = y + len(panels) * (_PANEL_H + _PANEL_GAP) + 20 if view.available else y + 40
    stalls = [e for e in view.events if e.kind == "stall"]
    stuck = [e for e in view.events if e.kind == "stuck"]
    recorded = [r for r in view.records if r.kind == "stall"]
    if view.available:
        told = f"{_plural(len(stalls), 'stall')} reported, {_plural(len(stuck), 'stuck episode')}"
    else:
        told = (
            f"{_plural(len(recorded), 'stall')} recorded, "
            f"{_plural(len(view.records) - len(recorded), 'stuck episode')}"
        )
    parts = [
        f'<svg id="{key}server-timeline" class="timeline server-timeline" '
        f'viewBox="0 0 {_W:g} {height:g}" role="img" aria-labelledby="{key}server-title" '
        f'preserveAspectRatio="xMidYMid meet" data-samples="{len(samples)}" '
        f'data-stalls="{len(stalls)}" data-stuck="{len(stuck)}" '
        f'data-missed="{len(view.missed)}" data-records="{len(view.records)}">',
        f'<title id="{key}server-title">What the server saw over {_secs(sc.t_max)}: {told}</title>',
    ]
    parts += _grid_x(sc, rec_top, height - 40)
    if view.records:
        parts += _records_lane(sc, view, rec_top)
    if view.available:
        parts += _lag_panel(sc, view, lag_top, lag_bottom)
        for label, series, fmt in panels:
            parts += _value_panel(sc, y, label, series, fmt)
            y += _PANEL_H + _PANEL_GAP
        for e in stalls:
            parts.append(_server_event(sc, e.t_start, e.t, e.code, "stall", lag_top, height - 40))
        for e in stuck:
            parts.append(_server_event(sc, e.t, e.t, e.code, "stuck", lag_top, height - 40))
    step = _x_step(sc.t_max)
    for i in range(int(sc.t_max / step + 1e-9) + 1):
        parts.append(
            f'<text class="tick" x="{_num(sc.x(i * step))}" y="{_num(height - 24)}" '
            f'text-anchor="middle">{_tick_label(round(i * step, 6))}</text>'
        )
    parts.append(
        f'<text class="axis-title" x="{(_LEFT + _RIGHT) / 2:g}" y="{_num(height - 4)}" '
        'text-anchor="middle">seconds since the probe started</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


_RECORD_LANE_H = 40.0


def _records_lane(sc: _Scale, view: ServerView, top: float) -> list[str]:
    """The records the server wrote: each stall a span where its loop stopped, exactly."""
    out = [
        f'<rect class="plot-bg" x="{_LEFT:g}" y="{top:g}" width="{_RIGHT - _LEFT:g}" '
        f'height="{_RECORD_LANE_H:g}"/>',
        f'<text class="panel-note" x="{_RIGHT - 4:g}" y="{_num(top - 5)}" text-anchor="end">'
        "recorded by the server: exact moments, code and line</text>",
    ]
    for i, r in enumerate(view.records):
        x0, x1 = sc.x(r.t), sc.x(r.t_end)
        width = max(x1 - x0, 2.0)
        where = f"{r.file.replace(chr(92), '/').rsplit('/', 1)[-1]}:{r.line}"  # the name: room
        label_y = top + 14 + (i % 2) * 14  # neighbours alternate rows, so labels stay readable
        right = x0 > (_LEFT + _RIGHT) / 2
        if r.kind == "stall":
            tip = (
                f"{r.code} {r.name}: the loop stopped for {_latency(r.blocked_for_s or 0.0)} "
                f"from {r.t:.2f} s, at {_location(r.file, r.line)} in {r.function}"
            )
        else:
            tip = (
                f"{r.code} {r.name}: a request stuck on a healthy loop, seen at {r.t:.2f} s, "
                f"at {_location(r.file, r.line)} in {r.function}"
            )
        if r.waits_on:
            tip += f", waiting on {r.waits_on}"
        if r.request:
            tip += f", during {r.request}"
        out.append(
            f'<g class="server-record server-record-{r.kind}" data-kind="{r.kind}" '
            f'data-code="{_e(r.code)}" data-file="{_e(r.file)}" data-line="{r.line}" '
            f'data-t-start="{r.t:.3f}" data-t-end="{r.t_end:.3f}">'
            f'<rect class="server-record-span" x="{_num(x0)}" y="{top + 2:g}" '
            f'width="{_num(width)}" height="{_RECORD_LANE_H - 4:g}"/>'
            f'<text class="server-record-label" x="{_num(x1 + 4 if not right else x0 - 4)}" '
            f'y="{label_y:g}" text-anchor="{"end" if right else "start"}">'
            f'<tspan class="server-code">{_e(r.code)}</tspan> {_e(where)}</text>'
            f"<title>{_e(tip)}</title></g>"
        )
    return out


def _records_table(view: ServerView, key: str = "") -> str:
    """The records as rows: the full file:line, the request, what it waited on."""
    rows = []
    for r in view.records:
        long = r.blocked_for_s if r.kind == "stall" else r.waiting_s
        rows.append(
            f'<tr data-code="{_e(r.code)}"><td>{r.t:.2f} s</td><td>{_e(r.kind)}</td>'
            f"<td><code>{_e(r.code)}</code> {_e(r.name)}</td>"
            f"<td><code>{_e(_location(r.file, r.line))}</code> in "
            f"<code>{_e(r.function)}</code></td>"
            f"<td>{_latency(long) if long is not None else '-'}</td>"
            f"<td>{_e(r.request or '-')}</td><td>{_e(r.waits_on or '-')}</td></tr>"
        )
    return (
        f'<table class="stats server-records" id="{key}server-records"><caption>Records the '
        "server wrote during the run (t: seconds since the probe started)</caption>"
        '<tr><th scope="col">t</th><th scope="col">kind</th><th scope="col">code</th>'
        '<th scope="col">where</th><th scope="col">how long</th><th scope="col">request</th>'
        f'<th scope="col">waiting on</th></tr>{"".join(rows)}</table>'
    )


_Fmt = Callable[[float], str]


def _series(
    samples: Sequence[ServerSample], attr: str, factor: float = 1.0
) -> list[tuple[float, float]]:
    """(t, value) of the samples that have `attr`."""
    values = ((s.t, getattr(s, attr)) for s in samples)
    return [(t, v * factor) for t, v in values if v is not None]


def _grid_x(sc: _Scale, top: float, bottom: float) -> list[str]:
    step = _x_step(sc.t_max)
    return [
        f'<line class="grid" x1="{_num(sc.x(i * step))}" x2="{_num(sc.x(i * step))}" '
        f'y1="{top:g}" y2="{_num(bottom)}"/>'
        for i in range(int(sc.t_max / step + 1e-9) + 1)
    ]


def _lag_panel(sc: _Scale, view: ServerView, top: float, bottom: float) -> list[str]:
    """Loop lag on a log scale, 0.1 ms to the largest seen (at least 1 s)."""
    points = [(s.t, s.lag_max_s) for s in view.samples if s.lag_max_s is not None]
    hi = max([1.0, *(v for _, v in points)]) * 1.3
    lo = 1e-4

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return bottom - (bottom - top) * (math.log10(v / lo) / math.log10(hi / lo))

    out = [
        f'<rect class="plot-bg" x="{_LEFT:g}" y="{top:g}" width="{_RIGHT - _LEFT:g}" '
        f'height="{_num(bottom - top)}"/>',
        # at the right end: the stall codes are written above the plot where they happened
        f'<text class="panel-note" x="{_RIGHT - 4:g}" y="{_num(top - 5)}" text-anchor="end">'
        "loop lag: the slowest heartbeat since the previous read</text>",
    ]
    for v in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
        if lo < v < hi:
            out.append(
                f'<line class="grid minor" x1="{_LEFT:g}" x2="{_RIGHT:g}" y1="{_num(y(v))}" '
                f'y2="{_num(y(v))}"/><text class="tick" x="{_LEFT - 8:g}" '
                f'y="{_num(y(v) + 4)}" text-anchor="end">{_ms_label(v * 1000)}</text>'
            )
    if points:
        path = " ".join(f"{_num(sc.x(t))},{_num(y(v))}" for t, v in points)
        out.append(f'<polyline class="server-line server-lag" points="{path}"/>')
        for t, v in points:
            out.append(
                f'<circle class="server-point" cx="{_num(sc.x(t))}" cy="{_num(y(v))}" r="1.8">'
                f"<title>{_e(f't {t:.2f} s · slowest heartbeat ≤ {_latency(v)}')}</title>"
                "</circle>"
            )
    for t in view.missed:
        x, yy, d = sc.x(t), bottom - 6, 3.5
        out.append(
            f'<path class="server-missed" d="M{_num(x - d)} {_num(yy - d)}L{_num(x + d)} '
            f'{_num(yy + d)}M{_num(x - d)} {_num(yy + d)}L{_num(x + d)} {_num(yy - d)}">'
            f"<title>{_e(f'read sent at t {t:.2f} s: no answer in time')}</title></path>"
        )
    return out


def _value_panel(
    sc: _Scale,
    top: float,
    label: str,
    series: Sequence[tuple[str, str, Sequence[tuple[float, float]]]],
    fmt: Callable[[float], str],
) -> list[str]:
    """One linear panel from 0 to the largest value, a line per series."""
    hi = max([1.0, *(v for _, _, pts in series for _, v in pts)]) * 1.15
    bottom = top + _PANEL_H

    def y(v: float) -> float:
        return bottom - _PANEL_H * v / hi

    out = [
        f'<rect class="plot-bg" x="{_LEFT:g}" y="{top:g}" width="{_RIGHT - _LEFT:g}" '
        f'height="{_PANEL_H:g}"/>',
        f'<text class="tick" x="{_LEFT - 8:g}" y="{_num(bottom)}" text-anchor="end">0</text>',
    ]
    names = []
    for cls, name, points in series:
        if not points:
            continue
        path = " ".join(f"{_num(sc.x(t))},{_num(y(v))}" for t, v in points)
        last = points[-1][1]
        peak = max(v for _, v in points)
        tip = f"{name}: {fmt(points[0][1])} at first, peak {fmt(peak)}, {fmt(last)} at the end"
        out.append(
            f'<polyline class="server-line {cls}" points="{path}"><title>{_e(tip)}</title>'
            "</polyline>"
        )
        names.append(f"{name} (peak {fmt(peak)})")
    out.append(
        f'<text class="panel-note" x="{_LEFT + 4:g}" y="{_num(top - 5)}">'
        f"{_e(label)}: {_e(' · '.join(names))}</text>"
    )
    return out


def _server_event(
    sc: _Scale, t0: float, t1: float, code: str, kind: str, top: float, bottom: float
) -> str:
    x0, x1 = sc.x(t0), sc.x(t1)
    width = max(x1 - x0, 2.0)
    if kind == "stall":
        tip = f"{code}: the server reported a stall, about {t0:.1f} s to {t1:.1f} s"
    else:
        tip = f"{code}: the server reported a request stuck on a healthy loop at {t1:.1f} s"
    return (
        f'<g class="server-{kind}" data-code="{_e(code)}" data-t="{t1:.3f}" '
        f'data-t-start="{t0:.3f}"><rect class="server-{kind}-span" x="{_num(x0)}" '
        f'y="{top:g}" width="{_num(width)}" height="{_num(bottom - top)}"/>'
        f'<text class="server-code" x="{_num(x0 + width / 2)}" y="{top - 6:g}" '
        f'text-anchor="middle">{_e(code)}</text><title>{_e(tip)}</title></g>'
    )


# --- the numbers ---------------------------------------------------------------------------


def _stats(result: ProbeResult, key: str = "") -> str:
    s, cfg = result.summary, result.config
    over = s.p99_s is None or s.p99_s >= cfg.p99_threshold_s

    def row(key: str, label: str, value: str, bad: bool = False) -> str:
        cls = ' class="bad"' if bad else ""
        return f'<tr{cls}><th scope="row">{label}</th><td data-key="{key}">{value}</td></tr>'

    latency = [
        row("p50", "p50", _latency(s.p50_s)),
        row("p90", "p90", _latency(s.p90_s)),
        row("p99", "p99", _latency(s.p99_s), over),
        row("max", "max", _latency(s.max_s), s.timeouts > 0),
        row("p99_limit", "p99 limit", _setting(cfg.p99_threshold_s)),
    ]
    if s.baseline_requests:
        slow = s.slowdown is not None and s.slowdown > cfg.max_slowdown
        latency += [
            row("baseline_p50", "baseline p50", _latency(s.baseline_p50_s)),
            row("baseline_p99", "baseline p99", _latency(s.baseline_p99_s)),
            row(
                "slowdown",
                "p99 / baseline",
                "n/a"
                if s.slowdown is None
                else f"{s.slowdown:.1f} times (limit {cfg.max_slowdown:g})",
                slow,
            ),
        ]
    requests = [
        row("requests", "requests", str(s.requests)),
        row("ok", "answered 2xx/3xx", str(s.ok)),
        row("timeouts", "timed out", str(s.timeouts), s.timeouts > 0),
        row("errors", "errors", str(s.errors), s.errors > 0),
        row(
            "longest_stall",
            "longest stall window",
            _secs(s.longest_stall_s),
            s.longest_stall_s > 0,
        ),
    ]
    streams = [
        row("streams_opened", "opened", str(s.streams_opened)),
        row("streams_aborted", "aborted by the probe", str(s.streams_aborted)),
        row("streams_failed", "failed", str(s.streams_failed), s.streams_failed > 0),
        row("events", "events read", str(s.events)),
    ]

    def table(caption: str, rows: list[str]) -> str:
        return f'<table class="stats"><caption>{caption}</caption>{"".join(rows)}</table>'

    return (
        f'<section class="card" id="{key}summary"><h2>Numbers</h2>'
        f'<p class="hint">Percentiles count every health request: one that got no answer '
        f"counts at the deadline ({_setting(cfg.health_timeout_s)})."
        + (
            f" The baseline is health alone for {cfg.baseline_s:g} s before any stream opened "
            f"(under {_latency(BASELINE_FLOOR_S)} it counts as {_latency(BASELINE_FLOOR_S)})."
            if s.baseline_requests
            else ""
        )
        + '</p><div class="tables">'
        + table("Health latency", latency)
        + table("Health requests", requests)
        + (table("Streams", streams) if _has_streams(result) else "")
        + "</div>"
        + _requests_table(result)
        + "</section>"
    )


def _requests_table(result: ProbeResult) -> str:
    """One row per --request path: sent, answered, timed out, stuck, latencies."""
    if not result.request_stats:
        return ""
    cfg = result.config
    columns = (
        ("sent", "sent"),
        ("answered", "answered"),
        ("timeouts", "timed out"),
        ("stuck", "stuck"),
        ("errors", "errors"),
        ("p50", "p50"),
        ("p99", "p99"),
        ("max", "max"),
    )
    head = "".join(f'<th scope="col">{label}</th>' for _, label in columns)
    rows = []
    for r in result.request_stats:
        values = {
            "sent": str(r.sent),
            "answered": str(r.answered),
            "timeouts": str(r.timeouts),
            "stuck": str(r.stuck),
            "errors": str(r.errors),
            "p50": _latency(r.p50_s),
            "p99": _latency(r.p99_s),
            "max": _latency(r.max_s),
        }
        cls = ' class="bad"' if r.timeouts else ""
        cells = "".join(
            f'<td data-request="{_e(r.request)}" data-key="{k}">{values[k]}</td>'
            for k, _ in columns
        )
        rows.append(f'<tr{cls}><th scope="row"><code>{_e(r.request)}</code></th>{cells}</tr>')
    return (
        f'<table class="stats requests" id="requests"><caption>Requests with a deadline '
        f"({_setting(cfg.request_timeout_s)}); stuck: no answer in time while health answered "
        f"under {_setting(cfg.p99_threshold_s)}</caption>"
        f'<tr><th scope="col">request</th>{head}</tr>{"".join(rows)}</table>'
    )


# --- the diagnosis -------------------------------------------------------------------------

_VERDICT_HEADLINE = {
    Verdict.HEALTHY: "every event loop was answering",
    Verdict.BUSY: "an event loop was busy with CPU work; its requests waited",
    Verdict.STARVED: "the worker threads were all taken; sync routes queued",
    Verdict.STUCK: "the loop answered, but requests waited on one another and never finished",
    Verdict.BLOCKED: "an event loop was blocked; every request to it waited",
}
_LOOP_MACHINERY = frozenset({"asyncio", "runpy", "selectors", "threading"})
_FOLD_PACKAGES = FRAMEWORK_PACKAGES | _LOOP_MACHINERY


def _rule_or_none(code: str) -> Rule | None:
    try:
        return get_rule(code)
    except UnknownRuleError:
        return None  # written by a newer hangdoctor: show what the finding says


def _location(file: str, line: int | None, cwd: str | None = None) -> str:
    where = display_path(file, cwd)
    return f"{where}:{line}" if line else where


def _diagnosis_section(result: ProbeResult, key: str = "") -> str:
    diag = result.diagnosis
    if diag is None:
        if result.verdict is ProbeVerdict.PASS:
            return ""
        return (
            f'<section class="card" id="{key}diagnosis"><h2>Diagnosis</h2>'
            "<p>No stacks were captured during this run, so the cause is not named here. "
            "While the service hangs, run "
            "<code>hangdoctor diagnose --pid PID</code>, or probe again with "
            "<code>--pid PID</code> to capture at the moment of the stall.</p></section>"
        )
    when = f" at t = {result.diagnosis_t:.1f} s" if result.diagnosis_t is not None else ""
    facts = [f"stacks captured{when}"]
    if diag.pids:
        facts.append(("pid " if len(diag.pids) == 1 else "pids ") + ", ".join(map(str, diag.pids)))
    if diag.samples:
        sampled = _plural(diag.samples, "sample")
        if diag.sampled_for_s > 0:
            sampled += f" over {_secs(diag.sampled_for_s)}"
        facts.append(sampled)
    headline = _VERDICT_HEADLINE[diag.verdict] if diag.loops else "no event loop found"
    parts = [
        f'<section class="card" id="{key}diagnosis"><h2>Diagnosis, caught in the act</h2>',
        f'<p class="diag-verdict"><span class="badge {diag.verdict.value}">'
        f"{diag.verdict.value.upper()}</span> {_e(headline)}</p>",
        f'<p class="muted">{_e(" · ".join(facts))}</p>',
    ]
    parts += [_finding(f, diag) for f in diag.findings]
    reported = {(f.pid, f.tid) for f in diag.findings}
    others = [lp for lp in diag.loops if (lp.pid, lp.tid) not in reported]
    if others:
        items = "".join(f"<li>{_loop_line(lp)}</li>" for lp in others)
        parts.append(f'<h3>Other event loops</h3><ul class="loops">{items}</ul>')
    parts.append(_notes(diag.notes, "Notes from the diagnosis"))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _loop_line(lp: LoopReport) -> str:
    return (
        f'pid {_e(lp.pid)} {_e(lp.thread or "thread")} <span class="muted">(tid {_e(lp.tid)}, '
        f'{lp.kind.value})</span>: <span class="state {lp.state.value}">{lp.state.value}</span>'
    )


def _finding(f: Finding, diag: Diagnosis) -> str:
    rule = _rule_or_none(f.code)
    state = f.state.value if f.state else "unknown"
    name = f' <span class="rule-name">{_e(rule.name)}</span>' if rule else ""
    parts = [
        f'<article class="finding" data-code="{_e(f.code)}">',
        f'<h3><span class="code-badge {state}">{_e(f.code)}</span>{name}</h3>',
    ]
    if rule is not None:
        parts.append(f'<p class="summary">{_prose(rule.summary)}</p>')
    parts.append(f'<p class="message">{_prose(f.message)}</p>')
    loop = next((lp for lp in diag.loops if lp.pid == f.pid and lp.tid == f.tid), None)
    parts.append(_facts(f, loop))
    if rule is not None:
        parts.append(f"<h4>Why it hangs</h4><p>{_prose(rule.why)}</p>")
    if f.stack:
        title = (
            f"Await chain of task <code>{_e(f.task)}</code>"
            if f.task is not None
            else "Stack of one busy worker thread"
            if f.state is LoopState.STARVED
            else f"Stack of {_e(f.thread or 'the loop thread')}"
        )
        parts.append(f"<h4>{title}, innermost first</h4>{_stack(f)}")
    parts.append(_user_locals(f, redacted=diag.secrets_redacted))
    if rule is not None:
        parts.append(_fix(rule))
    parts.append(
        f'<p class="muted">Full entry: <code>hangdoctor explain {_e(f.code)}</code></p></article>'
    )
    return "\n".join(p for p in parts if p)


def _facts(f: Finding, loop: LoopReport | None) -> str:
    rows: list[tuple[str, str]] = []
    if f.pid is not None or f.thread or f.tid:
        who = (f"pid {_e(f.pid)} " if f.pid is not None else "") + _e(f.thread or "thread")
        extra = [f"tid {_e(f.tid)}"] if f.tid else []
        if loop is not None:
            extra.append(loop.kind.value)
        if extra:
            who += f' <span class="muted">({", ".join(extra)})</span>'
        rows.append(("loop", who))
    if f.state is not None:
        rows.append(("state", _state_text(f, loop)))
    rows.append(("where", _place(f.file, f.line, f.function, f.source, f.cwd)))
    if f.chain:
        rows.append(("via", _e(" → ".join(f.chain))))
    if f.waits_for is not None:
        rows.append(("waits for", _wait(f.waits_for, f.cwd)))
    if f.task is not None:
        task = f"<code>{_e(f.task)}</code>"
        if f.request is not None:
            task += f" {_e(f.request.method)} {_e(f.request.route or f.request.path)}"
            if f.request.disconnected:
                task += " <strong>(client gone)</strong>"
        if f.waiting_s is not None:
            task += f' <span class="muted">[{_e(age(f.waiting_s))}]</span>'
        rows.append(("task", task))
    if f.waits_on is not None:
        rows.append(("waits on", _waits_on(f.waits_on)))
    if f.holders:
        items = "".join(f"<li>{_holder(h, f.cwd)}</li>" for h in f.holders)
        rows.append(("cycle" if f.cycle else "held by", f'<ul class="holders">{items}</ul>'))
    cells = "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in rows)
    return f'<table class="finding-facts">{cells}</table>'


def _waits_on(waits: WaitsOn) -> str:
    out = _prose(waits.describe())
    if waits.capacity is not None:
        used = "?" if waits.in_use is None else str(waits.in_use)
        out += f' <span class="muted">{_e(used)} of {_e(waits.capacity)} in use</span>'
    if waits.detail:
        out += f"<br>{_prose(waits.detail)}"
    return out


def _holder(holder: Holder, cwd: str | None) -> str:
    out = f"<code>{_e(holder.task)}</code>"
    if holder.file:
        where = _location(holder.file, holder.line, cwd)
        out += f' took it at <code class="loc">{_e(where)}</code>'
    if holder.waits_on is not None or holder.waits_at:
        out += "; now waits"
        if holder.waits_on is not None:
            out += f" on {_prose(holder.waits_on.describe())}"
        if holder.waits_at:
            out += f' at <code class="loc">{_e(holder.waits_at)}</code>'
    if holder.since_s is not None:
        out += f' <span class="muted">[{_e(age(holder.since_s))}]</span>'
    return out


def _state_text(f: Finding, loop: LoopReport | None) -> str:
    state = f.state
    assert state is not None
    cls = f'class="state {state.value}"'
    if state is LoopState.STUCK:
        if f.cycle:
            return f"<span {cls}>loop answers; these tasks wait on each other for ever</span>"
        waited = f" for {_e(age(f.waiting_s))}" if f.waiting_s else ""
        return f"<span {cls}>loop answers; the task has waited{waited}</span>"
    if state is LoopState.STARVED:
        text = "loop idle, but no worker thread is free"
        if loop is not None and loop.busy_workers is not None:
            text = f"loop idle, but {loop.busy_workers} of {loop.total_workers} worker threads busy"
        return f"<span {cls}>{_e(text)}</span>"
    word = "busy (CPU)" if state is LoopState.BUSY else "blocked"
    if f.blocked_for_s is not None and f.blocked_for_s > 0:
        return f"<span {cls}>{word} for at least {_secs(f.blocked_for_s)}</span>"
    return f"<span {cls}>{word}</span>; duration unknown"


def _place(
    file: str | None,
    line: int | None,
    function: str | None,
    source: str | None,
    cwd: str | None = None,
) -> str:
    head = f'<code class="loc">{_e(_location(file or "?", line, cwd))}</code>'
    if function:
        head += f' <span class="muted">in</span> <code>{_e(function)}</code>'
    if not source:
        return head
    number = f'<span class="ln">{_e(line)}</span>' if line else ""
    return f'{head}<pre class="source">{number}{_highlight(source.strip())}</pre>'


def _wait(target: WaitTarget, cwd: str | None = None) -> str:
    if target.thread_name is None and target.tid is None and target.file is None:
        return _prose(target.description)
    if target.thread_name is not None or target.tid is not None:
        head = f"thread {_e(target.thread_name or '?')}"
        if target.tid:
            head += f' <span class="muted">(tid {_e(target.tid)})</span>'
    else:
        head = _prose(target.description)
    if target.file is None:
        return head
    return f"{head}<br>{_place(target.file, target.line, target.function, target.source, cwd)}"


def _stack(f: Finding) -> str:
    user = f.user_frame_index
    out: list[str] = []
    for item in fold_plan(f.stack, user, _FOLD_PACKAGES):
        if isinstance(item, FoldedRun):
            inner = "".join(_frame_item(i, fr, user, f.cwd) for i, fr in item.frames)
            out.append(
                f'<li class="fold"><details><summary>{len(item.frames)} library frames '
                f"({_e(', '.join(item.packages))})</summary><ul>{inner}</ul></details></li>"
            )
        else:
            i, frame = item
            out.append(_frame_item(i, frame, user, f.cwd))
    return f'<ul class="stack">{"".join(out)}</ul>'


def _frame_item(i: int, frame: Frame, user: int | None, cwd: str | None = None) -> str:
    mine = i == user
    where = _location(frame.file or frame.short_file or "?", frame.line, cwd)
    tag = ' <span class="tag">your code</span>' if mine else ""
    cls = ' class="user"' if mine else ""
    return (
        f'<li{cls}><code class="fn">{_e(frame.function)}</code> '
        f'<code class="loc">{_e(where)}</code>{tag}</li>'
    )


def _user_locals(f: Finding, *, redacted: bool) -> str:
    index = f.user_frame_index
    if index is None or not 0 <= index < len(f.stack) or not f.stack[index].locals:
        return ""
    frame = f.stack[index]
    rows = "".join(
        f'<tr><th scope="row"><code>{_e(v.name)}</code>{" (arg)" if v.is_arg else ""}</th>'
        f"<td><code>{_e(v.repr if v.repr is not None else '?')}</code></td></tr>"
        for v in frame.locals
    )
    return (
        f"<h4>Locals of <code>{_e(frame.function)}</code> "
        f"({'secrets redacted' if redacted else 'not redacted: --show-secrets'})</h4>"
        f'<table class="locals">{rows}</table>'
    )


def _fix(rule: Rule) -> str:
    parts = [f'<div class="fix"><h4>Fix</h4><p>{_prose(rule.fix)}</p>']
    if rule.good:
        parts.append(f'<pre class="code good">{_highlight(rule.good.rstrip())}</pre>')
    if rule.fix_min_python:
        parts.append(
            f'<p class="muted">As written, the fix needs Python {rule.fix_min_python} or newer.</p>'
        )
    parts.append("</div>")
    return "".join(parts)


def _notes(notes: Sequence[str], title: str) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{_prose(n)}</li>" for n in notes)
    return f'<section class="notes"><h3>{_e(title)}</h3><ul>{items}</ul></section>'


# --- Python source, highlighted by Pygments ------------------------------------------------

# Pygments' token types, mapped onto the report's few colours (its own HtmlFormatter would
# wrap every name and comma in a span of its own palette). A subtype takes the class of its
# nearest listed parent: String.Doc is a string, Name.Function.Magic a function name.
_TOKEN_CLASSES: dict[_TokenType, str] = {
    Token.Keyword: "tk",
    Token.Operator.Word: "tk",  # and, or, not, in, is
    Token.Literal.String: "ts",
    Token.Comment: "tc",
    Token.Literal.Number: "tn",
    Token.Name.Function: "tf",
    Token.Name.Class: "tf",
    Token.Name.Decorator: "tf",
    Token.Name.Builtin: "tb",
    Token.Name.Exception: "tb",
}


@functools.cache
def _lexer() -> PythonLexer:
    # the text must come back exactly: no newline added or stripped at either end
    return PythonLexer(stripnl=False, ensurenl=False)


def _token_class(ttype: _TokenType) -> str | None:
    while ttype is not Token:
        cls = _TOKEN_CLASSES.get(ttype)
        if cls is not None:
            return cls
        if ttype.parent is None:
            break
        ttype = ttype.parent
    return None


def _highlight(code: str) -> str:
    """Escaped Python with keywords, strings, comments, numbers and names in spans.

    Source lines come from the target and may be fragments (an unclosed bracket or
    string): the lexer reads those too, and every character comes back, escaped.
    """
    # Pygments cuts a string into quote, body and quote: one span per run of a class
    runs: list[tuple[str | None, str]] = []
    for ttype, text in _lexer().get_tokens(code):
        cls = _token_class(ttype)
        if runs and runs[-1][0] == cls:
            runs[-1] = (cls, runs[-1][1] + text)
        else:
            runs.append((cls, text))
    return "".join(
        f'<span class="{cls}">{_e(text)}</span>' if cls else _e(text) for cls, text in runs if text
    )


# --- style ---------------------------------------------------------------------------------


@functools.cache
def _css() -> str:
    """The stylesheet, shipped as package data and inlined: the page loads nothing."""
    return resources.files("hangdoctor.report").joinpath(CSS_RESOURCE).read_text("utf-8")
