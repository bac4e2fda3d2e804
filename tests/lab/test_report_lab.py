"""Reports on the lab: a fleet keeps its history in a fresh archive (1-second buckets) while it polls the lab
and a guest is paused and resumed; then `vimtui report` in each format must list every running guest and
every host with figures equal to what this test recomputes from the database, read with sqlite3 and the
blob layout the archive documents (not with the archive's own reads)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import sqlite3
import struct
import sys
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from tests.lab.lab import Lab
from tests.lab.support import FAST, spec, until
from tests.test_report import Tables, md_tables, shown
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.model import FleetState
from vimtui.core.monitor.archive import Archive
from vimtui.core.report.model import HOST_METRICS, METRICS, VM_METRICS

pytestmark = pytest.mark.lab

GROUPS = {"kvm01": "dc1/rack1", "kvm02": "dc1/rack2", "kvm03": "dc2"}
CONFIG = "[history]\nfine_step = 1\nfine_keep = 3600\ncoarse_step = 60\ncoarse_keep = 86400\n"


@dataclass
class Figures:
    """One key's figures recomputed from the rows: per metric [sum, samples, peak], and its buckets."""

    acc: dict[str, list[float]] = field(default_factory=dict)
    buckets: set[int] = field(default_factory=set)
    changes: int = 0
    alerts: int = 0

    def avg(self, m: str) -> float:
        return self.acc[m][0] / self.acc[m][1]


def recompute(path: Path, since: float, until_t: float, step: int) -> dict[str, Figures]:
    """Every key's figures over [since, until]: the rows of the tier of `step` whose buckets overlap the
    window, decoded by hand (k, k metric ids u8, k counts u16, k averages f32, k peaks f32)."""
    table = "fine" if step == 1 else "coarse"
    lo, hi = math.floor(since / step), math.floor(until_t / step)
    out: dict[str, Figures] = defaultdict(Figures)
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
        keys = dict(db.execute("SELECT id, name FROM keys"))
        metrics = dict(db.execute("SELECT id, name FROM metrics"))
        rows = db.execute(f"SELECT t, key, data FROM {table} WHERE t >= ? AND t <= ?", (lo * step, hi * step))
        for t, kid, data in rows:
            k = data[0]
            vals = struct.unpack(f"<B{k}B{k}H{k}f{k}f", data)
            fig = out[keys[kid]]
            fig.buckets.add(t // step)
            for i in range(k):
                mid, n, avg, peak = vals[1 + i], vals[1 + k + i], vals[1 + 2 * k + i], vals[1 + 3 * k + i]
                if metrics[mid] not in METRICS:
                    continue  # kept in the history but not a report figure (a pool's allocation)
                s = fig.acc.setdefault(metrics[mid], [0.0, 0, -math.inf])
                s[0] += avg * n
                s[1] += n
                s[2] = max(s[2], peak)
        state_kinds = {"started", "stopped", "shutdown", "crashed", "suspended", "resumed", "pmsuspended"}
        state_kinds |= {"reboot", "state"}
        for key, kind in db.execute(
            "SELECT k.name, e.kind FROM events AS e JOIN keys AS k ON k.id = e.key "
            "WHERE e.t >= ? AND e.t <= ?",
            (since, until_t),
        ):
            if kind in state_kinds:
                out[key].changes += 1
            elif kind.startswith("alert "):
                out[key].alerts += 1
    return dict(out)


def uptime(fig: Figures, since: float, until_t: float, step: int) -> float:
    return sum(max(0.0, min((b + 1) * step, until_t) - max(b * step, since)) for b in fig.buckets)


def close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=2e-6, abs_tol=1e-6)


async def report(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vimtui",
        "report",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def pause_and_resume(lab: Lab, host: str, name: str, paused: bool) -> None:
    with lab.connect(host) as conn:
        dom = conn.lookupByName(name)
        if paused:
            dom.suspend()
        else:
            dom.resume()


def running_guests(s: FleetState) -> dict[str, str]:
    return {v.key: v.name for v in s.vms.values() if v.state == "running"}


async def test_reports_of_a_lab_run_match_the_database(lab: Lab, tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = data / "vimtui" / "history.sqlite"
    problems: list[str] = []
    archive = Archive(
        path, fine_step=1, fine_keep=3600, coarse_step=60, coarse_keep=86400, on_problem=problems.append
    )
    specs = [spec(lab, h.name, group=GROUPS[h.name]) for h in lab.hosts]
    guests = sum(len(h.guests) for h in lab.hosts)
    since = time.time()
    fleet = Fleet(specs, replace(FAST, host_stats_every=2), tmp_path / "run", archive=archive)
    await fleet.start()
    try:
        await fleet.connected(within=30)
        await until(
            fleet,
            "rates of every host and running guest",
            lambda s: (
                len(s.vms) == guests
                and all(h.rates is not None and h.rates.cpu_pct is not None for h in s.hosts)
                and all(
                    v.rates and v.rates.cpu_pct is not None for v in s.vms.values() if v.state == "running"
                )
            ),
            90,
        )
        # a state change or two for the report: app01 paused, then resumed
        await asyncio.to_thread(pause_and_resume, lab, "kvm02", "app01", True)
        await until(
            fleet,
            "app01 paused",
            lambda s: any(v.name == "app01" and v.state == "paused" for v in s.vms.values()),
        )
        await asyncio.to_thread(pause_and_resume, lab, "kvm02", "app01", False)
        await until(
            fleet,
            "app01 running",
            lambda s: any(v.name == "app01" and v.state == "running" for v in s.vms.values()),
        )
        ticks = fleet.ticks
        state = await until(fleet, "five more polls", lambda s: fleet.ticks >= ticks + 5, 30)
        running = running_guests(state)
    finally:
        await fleet.stop()  # closes the archive: everything is in the file
    until_t = time.time()
    assert problems == [] and len(running) == guests

    config = tmp_path / "config" / "vimtui" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "VIMTUI_"))}
    env |= {"XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    window = ("--since", f"@{since}", "--until", f"@{until_t}")
    outputs: dict[str, str] = {}
    for fmt in ("csv", "json", "md", "html"):
        target = tmp_path / f"report.{fmt}"
        rc, _out, err = await report(env, *window, "-o", str(target))
        assert rc == 0, err
        outputs[fmt] = target.read_text()

    doc = json.loads(outputs["json"])
    step = doc["report"]["bucket_s"]
    assert step == 1  # a short window of a fresh archive: the fine tier
    figures = recompute(path, since, until_t, step)
    window_s = until_t - since
    subjects = {s["key"]: s for s in doc["hosts"] + doc["vms"]}
    assert set(running) <= set(subjects) and {h.name for h in lab.hosts} <= set(subjects)
    assert set(subjects) == {k for k, f in figures.items() if f.acc or f.changes or f.alerts}
    for key, s in subjects.items():
        fig = figures[key]
        wanted = VM_METRICS if "/" in key else HOST_METRICS
        assert s["name"] == running.get(key, s["name"]) and s["group"] == GROUPS[s["host"]]
        for m in wanted:
            got = s["metrics"][m]
            if m not in fig.acc:
                assert got["samples"] == 0 and got["avg"] is None
                continue
            assert got["samples"] == fig.acc[m][1], (key, m)
            assert close(got["avg"], fig.avg(m)) and close(got["peak"], fig.acc[m][2]), (key, m, got)
        assert close(s["uptime_s"], uptime(fig, since, until_t, step))
        assert close(s["uptime_pct"], 100 * uptime(fig, since, until_t, step) / window_s)
        assert s["state_changes"]["count"] == fig.changes
        assert s["alerts"]["fired"] + s["alerts"]["resolved"] == fig.alerts
    app01 = next(s for s in doc["vms"] if s["name"] == "app01")
    kinds = [e["kind"] for e in app01["state_changes"]["events"]]
    assert "suspended" in kinds and "resumed" in kinds
    # every running guest is busy for the whole run: sampled in most of the window's buckets
    assert all(subjects[k]["uptime_s"] > 0 for k in running)

    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(outputs["csv"]))}
    assert set(rows) == set(subjects)
    for key, r in rows.items():
        fig = figures[key]
        for m in fig.acc:
            u = "pct" if METRICS[m][1] == "%" else "bytes_per_s"
            assert int(r[f"{m}_samples"]) == fig.acc[m][1]
            assert close(float(r[f"{m}_avg_{u}"]), fig.avg(m)) and close(
                float(r[f"{m}_peak_{u}"]), fig.acc[m][2]
            )
        assert close(float(r["uptime_s"]), uptime(fig, since, until_t, step))
        assert int(r["state_changes"]) == fig.changes

    def check(head: list[str], table: list[list[str]], by_name: dict[str, str]) -> set[str]:
        col = {h: i for i, h in enumerate(head)}
        seen = set()
        for row in table:
            key = by_name[row[0]]
            fig = figures[key]
            for m in fig.acc:
                title, unit = METRICS[m]
                suffix = " %" if unit == "%" else ""
                assert row[col[f"{title} avg{suffix}"]] in shown(m, fig.avg(m)), (key, m)
                assert row[col[f"{title} peak{suffix}"]] in shown(m, fig.acc[m][2]), (key, m)
            assert row[col["State changes"]] == str(fig.changes)
            seen.add(key)
        return seen

    vm_names = {s["name"]: k for k, s in subjects.items() if "/" in k}
    host_names = {k: k for k in subjects if "/" not in k}
    tables = md_tables(outputs["md"])
    assert check(*tables["VMs"], vm_names) >= set(running)
    assert check(*tables["Hosts"], host_names) == set(host_names)
    assert "```text" in outputs["md"] and "┌" in outputs["md"]
    parser = Tables()
    parser.feed(outputs["html"])
    parser.close()
    assert parser.stack == [] and parser.svgs > len(subjects)
    assert check(parser.tables["vms"][0], parser.tables["vms"][1:], vm_names) >= set(running)
    assert check(parser.tables["hosts"][0], parser.tables["hosts"][1:], host_names) == set(host_names)

    # filters over the labels the fleet gave the archive
    rc, out, err = await report(env, *window, "--group", "dc1", "--format", "json")
    assert rc == 0, err
    picked = json.loads(out)
    assert {s["host"] for s in picked["hosts"] + picked["vms"]} == {"kvm01", "kvm02"}
    assert {s["key"] for s in picked["vms"]} >= {k for k in running if not k.startswith("kvm03/")}
    rc, out, err = await report(env, *window, "--host", "kvm03", "--format", "csv")
    assert rc == 0 and {r["host"] for r in csv.DictReader(io.StringIO(out))} == {"kvm03"}
    rc, _out, err = await report(env, *window, "--tenant", "nobody")
    assert rc == 1 and "nothing recorded" in err
