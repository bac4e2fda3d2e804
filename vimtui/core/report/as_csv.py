"""The report as CSV: one row per subject, base units."""

from __future__ import annotations

import csv
import io

from vimtui.core.report.cells import iso, num, unit_slug
from vimtui.core.report.model import (
    METRICS,
    Report,
)
from vimtui.core.text import csv_cell

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
        u = unit_slug(m)
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
            num(s.uptime),
            num(s.uptime_pct),
            s.samples,
        ]
        for m in METRICS:
            f = s.metrics.get(m)
            row += ["", "", ""] if f is None else [num(f.avg), num(f.peak), f.samples]
        row += [len(s.state_changes), s.alerts_fired, s.alerts_resolved]
        w.writerow([csv_cell(c) if isinstance(c, str) else c for c in row])
    return out.getvalue()
