"""The key bar: the screen's shown bindings as one line, redrawn when they change, clickable; the view's
actions first, only those that apply to the selection; whole hints left out when the line is narrow."""

from __future__ import annotations

from tests.ui.conftest import fleet_app, loaded, typed
from vimtui.ui.screens.help import HelpScreen
from vimtui.ui.screens.vm_detail import VmDetailScreen
from vimtui.ui.widgets.key_bar import KeyBar
from vimtui.ui.widgets.vm_table import VmTable

POWER = (" Start ", " Shut down ", " Resume ")
"""One of these applies to any VM of the test fleet (shut off, running, paused)."""


def _is_action(binding: object) -> bool:
    group = getattr(binding, "group", None)
    return group is not None and group.description == "actions"


async def test_hints_follow_the_screens_bindings_and_a_click_presses_the_key() -> None:
    app = fleet_app()
    async with app.run_test(size=(200, 40)) as pilot:
        await loaded(pilot)
        bar = app.screen.query_one(KeyBar)
        shown = {
            b.key: b.description
            for (_, b, enabled, _) in app.screen.active_bindings.values()
            if b.show and (enabled or not _is_action(b))
        }
        assert {key: desc for key, _, desc, _ in bar.hints} == shown
        line = bar.render().plain
        assert "Filter" in line and "Quit" in line and line.rstrip().endswith("palette"), line
        # a click on "? Help" opens the help, as pressing ? does
        start = line.index(" ? Help")
        await pilot.click(KeyBar, offset=(start + 2, 0))
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        # the help screen has its own bindings: the main screen's bar is not drawn over it, and it has none
        assert not app.screen.query(KeyBar)


async def test_the_actions_shown_are_those_that_apply_to_the_selection() -> None:
    app = fleet_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        states = {}
        for _ in range(len(table.rows)):
            vm = table.current_vm
            assert vm is not None
            line = app.screen.query_one(KeyBar).render().plain
            states[vm.state] = line
            await typed(pilot, "j")
        # the actions come first, and only those that apply (tests/data: running and shut off VMs)
        assert states["running"].startswith(" S Shut down") and " s Start" not in states["running"]
        assert states["shutoff"].startswith(" s Start") and "Shut down" not in states["shutoff"]
        await typed(pilot, "g", "enter")
        assert isinstance(app.screen, VmDetailScreen)
        await pilot.pause()
        detail = app.screen.query_one(KeyBar).render().plain
        assert "Back" in detail and any(a in detail for a in POWER), detail


async def test_at_80_columns_the_keys_come_before_the_palette_reminder() -> None:
    app = fleet_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        line = app.screen.query_one(KeyBar).render().plain
        assert "? Help" in line and "palette" not in line, line
        assert any(a in line for a in POWER), line
        assert len(line.rstrip()) <= 80 and not line.rstrip().endswith("…"), line
