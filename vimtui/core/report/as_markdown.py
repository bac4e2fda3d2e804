"""The report as Markdown: tables, and plotext text charts in code blocks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from vimtui.core.report.cells import (
    HOST_HEAD,
    TAIL_HEAD,
    VM_HEAD,
    event_rows,
    fmt_rate,
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
)
from vimtui.core.text import shown
from vimtui.core.units import nice_step

_MD_SPECIAL = set("\\`*_[]<>|&~")
"""What can change the meaning of text inside a table cell or a heading (a list or heading marker cannot:
no cell or heading of ours starts with the name)."""


def md_escape(text: str) -> str:
    """Text for a Markdown table cell or heading: punctuation backslash-escaped (CommonMark), so a VM
    named `<b>|x` shows as written, and line breaks as spaces."""
    text = shown(" ".join(text.splitlines()))
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
        for i in gaps(series.times, slot):
            sig.line(i, False)
        fig.draw(sig)
    fig.legend(False)
    fig.ruler("y").lim(0, top)
    fig.ruler("y").ticks(ticks, labels)
    xt = [0.0, span / 2, span]
    fig.ruler("x").lim(0, span)
    fig.ruler("x").ticks(xt, [time_label(since + x, span) for x in xt])
    text: str = fig.build().string(colorless=True)
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


def render_md(report: Report) -> str:
    """Tables of hosts and VMs, plotext charts (CPU and memory) of each host and of the busiest VMs, and
    the state changes and alerts in time order."""
    lines = ["# vimtui report", ""]
    lines += [f"- **{k}:** {v}" for k, v in header_lines(report, escape=md_escape)]
    lines += ["", f"## Hosts ({len(report.hosts)})", ""]
    if report.hosts:
        lines += _md_table(
            HOST_HEAD + metric_head(HOST_METRICS) + TAIL_HEAD,
            (
                [md_escape(s.name), md_escape(s.group) or "-", *row_common(s), str(s.samples)]
                + metric_cells(s, HOST_METRICS)
                + row_tail(s)
                for s in report.hosts
            ),
        )
    else:
        lines.append("None.")
    lines += ["", f"## VMs ({len(report.vms)})", ""]
    if report.vms:
        lines += _md_table(
            VM_HEAD + metric_head(VM_METRICS) + TAIL_HEAD,
            (
                [
                    md_escape(s.name),
                    md_escape(s.host),
                    md_escape(s.group) or "-",
                    md_escape(s.tenant) or "-",
                    *row_common(s),
                    str(s.samples),
                ]
                + metric_cells(s, VM_METRICS)
                + row_tail(s)
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
    changes, alerts = event_rows(report)
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
