"""The report as text: CSV, JSON, Markdown (tables and plotext text charts) and standalone HTML (tables and
inline SVG charts), from vimtui.core.report.model's model."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from vimtui.core.report.model import (
    FORMATS,
    HOST_METRICS,
    METRICS,
    VM_METRICS,
    AlertEvent,
    Report,
    Series,
    StateChange,
    Subject,
)
from vimtui.core.units import nice_step

# -- formatting helpers -------------------------------------------------------------------------------


def _num(x: float) -> float:
    """A figure for JSON and CSV: 7 significant digits (what float32 holds), as a number."""
    return float(f"{x:.7g}") if math.isfinite(x) else 0.0


def iso(t: float) -> str:
    """ISO 8601 UTC, to the second: "2024-05-01T12:00:00Z"."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(t: float) -> str:
    """A time for reading: "2024-05-01 12:00:00" (UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def fmt_rate(x: float | None) -> str:
    """Bytes per second in binary units: "512 B/s", "1.5 KiB/s", "12.0 MiB/s"."""
    if x is None:
        return "-"
    if abs(x) < 1024:
        return f"{x:.0f} B/s"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        x /= 1024.0
        if abs(x) < 1024 or unit == "TiB":
            break
    return f"{x:.1f} {unit}/s"


def fmt_value(metric: str, x: float | None) -> str:
    return fmt_pct(x) if METRICS[metric][1] == "%" else fmt_rate(x)


def fmt_duration(seconds: float) -> str:
    """Seconds for reading: "45s", "1m 30s", "2h 5m 0s", "1d 2h 3m"."""
    s = max(0, round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{d}d"] if d else []
    if d or h:
        parts.append(f"{h}h")
    if d or h or m:
        parts.append(f"{m}m")
    if not d:
        parts.append(f"{s}s")
    return " ".join(parts)


def _unit_slug(metric: str) -> str:
    return "pct" if METRICS[metric][1] == "%" else "bytes_per_s"


def _time_label(t: float, span: float) -> str:
    fmt = "%H:%M:%S" if span <= 600 else "%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M"
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def _gaps(times: Sequence[float], slot: float) -> list[int]:
    """Indices of the points that follow a gap (more than one empty slot): no line into them."""
    return [i for i in range(1, len(times)) if times[i] - times[i - 1] > 1.5 * slot]


# -- csv and json -------------------------------------------------------------------------------------

_CSV_HEAD = [
    "kind",
    "key",
    "name",
    "host",
    "group",
    "tenant",
    "uuid",
    "first_seen_utc",
    "last_seen_utc",
    "uptime_s",
    "uptime_pct",
    "samples",
]
_CSV_TAIL = ["state_changes", "alerts_fired", "alerts_resolved"]


def csv_header() -> list[str]:
    head = list(_CSV_HEAD)
    for m in METRICS:
        u = _unit_slug(m)
        head += [f"{m}_avg_{u}", f"{m}_peak_{u}", f"{m}_samples"]
    return head + _CSV_TAIL


def render_csv(report: Report) -> str:
    """One row per subject (hosts first), base units, empty cells where a figure does not apply."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(csv_header())
    for s in report.subjects:
        row: list[object] = [
            s.kind,
            s.key,
            s.name,
            s.host,
            s.group,
            s.tenant,
            s.uuid,
            iso(s.first_seen) if s.first_seen is not None else "",
            iso(s.last_seen) if s.last_seen is not None else "",
            _num(s.uptime),
            _num(s.uptime_pct),
            s.samples,
        ]
        for m in METRICS:
            f = s.metrics.get(m)
            row += ["", "", ""] if f is None else [_num(f.avg), _num(f.peak), f.samples]
        row += [len(s.state_changes), s.alerts_fired, s.alerts_resolved]
        w.writerow(row)
    return out.getvalue()


def _subject_json(s: Subject) -> dict[str, Any]:
    wanted = VM_METRICS if s.kind == "vm" else HOST_METRICS
    metrics: dict[str, Any] = {}
    for m in wanted:
        f = s.metrics.get(m)
        metrics[m] = {
            "unit": METRICS[m][1],
            "avg": None if f is None else _num(f.avg),
            "peak": None if f is None else _num(f.peak),
            "samples": 0 if f is None else f.samples,
        }
    return {
        "key": s.key,
        "kind": s.kind,
        "name": s.name,
        "host": s.host,
        "group": s.group,
        "tenant": s.tenant,
        "uuid": s.uuid,
        "first_seen": s.first_seen,
        "last_seen": s.last_seen,
        "uptime_s": _num(s.uptime),
        "uptime_pct": _num(s.uptime_pct),
        "samples": s.samples,
        "metrics": metrics,
        "state_changes": {
            "count": len(s.state_changes),
            "events": [
                {"t": c.t, "time": iso(c.t), "kind": c.kind, "detail": c.detail} for c in s.state_changes
            ],
        },
        "alerts": {
            "fired": s.alerts_fired,
            "resolved": s.alerts_resolved,
            "events": [
                {"t": a.t, "time": iso(a.t), "state": a.state, "severity": a.severity, "message": a.message}
                for a in s.alerts
            ],
        },
        "series": {
            m: {
                "t": list(s.series[m].times),
                "avg": [_num(v) for v in s.series[m].avgs],
                "peak": [_num(v) for v in s.series[m].peaks],
            }
            for m in wanted
            if m in s.series
        },
    }


def render_json(report: Report) -> str:
    """The whole model: a fixed set of keys at every level (null where a figure is unknown)."""
    doc = {
        "report": {
            "since": report.since,
            "until": report.until,
            "since_utc": iso(report.since),
            "until_utc": iso(report.until),
            "window_s": _num(report.window),
            "generated_utc": iso(report.generated),
            "bucket_s": report.step,
            "point_s": report.slot,
            "filters": report.filters.as_dict(),
            "source": report.source,
            "uptime": "seconds of the window covered by buckets with samples (VMs: while running)",
        },
        "hosts": [_subject_json(s) for s in report.hosts],
        "vms": [_subject_json(s) for s in report.vms],
    }
    return _json(doc) + "\n"


def _json(value: object, indent: str = "") -> str:
    """JSON indented by two spaces, but a list of numbers on one line (the series: 60 points each)."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(k)}: {_json(v, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(inner + _json(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)


# -- markdown -----------------------------------------------------------------------------------------

_MD_SPECIAL = set("\\`*_[]<>|&~")
"""What can change the meaning of text inside a table cell or a heading (a list or heading marker cannot:
no cell or heading of ours starts with the name)."""


def md_escape(text: str) -> str:
    """Text for a Markdown table cell or heading: punctuation backslash-escaped (CommonMark), so a VM
    named `<b>|x` shows as written, and line breaks as spaces."""
    text = " ".join(text.splitlines())
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in text)


def _md_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def text_chart(
    series: Series, since: float, until: float, slot: float, unit: str, *, width: int = 60, height: int = 10
) -> str:
    """A plotext chart of one series over [since, until], without colour: a private figure per call (no
    module-level plotext state), braille dots, lines broken at gaps."""
    from plotext import marker
    from plotext._kernel.terminal import terminal

    term = terminal()
    term.limit(False, False)  # sized here, never by the real terminal
    fig = term._master
    fig.clear()
    fig.theme("colorless")
    fig.canvas("default")
    fig.plot_size(width, height)
    span = max(until - since, 1e-9)
    peak = max(series.avgs, default=0.0)
    if unit == "%":
        top = max(100.0, math.ceil(peak / 50.0) * 50.0)
        ticks = [0.0, top / 2, top]
        labels = [f"{t:g}%" for t in ticks]
    else:
        top = nice_step(peak)
        ticks = [0.0, top / 2, top]
        labels = ["0", fmt_rate(top / 2).replace("/s", ""), fmt_rate(top).replace("/s", "")]
    xs = [min(max(t + slot / 2, since), until) - since for t in series.times]  # slot middles, in the window
    if xs:
        sig = fig.signal(xs, list(series.avgs), marker=marker("braille", None))
        sig.lines()
        for i in _gaps(series.times, slot):
            sig.line(i, False)
        fig.draw(sig)
    fig.legend(False)
    fig.ruler("y").lim(0, top)
    fig.ruler("y").ticks(ticks, labels)
    xt = [0.0, span / 2, span]
    fig.ruler("x").lim(0, span)
    fig.ruler("x").ticks(xt, [_time_label(since + x, span) for x in xt])
    text: str = fig.build().string(colorless=True)
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


def _header_lines(report: Report, *, escape: Callable[[str], str]) -> list[tuple[str, str]]:
    step = report.step
    tier = f"{step}-second buckets" if step is not None else "no samples in the window"
    if step is not None and report.slot is not None:
        tier += f"; chart points of {fmt_duration(report.slot)}"
    return [
        (
            "Window",
            f"{when(report.since)} to {when(report.until)} UTC ({fmt_duration(report.window)})",
        ),
        ("Filters", escape(report.filters.describe()) or "none"),
        ("Figures from", tier),
        ("Subjects", f"{plural(len(report.hosts), 'host')}, {plural(len(report.vms), 'VM')}"),
        (
            "Uptime",
            "the part of the window covered by buckets with samples. VMs are sampled only while they "
            "run, so this is time running (to within a bucket at each start and stop); for a host, "
            "time reachable and sampled.",
        ),
    ]


def _row_common(s: Subject) -> list[str]:
    return [fmt_duration(s.uptime), fmt_pct(s.uptime_pct)]


def _row_tail(s: Subject) -> list[str]:
    return [str(len(s.state_changes)), str(s.alerts_fired), str(s.alerts_resolved)]


_HOST_HEAD = ["Host", "Group", "Uptime", "Up %", "Samples"]
_VM_HEAD = ["VM", "Host", "Group", "Tenant", "Uptime", "Up %", "Samples"]
_TAIL_HEAD = ["State changes", "Alerts fired", "Alerts resolved"]


def _metric_head(metrics: Sequence[str]) -> list[str]:
    out = []
    for m in metrics:
        title, unit = METRICS[m]
        suffix = " %" if unit == "%" else ""
        out += [f"{title} avg{suffix}", f"{title} peak{suffix}"]
    return out


def _metric_cells(s: Subject, metrics: Sequence[str]) -> list[str]:
    out = []
    for m in metrics:
        f = s.metrics.get(m)
        out += [fmt_value(m, None if f is None else f.avg), fmt_value(m, None if f is None else f.peak)]
    return out


def _events(
    report: Report,
) -> tuple[list[tuple[float, Subject, StateChange]], list[tuple[float, Subject, AlertEvent]]]:
    changes = sorted(
        ((c.t, s, c) for s in report.subjects for c in s.state_changes), key=lambda e: (e[0], e[1].key)
    )
    alerts = sorted(((a.t, s, a) for s in report.subjects for a in s.alerts), key=lambda e: (e[0], e[1].key))
    return changes, alerts


def render_md(report: Report) -> str:
    """Tables of hosts and VMs, plotext charts (CPU and memory) of each host and of the busiest VMs, and
    the state changes and alerts in time order."""
    lines = ["# vimtui report", ""]
    lines += [f"- **{k}:** {v}" for k, v in _header_lines(report, escape=md_escape)]
    lines += ["", f"## Hosts ({len(report.hosts)})", ""]
    if report.hosts:
        lines += _md_table(
            _HOST_HEAD + _metric_head(HOST_METRICS) + _TAIL_HEAD,
            (
                [md_escape(s.name), md_escape(s.group) or "-", *_row_common(s), str(s.samples)]
                + _metric_cells(s, HOST_METRICS)
                + _row_tail(s)
                for s in report.hosts
            ),
        )
    else:
        lines.append("None.")
    lines += ["", f"## VMs ({len(report.vms)})", ""]
    if report.vms:
        lines += _md_table(
            _VM_HEAD + _metric_head(VM_METRICS) + _TAIL_HEAD,
            (
                [
                    md_escape(s.name),
                    md_escape(s.host),
                    md_escape(s.group) or "-",
                    md_escape(s.tenant) or "-",
                    *_row_common(s),
                    str(s.samples),
                ]
                + _metric_cells(s, VM_METRICS)
                + _row_tail(s)
                for s in report.vms
            ),
        )
    else:
        lines.append("None.")
    charted = report.hosts + report.busiest(report.top)
    if report.slot is not None and any(s.series for s in charted):
        lines += ["", "## Charts", ""]
        n = len(report.busiest(report.top))
        lines.append(
            f"CPU and memory (average per point, %) of each host and of the {plural(n, 'busiest VM')} by "
            "average CPU; times in UTC."
        )
        for s in charted:
            what = "Host" if s.kind == "host" else "VM"
            lines += ["", f"### {what} {md_escape(s.label)}"]
            for m in ("cpu", "mem"):
                series = s.series.get(m)
                if series is None:
                    continue
                chart = text_chart(series, report.since, report.until, report.slot, METRICS[m][1])
                lines += ["", f"{METRICS[m][0]} %", "", "```text", chart, "```"]
    changes, alerts = _events(report)
    lines += ["", f"## State changes ({len(changes)})", ""]
    if changes:
        lines += _md_table(
            ["Time (UTC)", "Subject", "Event", "Detail"],
            (
                [when(t), md_escape(s.label), md_escape(c.kind), md_escape(c.detail) or "-"]
                for t, s, c in changes
            ),
        )
    else:
        lines.append("None.")
    lines += ["", f"## Alerts ({len(alerts)})", ""]
    if alerts:
        lines += _md_table(
            ["Time (UTC)", "Subject", "State", "Severity", "Message"],
            (
                [when(t), md_escape(s.label), a.state or "-", a.severity or "-", md_escape(a.message)]
                for t, s, a in alerts
            ),
        )
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


# -- html ---------------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1f24; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #d0d7de; padding: .2em .5em; text-align: left; vertical-align: middle; }
th { background: #f6f8fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; } dt { font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
svg text { font: 10px system-ui, sans-serif; fill: #57606a; }
svg .axis { stroke: #8c959f; stroke-width: 1; } svg .grid { stroke: #d0d7de; stroke-width: 1; }
svg .line { fill: none; stroke-width: 1.5; stroke-linejoin: round; }
svg .s0 { stroke: #0969da; } svg .s1 { stroke: #cf222e; } svg .s2 { stroke: #1a7f37; }
svg .s3 { stroke: #8250df; } svg .d0 { fill: #0969da; } svg .d1 { fill: #cf222e; }
svg .d2 { fill: #1a7f37; } svg .d3 { fill: #8250df; }
svg.spark .line { stroke-width: 1; }
@media (prefers-color-scheme: dark) {
  body { color: #e6edf3; background: #0d1117; } th { background: #161b22; }
  th, td { border-color: #30363d; } svg text { fill: #8d96a0; } svg .grid { stroke: #30363d; }
}
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _polylines(
    times: Sequence[float],
    values: Sequence[float],
    slot: float,
    x: Callable[[float], float],
    y: Callable[[float], float],
) -> list[list[tuple[float, float]]]:
    """The points of a series as runs without gaps."""
    runs: list[list[tuple[float, float]]] = []
    gaps = set(_gaps(times, slot))
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        if i == 0 or i in gaps:
            runs.append([])
        runs[-1].append((x(t), y(v)))
    return runs


def _svg_runs(runs: list[list[tuple[float, float]]], cls: int) -> list[str]:
    out = []
    for run in runs:
        if len(run) == 1:
            (px, py) = run[0]
            out.append(f'<circle class="d{cls}" cx="{px:.1f}" cy="{py:.1f}" r="1.5"/>')
        else:
            pts = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            out.append(f'<polyline class="line s{cls}" points="{pts}"/>')
    return out


def svg_chart(
    lines: Sequence[tuple[str, Series]],
    since: float,
    until: float,
    slot: float,
    unit: str,
    title: str,
    *,
    width: int = 520,
    height: int = 150,
) -> str:
    """A line chart of up to four series (label, series) over [since, until] with axes and a legend."""
    left, right, top_m, bottom = 56, 8, 18, 20
    pw, ph = width - left - right, height - top_m - bottom
    span = max(until - since, 1e-9)
    peak = max((max(s.avgs) for _l, s in lines if s.avgs), default=0.0)
    if unit == "%":
        top = max(100.0, math.ceil(peak / 50.0) * 50.0)
        tick_label: Callable[[float], str] = lambda v: f"{v:g}%"  # noqa: E731
    else:
        top = nice_step(peak)
        tick_label = lambda v: fmt_rate(v)  # noqa: E731

    def x(t: float) -> float:
        return left + pw * (min(max(t + slot / 2, since), until) - since) / span

    def y(v: float) -> float:
        return top_m + ph * (1 - min(max(v, 0.0), top) / top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{_e(title)}</title>'
    ]
    for frac in (0.0, 0.5, 1.0):
        gy = top_m + ph * (1 - frac)
        out.append(f'<line class="grid" x1="{left}" y1="{gy:.1f}" x2="{left + pw}" y2="{gy:.1f}"/>')
        out.append(
            f'<text x="{left - 4}" y="{gy + 3:.1f}" text-anchor="end">{_e(tick_label(top * frac))}</text>'
        )
    out.append(f'<line class="axis" x1="{left}" y1="{top_m}" x2="{left}" y2="{top_m + ph}"/>')
    for i, frac in enumerate((0.0, 0.5, 1.0)):
        gx = left + pw * frac
        anchor = ("start", "middle", "end")[i]
        label = _time_label(since + span * frac, span)
        out.append(f'<text x="{gx:.1f}" y="{height - 5}" text-anchor="{anchor}">{_e(label)}</text>')
    lx = left
    for i, (label, series) in enumerate(lines[:4]):
        out.append(f'<rect class="d{i}" x="{lx}" y="4" width="10" height="4"/>')
        out.append(f'<text x="{lx + 13}" y="10">{_e(label)}</text>')
        lx += 13 + 7 * len(label) + 12
        out += _svg_runs(_polylines(series.times, series.avgs, slot, x, y), i)
    out.append("</svg>")
    return "".join(out)


def svg_sparkline(
    series: Series | None, since: float, until: float, slot: float, *, width: int = 100, height: int = 20
) -> str:
    """A tiny CPU line for a table cell (0 to 100 %)."""
    if series is None or not series.avgs:
        return ""
    span = max(until - since, 1e-9)

    def x(t: float) -> float:
        return 1 + (width - 2) * (min(max(t + slot / 2, since), until) - since) / span

    def y(v: float) -> float:
        return 1 + (height - 2) * (1 - min(max(v, 0.0), 100.0) / 100.0)

    body = "".join(_svg_runs(_polylines(series.times, series.avgs, slot, x, y), 0))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>CPU %</title>{body}</svg>'
    )


def _html_table(head: Sequence[str], rows: Iterable[Sequence[tuple[str, bool]]], cls: str) -> list[str]:
    """Cells are (html, numeric): the html is already escaped."""
    out = [
        f'<table class="{cls}"><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
    ]
    for row in rows:
        out.append(
            "<tr>" + "".join(f'<td class="n">{c}</td>' if n else f"<td>{c}</td>" for c, n in row) + "</tr>"
        )
    out.append("</tbody></table>")
    return out


def render_html(report: Report) -> str:
    """One standalone page: tables with CPU sparklines, SVG charts of each host and of the busiest VMs,
    state changes and alerts. No scripts, no external assets; every name escaped."""
    slot = report.slot or 1.0
    since, until = report.since, report.until

    def spark(s: Subject) -> tuple[str, bool]:
        return svg_sparkline(s.series.get("cpu"), since, until, slot), False

    def nums(cells: Sequence[str]) -> list[tuple[str, bool]]:
        return [(_e(c), True) for c in cells]

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>vimtui report {_e(when(since))} to {_e(when(until))} UTC</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>vimtui report</h1>",
        "<dl>",
    ]
    parts += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _header_lines(report, escape=lambda t: t)]
    parts.append("</dl>")
    parts.append(f"<h2>Hosts ({len(report.hosts)})</h2>")
    if report.hosts:
        parts += _html_table(
            _HOST_HEAD + ["CPU"] + _metric_head(HOST_METRICS) + _TAIL_HEAD,
            (
                [(_e(s.name), False), (_e(s.group) or "-", False)]
                + nums([*_row_common(s), str(s.samples)])
                + [spark(s)]
                + nums(_metric_cells(s, HOST_METRICS) + _row_tail(s))
                for s in report.hosts
            ),
            "hosts",
        )
    else:
        parts.append("<p>None.</p>")
    parts.append(f"<h2>VMs ({len(report.vms)})</h2>")
    if report.vms:
        parts += _html_table(
            _VM_HEAD + ["CPU"] + _metric_head(VM_METRICS) + _TAIL_HEAD,
            (
                [
                    (_e(s.name), False),
                    (_e(s.host), False),
                    (_e(s.group) or "-", False),
                    (_e(s.tenant) or "-", False),
                ]
                + nums([*_row_common(s), str(s.samples)])
                + [spark(s)]
                + nums(_metric_cells(s, VM_METRICS) + _row_tail(s))
                for s in report.vms
            ),
            "vms",
        )
    else:
        parts.append("<p>None.</p>")
    charted = report.hosts + report.busiest(report.top)
    if report.slot is not None and any(s.series for s in charted):
        parts.append("<h2>Charts</h2>")
        parts.append(
            f"<p>Each host and the {plural(len(report.busiest(report.top)), 'busiest VM')} by average CPU; "
            f"average per point of {_e(fmt_duration(slot))}, times in UTC.</p>"
        )
        for s in charted:
            what = "Host" if s.kind == "host" else "VM"
            parts.append(f'<h3>{what} {_e(s.label)}</h3><div class="charts">')
            groups = [("CPU and memory", "%", ("cpu", "mem"))]
            if s.kind == "vm":
                groups += [("Disk", "B/s", ("disk_rd", "disk_wr")), ("Network", "B/s", ("net_rx", "net_tx"))]
            for name, unit, metrics in groups:
                lines = [(METRICS[m][0], s.series[m]) for m in metrics if m in s.series]
                if lines:
                    parts.append(svg_chart(lines, since, until, slot, unit, f"{name} of {s.label}"))
            parts.append("</div>")
    changes, alerts = _events(report)
    parts.append(f"<h2>State changes ({len(changes)})</h2>")
    if changes:
        parts += _html_table(
            ["Time (UTC)", "Subject", "Event", "Detail"],
            (
                [
                    (_e(when(t)), False),
                    (_e(s.label), False),
                    (_e(c.kind), False),
                    (_e(c.detail) or "-", False),
                ]
                for t, s, c in changes
            ),
            "changes",
        )
    else:
        parts.append("<p>None.</p>")
    parts.append(f"<h2>Alerts ({len(alerts)})</h2>")
    if alerts:
        parts += _html_table(
            ["Time (UTC)", "Subject", "State", "Severity", "Message"],
            (
                [
                    (_e(when(t)), False),
                    (_e(s.label), False),
                    (_e(a.state) or "-", False),
                    (_e(a.severity) or "-", False),
                    (_e(a.message), False),
                ]
                for t, s, a in alerts
            ),
            "alerts",
        )
    else:
        parts.append("<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


_RENDERERS: dict[str, Callable[[Report], str]] = {
    "csv": render_csv,
    "json": render_json,
    "md": render_md,
    "html": render_html,
}


def render(report: Report, fmt: str) -> str:
    """The report as text in one of FORMATS."""
    try:
        return _RENDERERS[fmt](report)
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r} (one of {', '.join(FORMATS)})") from None
