"""Snapshots of the screen on the test driver, at fixed sizes and with a fixed clock.

Regenerate after an intended change with `.venv/bin/pytest tests/ui/test_snapshots.py --snapshot-update`
and look at the diffs (snapshot_report.html) before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot

from tests.ui.conftest import fleet_app, loaded, typed
from vimtui.ui.widgets.host_tree import HostTree, Scope

SnapCompare = Callable[..., bool]


def ready(*keys: str, before: Callable[[Pilot[None]], Awaitable[None]] | None = None) -> Any:
    async def run_before(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        if before is not None:
            await before(pilot)
        # the cursor follows its VM while hosts connect one by one: start from the top, as a person would
        await typed(pilot, "g", *keys)
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()  # detail screens load the XML, pools ... on the lane
        await pilot.pause()

    return run_before


def test_main_screen(snap_compare: SnapCompare) -> None:
    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=ready())


def test_main_screen_80x24(snap_compare: SnapCompare) -> None:
    assert snap_compare(fleet_app(), terminal_size=(80, 24), run_before=ready())


def test_light_theme_with_filter_and_marks(snap_compare: SnapCompare) -> None:
    app = fleet_app(defaults='theme = "light"\n')
    assert snap_compare(
        app, terminal_size=(120, 40), run_before=ready("slash", *"tag:prod", "enter", "space")
    )


def test_vm_detail(snap_compare: SnapCompare) -> None:
    assert snap_compare(
        fleet_app(),
        terminal_size=(120, 40),
        run_before=ready("colon", *"sort name", "enter", "g", "j", "j", "enter"),
    )


async def _host_kvm_a(pilot: Pilot[None]) -> None:
    tree = pilot.app.screen.query_one(HostTree)
    tree.focus()
    tree.select_scope(Scope("host", "kvm-a"))
    await pilot.pause()


def test_host_detail(snap_compare: SnapCompare) -> None:
    assert snap_compare(fleet_app(), terminal_size=(120, 40), run_before=ready("d", before=_host_kvm_a))


def test_wall_mode(snap_compare: SnapCompare) -> None:
    assert snap_compare(fleet_app(wall=True), terminal_size=(120, 40), run_before=ready())
