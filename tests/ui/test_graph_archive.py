"""Long graph windows take what this run has not seen from the lasting history (a restart keeps it)."""

from __future__ import annotations

from pathlib import Path

from tests.ui.conftest import CLOCK, fleet_app, fleet_config, loaded, typed
from vimtui.core.monitor.archive import Archive
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
