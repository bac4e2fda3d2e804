"""Long graph windows take what this run has not seen from the lasting history (a restart keeps it)."""

from __future__ import annotations

from pathlib import Path

from tests.ui.conftest import CLOCK, fleet_app, fleet_config, loaded, typed
from vimtui.core.monitor.archive import Archive
from vimtui.core.monitor.rings import History
from vimtui.ui.widgets.graph_data import archived_before
from vimtui.ui.widgets.graphs import GraphPanel
from vimtui.ui.widgets.vm_table import VmTable


def fleet_keys() -> list[str]:
    """Every VM key of the test fleet (host/uuid), read from libvirt's test driver."""
    import libvirt

    keys = []
    for host in fleet_config().hosts:
        conn = libvirt.open(host.uri)
        try:
            keys += [f"{host.name}/{dom.UUIDString()}" for dom in conn.listAllDomains()]
        finally:
            conn.close()
    return keys


async def test_the_1h_window_shows_what_an_earlier_run_archived(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    # an earlier run: 40 minutes of 10-s samples of every VM, ending 10 minutes before now
    earlier = Archive(path, fine_step=10.0)
    written = {CLOCK - 3000 + 10 * i: float(i % 50) for i in range(240)}
    keys = fleet_keys()
    for key in keys:
        for t, cpu in written.items():
            earlier.add(key, t, {"cpu": cpu, "mem": 40.0})
    earlier.close()
    app = fleet_app()
    app.fleet.archive = Archive(path, fine_step=10.0, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert app.screen.query_one(VmTable).current_key in keys
        graphs = app.screen.query_one(GraphPanel)
        cpu = graphs.graph("cpu")
        assert not any(s.times for s in cpu.series)  # 15 minutes: this run's memory, empty on the test driver
        await typed(pilot, "w")  # 15m -> 1h
        assert graphs.window == "1h"
        for _ in range(300):
            if any(s.times for s in cpu.series):
                break
            await pilot.pause(0.02)
        [line] = cpu.series
        assert dict(zip(line.times, line.values, strict=True)) == written
        # back to 15 minutes: none of the archive's points
        await typed(pilot, "w", "w", "w")  # 24h, 5m, 15m
        assert graphs.window == "15m"
        assert not any(s.times for s in cpu.series)
    app.fleet.archive.close()


def test_a_restart_within_a_minute_keeps_the_earlier_runs_points_of_that_minute() -> None:
    """The 1 h window draws this run from its minute ring, whose first slot starts before this run's first
    sample when the restart fell mid-minute: the earlier run's points of that minute are still drawn, in
    time order, and this run's first minute after them."""
    minute = 60.0 * (CLOCK // 60)
    past = ([minute + t for t in range(0, 26)], [float(t) for t in range(0, 26)])  # earlier run: :00 to :25
    history = History(("cpu",), fine_step=1.0, coarse_step=60.0)
    began = minute + 30
    for i in range(90):  # this run: from :30 on, 90 s
        history.record("vm", began + i, {"cpu": 50.0})
    now = began + 89
    times, values = history.series("vm", "cpu", 3600, now)
    assert times[0] == minute  # the minute slot the restart fell in starts before this run
    assert history.began("vm") == began
    merged_t, merged_v = archived_before(past, began, times, values)
    assert merged_t[:26] == past[0] and merged_v[:26] == past[1]
    assert merged_t[26:] == [began, *times[1:]] and merged_v[26:] == values
    assert merged_t == sorted(merged_t) and len(set(merged_t)) == len(merged_t)
