"""Pool fill forecast from the lasting history, the capacity alert metrics, and placement order in the
migrate form's destinations.

What breaks each: a rate taken from two points rather than the week (noise), a shrinking pool forecast as
filling, a forecast read from anything but the archive, a metric reading the wrong figure, an alert rule
unable to watch the new metrics, destinations in inventory order or offering a host in maintenance.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.test_placement import GIB, fleet, host, vm
from tests.ui.conftest import stable_data_dir
from vimtui.core.actions.migrate import check as migrate_check
from vimtui.core.actions.migrate import destinations
from vimtui.core.fleet.pool_watch import PoolWatch, forecast_text, full_in, metric_name
from vimtui.core.metrics import get
from vimtui.core.model import PoolFill, Severity
from vimtui.core.monitor.alerts import AlertEngine, Rule
from vimtui.core.monitor.archive import Archive

DAY = 86400.0
TIB = 2**40


def test_full_in_uses_the_rate_over_the_whole_window() -> None:
    pool = PoolFill("default", True, TIB, TIB // 2, TIB // 2)
    # half a TiB filled over a week, with noise either way: the least-squares rate, not the last step
    times = [i * 3600.0 for i in range(7 * 24)]
    growth = TIB / 2 / (7 * DAY)
    values = [t * growth + (1e9 if i % 2 else -1e9) for i, t in enumerate(times)]
    seconds, basis = full_in(times, values, pool)
    assert seconds is not None and basis == times[-1]
    assert seconds / DAY == pytest.approx(7.0, rel=0.01)
    shrinking = [TIB / 2 - t * growth for t in times]
    assert full_in(times, shrinking, pool) == (None, times[-1])
    assert full_in(times[:2], values[:2], pool)[0] is None  # an hour of history says nothing


def test_forecast_text() -> None:
    filling = PoolFill("default", True, TIB, TIB // 2, TIB // 2, full_in=3.1 * DAY, basis=7 * DAY)
    assert (
        forecast_text("kvm02", filling)
        == "pool default on kvm02 full in about 3 days at the last week's rate"
    )
    young = replace(filling, full_in=5 * 3600.0, basis=6 * 3600.0)
    assert (
        forecast_text("kvm02", young)
        == "pool default on kvm02 full in about 5 hours at the rate of the last 6 hours"
    )
    flat = replace(filling, full_in=None)
    assert forecast_text("kvm02", flat) == "pool default on kvm02 has not grown over the last 7 days"


def test_forecast_reads_the_lasting_history(tmp_path: Path) -> None:
    """Samples written to the archive over a week (as PoolWatch writes them) give the forecast back."""
    archive = Archive(tmp_path / "history.sqlite")
    try:
        now = 1_700_000_000.0
        start = now - 7 * DAY
        growth = 100 * GIB * 1024 / (7 * DAY)  # 100 GiB a week, in bytes/s
        for i in range(0, 7 * 24 * 12 + 1):  # every 5 minutes
            t = start + i * 300.0
            archive.add("kvm02", t, {metric_name("default"): 300 * GIB * 1024 + (t - start) * growth})
        archive.flush(timeout=30)
        pool = PoolFill("default", True, 500 * GIB * 1024, 400 * GIB * 1024, 100 * GIB * 1024)
        [seen] = PoolWatch._forecast(archive, "kvm02", (pool,), now)
        assert seen.full_in is not None and seen.full_in / DAY == pytest.approx(7.0, rel=0.05)
        assert seen.basis > 6.5 * DAY
        assert forecast_text("kvm02", seen).endswith("full in about 7 days at the last week's rate")
    finally:
        archive.close(timeout=30)


def test_capacity_metrics_and_an_alert_on_them() -> None:
    pools = (
        PoolFill("default", True, 100, 93, 7, full_in=2 * DAY, basis=7 * DAY),
        PoolFill("big", True, 1000, 100, 900),
    )
    st = fleet(
        [host("a", cpus=2, mem_gib=8, pools=pools)], [vm("a", "x", 5, 4), vm("a", "y", 1, 2, "shutoff")]
    )
    h = st.hosts[0]
    assert get("host.vcpu_ratio").getter(h, 0.0) == 2.5
    assert get("host.mem_ratio").getter(h, 0.0) == 0.5
    assert get("host.pool_fill_pct").getter(h, 0.0) == 93.0
    assert get("host.pool_full_days").getter(h, 0.0) == 2.0
    assert get("host.pool_full_days").getter(replace(h, pools=None), 0.0) is None
    engine = AlertEngine(
        [
            Rule("overcommit", "host.vcpu_ratio", threshold=2.0, severity=Severity.WARNING),
            Rule("pool-filling", "host.pool_full_days", op="<", threshold=3.0, severity=Severity.WARNING),
        ],
        clock=lambda: 0.0,
    )
    fired = engine.evaluate(st, 0.0)
    assert {a.rule for a in fired} == {"overcommit", "pool-filling"} and all(a.host == "a" for a in fired)


def test_migrate_destinations_in_placement_order() -> None:
    st = fleet(
        [host("src"), host("full"), host("empty"), host("half"), host("maint")],
        [vm("src", "web", 2, 2), vm("full", "f", 2, 12), vm("half", "h", 2, 6)],
        maintenance={"maint": 0.0},
    )
    web = st.vms["src/web"]
    choices = destinations(web, st)
    assert [value for _label, value in choices] == ["empty", "half", "full"]
    assert choices[0][0].startswith("empty  (#1: memory")
    assert migrate_check(web, {"dest": "maint"}, st) == (
        "destination maint is in maintenance: take it out of maintenance first"
    )


def test_vm_create_host_auto_takes_the_best_host(tmp_path: Path) -> None:
    """`vm create --host auto`: the host placement ranks first, never one in maintenance."""
    import json
    import os
    import subprocess
    import sys

    # libvirt's own test:///default host has 3 GiB and a VM of 8 GiB: the test fleet's first host is of a
    # likelier shape (64 GiB), twice
    uri = f"test://{stable_data_dir()}/fleet-a.xml"
    config = tmp_path / "config.toml"
    config.write_text(f'[[hosts]]\nname = "t1"\nuri = "{uri}"\n\n[[hosts]]\nname = "t2"\nuri = "{uri}"\n')
    marks = tmp_path / "share" / "vimtui" / "maintenance.json"
    marks.parent.mkdir(parents=True)
    marks.write_text(json.dumps({"hosts": {"t1": {"since": 0.0}}}))
    env = os.environ | {"XDG_DATA_HOME": str(tmp_path / "share"), "XDG_RUNTIME_DIR": str(tmp_path)}
    argv = ["vm", "create", "new1", "--host", "auto", "--template", "web01", "--dry-run"]
    cmd = [sys.executable, "-m", "vimtui", "--config", str(config), *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert "host auto: t2: vCPUs" in out.stderr
    assert out.stdout.startswith("would create t2/web01 (name=new1")
    marks.write_text(json.dumps({"hosts": {"t1": {"since": 0.0}, "t2": {"since": 0.0}}}))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1 and "no host can take" in out.stderr and "t2: in maintenance" in out.stderr
