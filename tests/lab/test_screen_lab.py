"""The screen on the lab: three real hosts over SSH, and a guest's CPU % changing on screen."""

from __future__ import annotations

import re

import pytest

from tests.lab.lab import Lab
from vimtui.core.config import load_config
from vimtui.core.inventory import build_inventory
from vimtui.ui.app import VimApp, make_app
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
