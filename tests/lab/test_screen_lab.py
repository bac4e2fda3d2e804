"""The screen on the lab: three real hosts over SSH, and a guest's CPU % changing on screen."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.lab.lab import Lab
from tests.ui.conftest import typed
from vimtui.core.config.settings import load_config, parse_config
from vimtui.core.fleet.inventory import build_inventory
from vimtui.ui.app import VimApp, make_app
from vimtui.ui.widgets.graphs import GraphPanel
from vimtui.ui.widgets.vm_table import VmTable

pytestmark = pytest.mark.lab


def row_of(table: VmTable, name: str) -> str | None:
    for y in range(1, table.size.height):
        text = table.render_line(y).text
        if re.search(rf"\b{re.escape(name)}\b", text):
            return text
    return None


def cpu_cell(row: str) -> str | None:
    m = re.search(r"(\d+\.\d)%", row)
    return m.group(1) if m else None


async def test_the_app_on_three_lab_hosts_shows_cpu_changing(lab: Lab) -> None:
    config = load_config(lab.config_file)
    app: VimApp = make_app(config, build_inventory(config))
    async with app.run_test(size=(140, 44)) as pilot:
        table = app.screen.query_one(VmTable)
        seen: list[str] = []
        for _ in range(600):  # until the CPU % of web01 has shown two different values (deadline ~60 s)
            row = row_of(table, "web01")
            cell = cpu_cell(row) if row else None
            if cell is not None and (not seen or seen[-1] != cell):
                seen.append(cell)
            if len(seen) >= 2:
                break
            await pilot.pause(0.1)
        assert len(seen) >= 2, f"web01's CPU % never changed on screen: {seen}"
        state = app.fleet.state
        assert {h.name for h in state.hosts} == {"kvm01", "kvm02", "kvm03"}
        assert all(h.status == "up" for h in state.hosts)
        for h in lab.hosts:
            for guest in h.guests:
                row = row_of(table, guest)
                assert row is not None and h.name in row, (guest, row)


async def test_history_survives_a_restart_of_the_app(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run archives web01's CPU; the next run, with nothing in memory, draws it in the 1 h window."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    text = lab.config_file.read_text() + "\n[history]\nfine_step = 1\ncoarse_step = 60\n"
    config = parse_config(text, file=str(lab.config_file))

    first = make_app(config, build_inventory(config), archive=True)
    async with first.run_test(size=(140, 44)) as pilot:
        for _ in range(600):  # until web01 has 5 polls with a CPU rate in this run's memory (~60 s)
            [key] = [k for k, v in first.fleet.state.vms.items() if v.name == "web01"] or [None]
            if key is not None and len(first.fleet.vm_history.series(key, "cpu", 900, time.time())[0]) >= 5:
                break
            await pilot.pause(0.1)
        assert key is not None
        before, _ = first.fleet.vm_history.series(key, "cpu", 900, time.time())
        assert len(before) >= 5, before
    restarted = time.time()  # the first app has stopped: its archive is closed, its last samples written

    second = make_app(config, build_inventory(config), archive=True)
    async with second.run_test(size=(140, 44)) as pilot:
        for _ in range(600):
            if key in second.fleet.state.vms:
                break
            await pilot.pause(0.1)
        await typed(pilot, "slash", *"web01", "enter")
        table = second.screen.query_one(VmTable)
        assert table.current_key == key
        graphs = second.screen.query_one(GraphPanel)
        await typed(pilot, "w")  # 15 min -> 1 h
        assert graphs.window == "1h"
        old: list[float] = []
        for _ in range(300):  # the archive is read on a thread: until its points are drawn (~30 s)
            old = [t for s in graphs.graph("cpu").series for t in s.times if t < restarted - 1]
            if len(old) >= 3:
                break
            await pilot.pause(0.1)
        # the second run's memory starts empty: points from before the restart come from the archive
        assert len(old) >= 3, (old, before)
        assert min(old) <= before[-1] and max(old) >= before[0] - 1, (old, before)
