"""The metric registry's contract: a metric declared once, in one place, is a VM table column with a sort
key, a `/` filter field, an alert metric, an exporter series and a report figure; and the uptime a VM
shows when vimtui did not see it start. The fleet runs on libvirt's test driver (tests/data/fleet.toml)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from textual.app import App, ComposeResult

from vimtui.core import metrics
from vimtui.core.config.settings import parse_config
from vimtui.core.export.openmetrics import render as exposition
from vimtui.core.fleet.filter import fields, parse_query
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import build_inventory
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.model import FleetState, VmState
from vimtui.core.monitor.alerts import AlertEngine, Rule, alert_metric_names
from vimtui.core.report.model import Filters, build_report
from vimtui.core.report.render import render
from vimtui.ui.widgets.vm_columns import sort_columns, sort_vms
from vimtui.ui.widgets.vm_table import VmTable

DATA = Path(__file__).resolve().parent / "data"


def probe(vm: VmState, _now: float) -> float | None:
    """Ten percent per vCPU of a running VM: a value the test driver's VMs have (their vCPUs are in their
    XML), different between them, and unknown for VMs that are not running."""
    return None if vm.state != "running" or vm.vcpus is None else vm.vcpus * 10.0


PROBE = metrics.Metric(
    "vm.probe_pct",
    "vm",
    "%",
    "Probe",
    "A metric only the tests declare.",
    probe,
    column=metrics.Column("probe", "PROBE", 6, order=105),
    filter=metrics.FilterField("probe", "probe>20"),
    alert=True,
    export=metrics.Series("vimtui_vm_probe_ratio", "The tests' probe, 0 to 1.", unit="ratio", divide=100),
    history="probe_pct",
    report=True,
)


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """The test fleet with PROBE declared before it is made, polled until every VM has its details, with
    its lasting history on."""
    text = (DATA / "fleet.toml").read_text().replace("@DATA@", str(DATA))
    config = parse_config(text, file="fleet.toml")
    env = {"XDG_DATA_HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}
    (tmp_path / "run").mkdir(mode=0o700)
    with metrics.declared(PROBE):
        f = make_fleet(config, build_inventory(config), env=env, archive=True)
        await f.start(tick=False)
        try:
            await f.wait_for(
                lambda s: all(h.last_poll for h in s.hosts) and all(v.details for v in s.vms.values()), 20
            )
            await f.tick(deadline=10)
            await f.tick(deadline=10)
            yield f
        finally:
            await f.stop()


def expected(state: FleetState) -> dict[str, float]:
    """VM key -> the probe's value, for the VMs that have one (the test's own reckoning)."""
    out = {}
    for vm in state.vms.values():
        if vm.state == "running" and vm.vcpus is not None:
            out[vm.key] = vm.vcpus * 10.0
    return out


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield VmTable()


async def test_a_metric_declared_once_is_in_the_table_filter_alerts_exporter_and_report(fleet: Fleet) -> None:
    state = fleet.state
    want = expected(state)
    assert len(set(want.values())) > 1 and len(want) < len(state.vms)  # values differ, some unknown
    vms = list(state.vms.values())

    # a column, drawn with its header and its value formatted as a percentage
    app = TableApp()
    async with app.run_test(size=(200, 20)) as pilot:
        table = app.query_one(VmTable)
        table.update(vms, history=None, now=state.time)
        await pilot.pause()
        assert "probe" in table.columns
        header = table.render_line(0).text
        assert "PROBE" in header and header.index("PROBE") < header.index("TAGS")
        for key in table.rows:
            y = table.rows.index(key) + 1
            line = table.render_line(y).text
            if key in want:
                assert f"{want[key]:.1f}%" in line, line
        # a sort key: the table sorts by it, unknown last
        table.sort_by("probe", reverse=True)
        await pilot.pause()
        known = [k for k in table.rows if k in want]
        assert list(table.rows[: len(known)]) == known
        assert [want[k] for k in known] == sorted(want.values(), reverse=True)
    assert "probe" in sort_columns()
    up = [v.key for v in sort_vms(vms, "probe", False, now=state.time)]
    assert [want[k] for k in up[: len(want)]] == sorted(want.values())

    # a filter field
    assert "probe" in fields()
    chosen = {v.key for v in parse_query("probe>20").filter_fleet(state)}
    assert chosen == {k for k, v in want.items() if v > 20} and chosen
    assert {v.key for v in parse_query("probe=20%").filter_fleet(state)} == {
        k for k, v in want.items() if v == 20
    }

    # an alert metric: a rule on it fires for the VMs above its threshold
    assert "vm.probe_pct" in alert_metric_names()
    engine = AlertEngine([Rule("probe-high", "vm.probe_pct", threshold=30.0)])
    fired = engine.evaluate(state, now=state.time)
    assert {a.key for a in fired} == {k for k, v in want.items() if v > 30} and fired
    assert all(a.metric == "vm.probe_pct" and "Probe" in a.message for a in fired)

    # an exporter series, in both formats, as Prometheus' own parser reads them
    for om, parse in ((True, parse_openmetrics), (False, parse_text)):
        text = exposition(state, openmetrics=om).decode()
        families = {f.name: f for f in parse(text)}  # type: ignore[no-untyped-call]
        family = families["vimtui_vm_probe_ratio"]
        assert family.type == "gauge" and family.documentation == "The tests' probe, 0 to 1."
        if om:
            assert family.unit == "ratio"
        got = {f"{s.labels['host']}/{s.labels['uuid']}": s.value for s in family.samples}
        assert got == {k: v / 100 for k, v in want.items()}

    # a report figure, from the lasting history the fleet recorded
    assert fleet.archive is not None
    await asyncio.to_thread(fleet.archive.flush)
    report = await asyncio.to_thread(
        build_report, fleet.archive, state.time - 3600, fleet.clock() + 60, Filters()
    )
    figures = {s.key: s.metrics["probe_pct"] for s in report.vms if "probe_pct" in s.metrics}
    assert set(figures) == set(want)
    assert all(f.avg == pytest.approx(want[k], rel=1e-3) and f.samples >= 1 for k, f in figures.items())
    as_json = json.loads(render(report, "json"))
    assert "probe_pct" in json.dumps(as_json)
    assert "Probe" in render(report, "md") and "probe_pct" in render(report, "csv")


def test_the_registry_forgets_a_test_metric_and_refuses_clashes() -> None:
    assert metrics.get("vm.probe_pct") is None and "probe" not in fields()
    clash = metrics.Metric(
        "vm.other", "vm", "%", "Other", "", probe, filter=metrics.FilterField("cpu", "cpu>1")
    )
    with pytest.raises(ValueError, match="filter field 'cpu'"):
        metrics.declare(clash)
    with pytest.raises(ValueError, match="give its value or its rates field"):
        metrics.Metric("vm.nothing", "vm", "%", "Nothing", "")
    with pytest.raises(ValueError, match="starts with its subject"):
        metrics.Metric("host.x", "vm", "%", "X", "", probe)


# ------------------------------------------------------------------------------------------- uptime


async def test_a_vm_running_before_vimtui_looked_shows_up_at_least_since_first_seen(fleet: Fleet) -> None:
    """libvirt does not say when a domain started: a VM found running has no start time (state_since 0)
    but the time vimtui first saw it, and the table shows "> <since then>" rather than nothing."""
    state = fleet.state
    running = [v for v in state.vms.values() if v.state == "running"]
    assert running and all(v.state_since == 0 and v.first_seen > 0 for v in running)
    vm = running[0]
    later = vm.first_seen + 300
    exact = metrics.get("vm.uptime_seconds")
    least = metrics.get("vm.up_at_least_seconds")
    assert exact is not None and least is not None
    assert exact.getter(vm, later) is None and least.getter(vm, later) == 300
    # a bound past the number settles > and >=; the rest stay unknown (never match)
    assert parse_query("uptime>4m").filter([vm], now=later) == [vm]
    assert parse_query("uptime>=5m").filter([vm], now=later) == [vm]
    assert parse_query("uptime>6m").filter([vm], now=later) == []
    assert parse_query("uptime<1h").filter([vm], now=later) == []
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = app.query_one(VmTable)
        table.update(list(state.vms.values()), history=None, now=later)
        await pilot.pause()
        line = table.render_line(table.rows.index(vm.key) + 1).text
        assert "> 5m" in line, line
