"""The report as JSON."""

from __future__ import annotations

import json
from typing import Any

from vimtui.core.report.cells import iso, num
from vimtui.core.report.model import (
    HOST_METRICS,
    METRICS,
    VM_METRICS,
    Report,
    Subject,
)


def _subject_json(s: Subject) -> dict[str, Any]:
    wanted = VM_METRICS if s.kind == "vm" else HOST_METRICS
    metrics: dict[str, Any] = {}
    for m in wanted:
        f = s.metrics.get(m)
        metrics[m] = {
            "unit": METRICS[m][1],
            "avg": None if f is None else num(f.avg),
            "peak": None if f is None else num(f.peak),
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
        "uptime_s": num(s.uptime),
        "uptime_pct": num(s.uptime_pct),
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
                "avg": [num(v) for v in s.series[m].avgs],
                "peak": [num(v) for v in s.series[m].peaks],
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
            "window_s": num(report.window),
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
