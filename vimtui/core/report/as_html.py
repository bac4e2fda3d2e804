"""The report as one standalone HTML page: tables and inline SVG charts, no script, no outside resources."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence

from vimtui.core.report.cells import (
    HOST_HEAD,
    TAIL_HEAD,
    VM_HEAD,
    event_rows,
    fmt_duration,
    gaps,
    header_lines,
    metric_cells,
    metric_head,
    plural,
    row_common,
    row_tail,
    time_label,
    when,
)
from vimtui.core.report.model import (
    HOST_METRICS,
    METRICS,
    VM_METRICS,
    Report,
    Series,
    Subject,
)
from vimtui.core.text import shown
from vimtui.core.units import format_bytes, nice_step

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1f24; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .5em 0; }
.wide { overflow-x: auto; max-width: 100%; margin: .5em 0; } .wide table { margin: 0; }
table.vms { font-size: 13px; } table.vms th, table.vms td { padding: .15em .35em; }
table.vms td:first-child, td.n { white-space: nowrap; }
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
    return html.escape(shown(text, keep="\n"), quote=True)


def _polylines(
    times: Sequence[float],
    values: Sequence[float],
    slot: float,
    x: Callable[[float], float],
    y: Callable[[float], float],
) -> list[list[tuple[float, float]]]:
    """The points of a series as runs without gaps."""
    runs: list[list[tuple[float, float]]] = []
    breaks = set(gaps(times, slot))
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        if i == 0 or i in breaks:
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
    span = max(until - since, 1e-9)
    peak = max((max(s.avgs) for _l, s in lines if s.avgs), default=0.0)
    if unit == "%":
        top = max(100.0, math.ceil(peak / 50.0) * 50.0)
        tick_label: Callable[[float], str] = lambda v: f"{v:g}%"  # noqa: E731
    else:
        top = nice_step(peak)
        tick_label = lambda v: format_bytes(v) + "/s"  # noqa: E731
    ticks = [(frac, tick_label(top * frac)) for frac in (0.0, 0.5, 1.0)]
    # the y labels end 4 px left of the axis: room for the widest at about 6.5 px a character (10 px font)
    left = max(36, 8 + math.ceil(6.5 * max(len(text) for _f, text in ticks)))
    right, top_m, bottom = 8, 18, 20
    pw, ph = width - left - right, height - top_m - bottom

    def x(t: float) -> float:
        return left + pw * (min(max(t + slot / 2, since), until) - since) / span

    def y(v: float) -> float:
        return top_m + ph * (1 - min(max(v, 0.0), top) / top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{_e(title)}</title>'
    ]
    for frac, text in ticks:
        gy = top_m + ph * (1 - frac)
        out.append(f'<line class="grid" x1="{left}" y1="{gy:.1f}" x2="{left + pw}" y2="{gy:.1f}"/>')
        out.append(f'<text x="{left - 4}" y="{gy + 3:.1f}" text-anchor="end">{_e(text)}</text>')
    out.append(f'<line class="axis" x1="{left}" y1="{top_m}" x2="{left}" y2="{top_m + ph}"/>')
    for i, frac in enumerate((0.0, 0.5, 1.0)):
        gx = left + pw * frac
        anchor = ("start", "middle", "end")[i]
        label = time_label(since + span * frac, span)
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
    """Cells are (html, numeric): the html is already escaped. A table wider than the page (the VMs' has
    over twenty columns) scrolls sideways within its own box, not the page."""
    out = [
        f'<div class="wide"><table class="{cls}"><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
    ]
    for row in rows:
        out.append(
            "<tr>" + "".join(f'<td class="n">{c}</td>' if n else f"<td>{c}</td>" for c, n in row) + "</tr>"
        )
    out.append("</tbody></table></div>")
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
    parts += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in header_lines(report, escape=lambda t: t)]
    parts.append("</dl>")
    parts.append(f"<h2>Hosts ({len(report.hosts)})</h2>")
    if report.hosts:
        parts += _html_table(
            HOST_HEAD + ["CPU"] + metric_head(HOST_METRICS) + TAIL_HEAD,
            (
                [(_e(s.name), False), (_e(s.group) or "-", False)]
                + nums([*row_common(s), str(s.samples)])
                + [spark(s)]
                + nums(metric_cells(s, HOST_METRICS) + row_tail(s))
                for s in report.hosts
            ),
            "hosts",
        )
    else:
        parts.append("<p>None.</p>")
    parts.append(f"<h2>VMs ({len(report.vms)})</h2>")
    if report.vms:
        parts += _html_table(
            VM_HEAD + ["CPU"] + metric_head(VM_METRICS) + TAIL_HEAD,
            (
                [
                    (_e(s.name), False),
                    (_e(s.host), False),
                    (_e(s.group) or "-", False),
                    (_e(s.tenant) or "-", False),
                ]
                + nums([*row_common(s), str(s.samples)])
                + [spark(s)]
                + nums(metric_cells(s, VM_METRICS) + row_tail(s))
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
    changes, alerts = event_rows(report)
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
