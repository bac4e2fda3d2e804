"""Reports (`vimtui report`, core/report.py) over a real archive written here with known samples at explicit
times: every format's figures are checked against what the test recomputes from those samples (averages,
peaks, sample counts, uptime, state changes, alerts), the filters, the escaping of names, and the CLI's
exit statuses. Also the archive's labels (describe/labels), its schema-1 migration and `timelines`."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from vimtui.core.monitor.archive import SCHEMA_VERSION, Archive
from vimtui.core.report.as_html import svg_chart
from vimtui.core.report.model import (
    FORMATS,
    HOST_METRICS,
    METRICS,
    VM_METRICS,
    Filters,
    Report,
    Series,
    build_report,
)
from vimtui.core.report.render import render

T0 = 1_699_999_800
"""On a coarse (and so fine) bucket boundary."""
FINE = 10
SINCE, UNTIL = T0, T0 + 600
ODD = "we<b>&\"x'"
"""A VM name that needs escaping in every format."""

HOSTS = {"kvm01": "dc1/rack3", "kvm02": "dc10", "kvm03": ""}
VMS = {
    # key: (name, tenant, sampled time ranges [start, end) in seconds from T0)
    "kvm01/u1": (ODD, "acme", [(0, 120), (240, 300)]),
    "kvm01/u2": ("db01", "beta", [(0, 600)]),
    "kvm02/u3": ("app01", "acme", [(30, 400)]),
    "kvm03/u4": ("cache01", "", [(500, 560)]),
    "kvm03/u5": ("", "", [(0, 50)]),  # never described: named by its uuid
}
EVENTS = [
    (T0 + 125, "kvm01/u1", "stopped", "destroyed"),
    (T0 + 238, "kvm01/u1", "started", "booted"),
    (T0 + 50, "kvm01/u1", "alert firing", "critical: VM crashed"),
    (T0 + 260, "kvm01/u1", "alert resolved", "critical: VM crashed"),
    (T0 + 330, "kvm02/u3", "suspended", "paused"),
    (T0 + 340, "kvm02/u3", "job-completed", "x"),  # not a state change
    (T0 + 200, "kvm02", "alert firing", "warning: host memory 93% > 90%"),
    (T0 + 900, "kvm02/u3", "resumed", "late"),  # outside the window
]


@dataclass
class Data:
    """The samples written, per key: (time, values)."""

    samples: dict[str, list[tuple[float, dict[str, float]]]] = field(
        default_factory=lambda: defaultdict(list)
    )


def vm_values(i: int, k: int) -> dict[str, float]:
    return {
        "cpu": float((i * 7 + k * 13) % 97) + 0.25,
        "mem": 20.0 + (i + k) % 5,
        "disk_rd": 1024.0 * ((i * 3 + k) % 11),
        "disk_wr": 512.0 * (i % 4),
        "net_rx": 100.0 * k + (i % 9) * 1000.0,
        "net_tx": float(i % 3),
    }


def fill(path: Path, *, extra_hours: int = 0) -> Data:
    """The dataset: hosts every 10 s, VMs every 3 s while "running", the events; flushed and closed."""
    data = Data()
    with Archive(path) as a:
        for host, group in HOSTS.items():
            a.describe(host, {"kind": "host", "host": host, "group": group})
        for key, (name, tenant, _ranges) in VMS.items():
            if name:
                host, _, uuid = key.partition("/")
                info = {"kind": "vm", "name": name, "host": host, "group": HOSTS[host], "uuid": uuid}
                a.describe(key, info | {"tenant": tenant})
        end = 600 + 3600 * extra_hours
        for h, host in enumerate(HOSTS):
            for s in range(0, end, 10):
                v = {"cpu": 10.0 + (s // 10 + h) % 7, "mem": 40.0 + h}
                a.add(host, T0 + s, v)
                data.samples[host].append((T0 + s, v))
        for k, (key, (_n, _t, ranges)) in enumerate(VMS.items()):
            for start, stop in ranges:
                for i, s in enumerate(range(start, stop, 3)):
                    v = vm_values(i + start, k)
                    a.add(key, T0 + s, v)
                    data.samples[key].append((T0 + s, v))
        for t, key, kind, text in EVENTS:
            a.note(key, t, kind, text)
        a.flush()
    return data


@dataclass
class Want:
    avg: dict[str, float]
    peak: dict[str, float]
    n: dict[str, int]
    uptime: float
    changes: int
    fired: int
    resolved: int


def expected(data: Data, since: float, until: float, step: int = FINE) -> dict[str, Want]:
    """What a report of [since, until] must say, recomputed from the samples written: the buckets (of
    `step`) overlapping the window, their samples, and the seconds of the window they cover."""
    lo, hi = math.floor(since / step), math.floor(until / step)
    out: dict[str, Want] = {}
    for key, samples in data.samples.items():
        inside = [(t, v) for t, v in samples if lo <= t // step <= hi]
        if not inside:
            continue
        per: dict[str, list[float]] = defaultdict(list)
        for _t, v in inside:
            for m, x in v.items():
                per[m].append(x)
        buckets = {int(t // step) for t, _v in inside}
        uptime = sum(max(0.0, min((b + 1) * step, until) - max(b * step, since)) for b in buckets)
        out[key] = Want(
            {m: sum(xs) / len(xs) for m, xs in per.items()},
            {m: max(xs) for m, xs in per.items()},
            {m: len(xs) for m, xs in per.items()},
            uptime,
            0,
            0,
            0,
        )
    for t, key, kind, _text in EVENTS:
        if since <= t <= until and key in out:
            w = out[key]
            if kind in {"stopped", "started", "suspended", "resumed"}:
                w.changes += 1
            elif kind == "alert firing":
                w.fired += 1
            elif kind == "alert resolved":
                w.resolved += 1
    return out


def close(got: float, want: float) -> bool:
    """Within what float32 storage and 7-significant-digit output allow."""
    return math.isclose(got, want, rel_tol=2e-6, abs_tol=1e-6)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Data]:
    path = tmp_path_factory.mktemp("report") / "history.sqlite"
    return path, fill(path)


@pytest.fixture
def report(dataset: tuple[Path, Data]) -> Iterator[Report]:
    with Archive(dataset[0], read_only=True) as a:
        yield build_report(a, SINCE, UNTIL, clock=lambda: T0 + 1000)


def name_of(key: str) -> str:
    return VMS[key][0] or key.partition("/")[2] if "/" in key else key


# -- the model and json / csv -------------------------------------------------------------------------


def test_the_json_report_matches_the_samples(report: Report, dataset: tuple[Path, Data]) -> None:
    want = expected(dataset[1], SINCE, UNTIL)
    doc = json.loads(render(report, "json"))
    assert doc["report"]["bucket_s"] == FINE and doc["report"]["window_s"] == 600
    subjects = {s["key"]: s for s in doc["hosts"] + doc["vms"]}
    assert set(subjects) == set(want)
    assert [s["key"] for s in doc["hosts"]] == ["kvm01", "kvm02", "kvm03"]
    for key, w in want.items():
        s = subjects[key]
        kind = "vm" if "/" in key else "host"
        assert s["kind"] == kind and s["name"] == name_of(key)
        assert list(s["metrics"]) == list(VM_METRICS if kind == "vm" else HOST_METRICS)
        for m, fig in s["metrics"].items():
            assert fig["samples"] == w.n[m], (key, m)
            assert close(fig["avg"], w.avg[m]), (key, m, fig["avg"], w.avg[m])
            assert close(fig["peak"], w.peak[m]), (key, m)
            assert fig["unit"] == METRICS[m][1]
        assert close(s["uptime_s"], w.uptime), (key, s["uptime_s"], w.uptime)
        assert close(s["uptime_pct"], 100 * w.uptime / 600)
        assert s["state_changes"]["count"] == w.changes
        assert (s["alerts"]["fired"], s["alerts"]["resolved"]) == (w.fired, w.resolved)
        assert all(isinstance(v, float) for v in s["series"]["cpu"]["avg"])
    odd = subjects["kvm01/u1"]
    assert odd["uptime_s"] == 180.0  # 0-120 s and 240-300 s: 18 buckets of 10 s
    assert [e["kind"] for e in odd["state_changes"]["events"]] == ["stopped", "started"]
    assert odd["alerts"]["events"][0] == {
        "t": T0 + 50,
        "time": "2023-11-14T22:10:50Z",
        "state": "firing",
        "severity": "critical",
        "message": "VM crashed",
    }
    assert odd["tenant"] == "acme" and odd["group"] == "dc1/rack3" and odd["uuid"] == "u1"
    assert subjects["kvm02"]["alerts"]["events"][0]["severity"] == "warning"
    assert subjects["kvm03/u5"]["name"] == "u5" and subjects["kvm03/u5"]["group"] == ""


def test_the_series_are_the_buckets_downsampled(report: Report, dataset: tuple[Path, Data]) -> None:
    """600 s of 10-s buckets in about 60 points: one bucket a point; each point's average is the mean of
    its samples, its peak their maximum."""
    assert report.slot == 10.0
    db01 = next(s for s in report.vms if s.key == "kvm01/u2")
    cpu = db01.series["cpu"]
    per: dict[float, list[float]] = defaultdict(list)
    for t, v in dataset[1].samples["kvm01/u2"]:
        per[t // 10 * 10].append(v["cpu"])
    assert list(cpu.times) == sorted(per)
    for t, avg, peak in zip(cpu.times, cpu.avgs, cpu.peaks, strict=True):
        assert close(avg, sum(per[t]) / len(per[t])) and close(peak, max(per[t]))
    with Archive(dataset[0], read_only=True) as a:
        tl = a.timelines(["kvm01/u2"], SINCE, UNTIL, points=20)["kvm01/u2"]
    assert tl.slot == 30 and len(tl.series["cpu"][0]) == 20 and tl.buckets == 60 and tl.covered == 600
    first = [x for t, v in dataset[1].samples["kvm01/u2"] if t < T0 + 30 for x in [v["cpu"]]]
    assert close(tl.series["cpu"][1][0], sum(first) / len(first))


def test_the_csv_report_matches_the_samples(report: Report, dataset: tuple[Path, Data]) -> None:
    want = expected(dataset[1], SINCE, UNTIL)
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [r["key"] for r in rows][:3] == ["kvm01", "kvm02", "kvm03"]
    assert {r["key"] for r in rows} == set(want)
    for r in rows:
        w = want[r["key"]]
        for m, (_title, unit) in METRICS.items():
            u = "pct" if unit == "%" else "bytes_per_s"
            if m not in w.n:
                assert r[f"{m}_avg_{u}"] == r[f"{m}_peak_{u}"] == r[f"{m}_samples"] == ""
                continue
            assert int(r[f"{m}_samples"]) == w.n[m]
            assert close(float(r[f"{m}_avg_{u}"]), w.avg[m]) and close(float(r[f"{m}_peak_{u}"]), w.peak[m])
        assert close(float(r["uptime_s"]), w.uptime) and close(float(r["uptime_pct"]), 100 * w.uptime / 600)
        assert int(r["state_changes"]) == w.changes
        assert (int(r["alerts_fired"]), int(r["alerts_resolved"])) == (w.fired, w.resolved)
    assert next(r for r in rows if r["key"] == "kvm01/u1")["name"] == ODD


# -- markdown and html: the rounded figures -----------------------------------------------------------


def pct(x: float) -> str:
    return f"{x:.1f}"


def rate(x: float) -> str:
    """Compact binary units, three significant figures at most: "512B/s", "1.5K/s", "34K/s", "412M/s"."""
    units = ["B", "K", "M", "G", "T"]
    i = 0
    while x >= 999.5 and i < len(units) - 1:
        x /= 1024
        i += 1
    if i == 0:
        return f"{x:.0f}B/s"
    return f"{x:.1f}{units[i]}/s" if x < 9.95 else f"{x:.0f}{units[i]}/s"


def shown(metric: str, x: float) -> set[str]:
    """How a figure may show: either rounding when float32 storage puts it on the other side of a tie."""
    fmt = pct if METRICS[metric][1] == "%" else rate
    return {fmt(x * (1 - 2e-6)), fmt(x), fmt(x * (1 + 2e-6))}


def check_table(head: list[str], rows: list[list[str]], want: dict[str, Want], names: dict[str, str]) -> int:
    """Rows of a host or VM table (first column the name) against the recomputed figures; returns rows
    checked."""
    col = {h: i for i, h in enumerate(head)}
    checked = 0
    for row in rows:
        key = names[row[0]]
        w = want[key]
        for m in w.n:
            title, unit = METRICS[m]
            suffix = " %" if unit == "%" else ""
            assert row[col[f"{title} avg{suffix}"]] in shown(m, w.avg[m]), (key, m)
            assert row[col[f"{title} peak{suffix}"]] in shown(m, w.peak[m]), (key, m)
        assert row[col["Up %"]] == pct(100 * w.uptime / 600)
        assert row[col["Samples"]] == str(max(w.n.values()))
        assert row[col["State changes"]] == str(w.changes)
        assert (row[col["Alerts fired"]], row[col["Alerts resolved"]]) == (str(w.fired), str(w.resolved))
        checked += 1
    return checked


def md_tables(text: str) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Each `## Section (n)` heading's table: header and rows, cells split on unescaped pipes."""
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].split(" (")[0]
        elif line.startswith("| ") and section:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if section not in tables:
                tables[section] = (cells, [])
            elif not set("".join(cells)) <= {"-", " "}:
                tables[section][1].append(cells)
    return tables


def test_the_markdown_report_matches_the_samples_and_has_charts(
    report: Report, dataset: tuple[Path, Data]
) -> None:
    want = expected(dataset[1], SINCE, UNTIL)
    text = render(report, "md")
    tables = md_tables(text)
    escaped = "we\\<b\\>\\&\"x'"
    names = {escaped if VMS[k][0] == ODD else name_of(k): k for k in want if "/" in k}
    assert check_table(*tables["VMs"], want, names) == len(names)
    assert check_table(*tables["Hosts"], want, {h: h for h in HOSTS}) == 3
    assert ODD not in text and f"### VM {escaped} \\(kvm01\\)" not in text  # parentheses are left alone
    assert f"### VM {escaped} (kvm01)" in text
    changes = tables["State changes"][1]
    assert [r[2] for r in changes] == ["stopped", "started", "suspended"]
    assert [r[2:4] for r in tables["Alerts"][1]] == [
        ["firing", "critical"],
        ["firing", "warning"],
        ["resolved", "critical"],
    ]
    # plotext charts: a fenced block with a frame, for CPU and memory of each host and the busiest VMs
    blocks = re.findall(r"```text\n(.*?)\n```", text, re.S)
    assert len(blocks) == 2 * (3 + 5)
    assert all("┌" in b and "└" in b and "100%" in b for b in blocks)
    assert not any("\x1b" in b for b in blocks)  # no colour codes


class Tables(HTMLParser):
    """Table cells (text) per table class, SVG elements, and whether every tag closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.stack: list[str] = []
        self.svgs = 0
        self.titles: list[str] = []
        self._table = ""
        self._cell: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in {"meta", "br", "line", "rect", "circle", "polyline", "!doctype"}:
            self.stack.append(tag)
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("class") or ""
            self.tables[self._table] = []
        elif tag == "tr":
            self.tables[self._table].append([])
        elif tag in {"td", "th"}:
            self._cell = []
        elif tag == "svg":
            self.svgs += 1
        elif tag == "title":
            self._text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()
        if tag in {"td", "th"} and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "title":
            self.titles.append("".join(self._text))

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        self._text.append(data)


def test_the_html_report_is_well_formed_escaped_and_matches_the_samples(
    report: Report, dataset: tuple[Path, Data]
) -> None:
    want = expected(dataset[1], SINCE, UNTIL)
    text = render(report, "html")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script|\bsrc=|\bhref=|url\(", text)  # standalone: nothing to fetch or run
    p = Tables()
    p.feed(text)
    p.close()
    assert p.stack == []
    assert ODD not in text and "we&lt;b&gt;&amp;&quot;x&#x27;" in text
    vms = p.tables["vms"]
    names = {VMS[k][0] or k.partition("/")[2]: k for k in want if "/" in k}
    assert check_table(vms[0], vms[1:], want, names) == len(names)
    hosts = p.tables["hosts"]
    assert check_table(hosts[0], hosts[1:], want, {h: h for h in HOSTS}) == 3
    # a sparkline per subject with samples, and charts for hosts (1) and the 5 busiest VMs (3 each)
    assert p.svgs == len(want) + 3 * 1 + 5 * 3
    assert f"CPU and memory of {ODD} (kvm01)" in p.titles
    assert [r[2] for r in p.tables["changes"][1:]] == ["stopped", "started", "suspended"]
    assert [r[3] for r in p.tables["alerts"][1:]] == ["critical", "warning", "critical"]
    # the VMs' table (over twenty columns) scrolls within a box of its own, not the page
    assert re.search(r'<div class="wide"><table class="vms">', text)
    assert re.search(r"\.wide \{ overflow-x: auto;", text)


def test_a_charts_axis_labels_fit_left_of_its_axis() -> None:
    """Byte rates of any size: every y label (10 px, text-anchor end at x) has room left of x."""
    for peak in (900.0, 200 * 1024.0, 47 * 2**20, 3 * 2**40):
        series = Series([float(T0), float(T0 + 60)], [peak / 2, peak], [peak, peak])
        svg = svg_chart([("read", series)], T0, T0 + 120, 60.0, "B/s", "Disk")
        labels = re.findall(r'<text x="([0-9.]+)" y="[0-9.]+" text-anchor="end">([^<]+/s)</text>', svg)
        assert len(labels) == 3
        for x, text in labels:
            assert float(x) >= 6.5 * len(html.unescape(text)), (peak, text, x)


# -- filters, windows, empty --------------------------------------------------------------------------


def keys_of(report: Report) -> set[str]:
    return {s.key for s in report.subjects}


@pytest.mark.parametrize(
    ("filters", "keys"),
    [
        (Filters(host="kvm01"), {"kvm01", "kvm01/u1", "kvm01/u2"}),
        (Filters(group="dc1"), {"kvm01", "kvm01/u1", "kvm01/u2"}),  # dc1/rack3, not dc10
        (Filters(group="dc1/rack3/"), {"kvm01", "kvm01/u1", "kvm01/u2"}),
        (Filters(group="dc10"), {"kvm02", "kvm02/u3"}),
        (Filters(tenant="acme"), {"kvm01/u1", "kvm02/u3"}),  # no hosts
        (Filters(host="kvm01", tenant="acme"), {"kvm01/u1"}),
        (Filters(host="nope"), set()),
    ],
)
def test_filters(dataset: tuple[Path, Data], filters: Filters, keys: set[str]) -> None:
    with Archive(dataset[0], read_only=True) as a:
        r = build_report(a, SINCE, UNTIL, filters)
    assert keys_of(r) == keys and r.empty == (not keys)


@pytest.mark.parametrize(("fine_keep", "step"), [(86400, FINE), (1800, 300)])
def test_an_hour_reads_the_fine_tier_where_it_is_kept(tmp_path: Path, fine_keep: int, step: int) -> None:
    """An hour the 10-second buckets cover is drawn from them (360 buckets, not a dozen 5-minute dots);
    where the fine tier is kept for less than the window, from the 5-minute buckets."""
    data = fill(tmp_path / "h.sqlite", extra_hours=1)
    since, until = T0 + 60, T0 + 3600 + 60
    want = expected(data, since, until, step=step)
    with Archive(tmp_path / "h.sqlite", read_only=True, fine_keep=fine_keep) as a:
        r = build_report(a, since, until)
    assert r.step == step
    for s in r.subjects:
        w = want[s.key]
        assert close(s.uptime, w.uptime), (s.key, s.uptime, w.uptime)
        assert all(close(s.metrics[m].avg, w.avg[m]) and s.metrics[m].samples == w.n[m] for m in w.n)
    host = next(s for s in r.hosts if s.key == "kvm01")
    assert host.uptime == 3600 and host.uptime_pct == 100  # every bucket, clipped to the window
    assert len(host.series["cpu"].times) >= (50 if step == FINE else 12)
    assert {s.key for s in r.vms} == {k for k in VMS if k in want}


def test_events_alone_make_a_subject(tmp_path: Path) -> None:
    """A VM that only crashed in the window (no samples): listed with no uptime and its state change."""
    with Archive(tmp_path / "h.sqlite") as a:
        a.describe("kvm01/x", {"kind": "vm", "name": "gone", "host": "kvm01", "group": "", "uuid": "x"})
        a.note("kvm01/x", T0 + 5, "crashed", "panicked")
        a.flush()
        r = build_report(a, T0, T0 + 60)
    [vm] = r.vms
    assert (vm.name, vm.uptime, vm.metrics, len(vm.state_changes)) == ("gone", 0.0, {}, 1)
    assert (
        "gone" in render(r, "md") and json.loads(render(r, "json"))["vms"][0]["metrics"]["cpu"]["avg"] is None
    )


def test_every_format_renders_an_empty_report(tmp_path: Path) -> None:
    with Archive(tmp_path / "h.sqlite") as a:
        r = build_report(a, T0, T0 + 60)
    assert r.empty and r.step is None
    assert set(FORMATS) == {"csv", "json", "md", "html"}  # a new format gets its check here
    header, *rows = list(csv.reader(io.StringIO(render(r, "csv"))))
    assert rows == [] and header[:3] == ["kind", "key", "name"] and "cpu_avg_pct" in header
    doc = json.loads(render(r, "json"))
    assert doc["hosts"] == [] and doc["vms"] == []
    assert (doc["report"]["since"], doc["report"]["until"], doc["report"]["bucket_s"]) == (T0, T0 + 60, None)
    for fmt in ("md", "html"):
        text = render(r, fmt)
        assert "0 hosts, 0 VMs" in text and "no samples in the window" in text, fmt
        for section in ("Hosts (0)", "VMs (0)", "State changes (0)", "Alerts (0)"):
            assert section in text, (fmt, section)
    html = render(r, "html")
    assert html.rstrip().endswith("</html>") and "<table" not in html and "<svg" not in html


def test_metric_names_match_the_fleet() -> None:
    from vimtui.cli.report import FORMATS as CLI_FORMATS
    from vimtui.core import metrics

    # what the fleet records (its history's metrics are the registry's history names)
    assert (
        tuple(VM_METRICS)
        == metrics.history_names("vm")
        == ("cpu", "mem", "disk_rd", "disk_wr", "net_rx", "net_tx")
    )
    assert tuple(HOST_METRICS) == metrics.history_names("host") == ("cpu", "mem")
    assert CLI_FORMATS == FORMATS


# -- the archive's labels and schema ------------------------------------------------------------------


def test_labels_are_kept_with_the_keys_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with Archive(path) as a:
        a.describe("kvm01/u1", {"kind": "vm", "name": "web01", "tenant": "acme"})
        a.describe("kvm01/u9", {"kind": "vm", "name": "never sampled"})
        assert a.labels(["kvm01/u1"]) == {"kvm01/u1": {"kind": "vm", "name": "web01", "tenant": "acme"}}
        a.flush()  # no row for either key yet: labels wait in memory
        a.add("kvm01/u1", T0, {"cpu": 1.0})
        a.flush()
        a.describe("kvm01/u1", {"kind": "vm", "name": "web01-renamed", "tenant": "acme"})
        a.flush()
    with Archive(path, read_only=True) as ro:
        assert ro.labels() == {"kvm01/u1": {"kind": "vm", "name": "web01-renamed", "tenant": "acme"}}
        assert ro.labels(["other"]) == {}
    with Archive(path) as b:  # the never-sampled key gets its labels with its first row, after a restart too
        b.describe("kvm01/u9", {"kind": "vm", "name": "late"})
        b.note("kvm01/u9", T0 + 1, "started", "")
        b.flush()
    with closing(sqlite3.connect(path)) as db:
        stored = dict(db.execute("SELECT name, label FROM keys"))
    assert json.loads(stored["kvm01/u9"]) == {"kind": "vm", "name": "late"}


V1_SCHEMA = """
CREATE TABLE keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, last INTEGER NOT NULL);
CREATE TABLE metrics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE fine (t INTEGER NOT NULL, key INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (t, key))
    WITHOUT ROWID;
CREATE TABLE coarse (t INTEGER NOT NULL, key INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (t, key))
    WITHOUT ROWID;
CREATE TABLE events (t REAL NOT NULL, key INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL);
CREATE INDEX events_t ON events (t);
"""


def v1_file(path: Path) -> None:
    """A schema-1 archive as the previous version wrote it: one VM bucket (cpu 5.0 x 2 samples), an event."""
    blob = bytes([1, 1]) + struct.pack("<Hff", 2, 5.0, 6.0)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(V1_SCHEMA + "PRAGMA user_version = 1;")
        db.execute("INSERT INTO keys VALUES (1, 'kvm01/u1', ?)", (T0,))
        db.execute("INSERT INTO metrics VALUES (1, 'cpu')")
        db.execute("INSERT INTO fine VALUES (?, 1, ?)", (T0, blob))
        db.execute("INSERT INTO events VALUES (?, 1, 'started', '')", (T0 + 1,))


def test_a_version_1_file_is_read_read_only_and_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    v1_file(path)
    with Archive(path, read_only=True) as ro:  # a report beside an older vimtui still writing it
        assert ro.problem is None and ro.labels() == {}
        r = build_report(ro, T0, T0 + 60)
        assert [(s.name, s.metrics["cpu"].avg, s.metrics["cpu"].peak) for s in r.vms] == [("u1", 5.0, 6.0)]
    problems: list[str] = []
    with Archive(path, on_problem=problems.append) as a:
        a.describe("kvm01/u1", {"kind": "vm", "name": "web01"})
        a.add("kvm01/u1", T0 + 2, {"cpu": 8.0})
        a.flush()
        assert a.summary(None, T0, T0 + 9) == {"kvm01/u1": {"cpu": (6.0, 8.0, 3)}}
        assert a.events(T0, T0 + 9) == [(T0 + 1, "kvm01/u1", "started", "")]
    assert problems == [] and not list(tmp_path.glob("*.corrupt-*"))
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    with Archive(path, read_only=True) as ro:
        assert ro.labels() == {"kvm01/u1": {"kind": "vm", "name": "web01"}}


# -- the command line ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory, dataset: tuple[Path, Data]) -> dict[str, str]:
    base = tmp_path_factory.mktemp("cli")
    data = base / "data" / "vimtui"
    data.mkdir(parents=True)
    (base / "config" / "vimtui").mkdir(parents=True)
    (base / "config" / "vimtui" / "config.toml").write_text("[history]\nfine_step = 10\n")
    shutil.copy(dataset[0], data / "history.sqlite")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "VIMTUI_"))}
    return env | {"XDG_DATA_HOME": str(base / "data"), "XDG_CONFIG_HOME": str(base / "config")}


def vimtui(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vimtui", "report", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


WINDOW = ("--since", f"@{SINCE}", "--until", f"@{UNTIL}")


def test_cli_prints_a_report_and_writes_files(cli_env: dict[str, str], tmp_path: Path) -> None:
    r = vimtui(cli_env, *WINDOW, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert {s["key"] for s in json.loads(r.stdout)["vms"]} == set(VMS)
    r = vimtui(cli_env, *WINDOW, "--host", "kvm02")  # md by default
    assert r.returncode == 0 and r.stdout.startswith("# vimtui report") and "app01" in r.stdout
    assert "db01" not in r.stdout
    out = tmp_path / "r.html"
    r = vimtui(cli_env, *WINDOW, "-o", str(out))  # the format from the extension
    assert r.returncode == 0 and r.stdout == "" and str(out) in r.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left behind
    r = vimtui(
        cli_env,
        "--since",
        "2023-11-14T22:10:00Z",
        "--until",
        "2023-11-14T22:20:00+00:00",
        "-o",
        "-",
        "--format",
        "csv",
    )
    assert r.returncode == 0 and len(list(csv.DictReader(io.StringIO(r.stdout)))) == len(HOSTS) + len(VMS)


def test_cli_exit_statuses(cli_env: dict[str, str], tmp_path: Path) -> None:
    r = vimtui(cli_env, *WINDOW, "--tenant", "nobody")
    assert r.returncode == 1 and "nothing recorded for tenant nobody" in r.stderr and r.stdout == ""
    r = vimtui(cli_env, "--since", "7d")  # years after the samples: nothing
    assert r.returncode == 1 and "nothing recorded" in r.stderr
    for bad in (
        ["--since", "yesterday"],
        ["--since", "-5m"],
        ["--format", "pdf"],
        ["--since", "1h", "--until", "2h"],
    ):
        r = vimtui(cli_env, *bad)
        assert r.returncode == 2, (bad, r.stderr)
    assert "expected a duration" in vimtui(cli_env, "--since", "yesterday").stderr
    r = vimtui(cli_env, *WINDOW, "-o", str(tmp_path / "missing" / "r.md"))
    assert r.returncode == 2 and "cannot write" in r.stderr
    empty = dict(cli_env, XDG_DATA_HOME=str(tmp_path / "nothing"))
    r = vimtui(empty)
    assert r.returncode == 1 and "no history at" in r.stderr


def test_cli_names_a_damaged_or_foreign_file(tmp_path: Path) -> None:
    data = tmp_path / "data" / "vimtui"
    data.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "VIMTUI_"))}
    env |= {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    path = data / "history.sqlite"
    path.write_bytes(b"this is not sqlite\x00" * 300)
    r = vimtui(env)
    assert r.returncode == 2 and str(path) in r.stderr and "error" in r.stderr, r.stderr
    assert path.read_bytes().startswith(b"this is not")  # a report never moves or changes the file
    path.unlink()
    with Archive(path) as a:  # pages damaged behind a valid header
        for b in range(300):
            for k in range(20):
                a.add(f"h/{k}", T0 + 10 * b, {"cpu": 1.0})
    raw = bytearray(path.read_bytes())
    page = int.from_bytes(raw[16:18], "big")
    raw[page:] = b"\xa5" * (len(raw) - page)
    path.write_bytes(bytes(raw))
    r = vimtui(env, "--since", f"@{T0}", "--until", f"@{T0 + 600}")
    assert r.returncode == 2 and str(path) in r.stderr, r.stderr
