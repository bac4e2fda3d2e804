"""The key bar: the screen's shown bindings as one line, redrawn when they change, clickable."""

from __future__ import annotations

from tests.ui.conftest import fleet_app, loaded
from vimtui.ui.screens.help import HelpScreen
from vimtui.ui.widgets.key_bar import KeyBar


async def test_hints_follow_the_screens_bindings_and_a_click_presses_the_key() -> None:
    app = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        bar = app.screen.query_one(KeyBar)
        shown = {b.key: b.description for (_, b, _, _) in app.screen.active_bindings.values() if b.show}
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


async def test_at_80_columns_the_keys_come_before_the_palette_reminder() -> None:
    app = fleet_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        line = app.screen.query_one(KeyBar).render().plain
        assert "Mark" in line and "palette" not in line, line
