"""The graphical console in the screen: `V` (and `:display`, the palette) refuse with the reason where a
display cannot be forwarded (the test driver's hosts are reached without SSH; a VM that is shut off), and
the dialog of an open forward shows where to point a viewer, what protects the display, and how to close
it. The forward itself crosses SSH: tests/lab/test_display_lab.py."""

from __future__ import annotations

import time

import pytest

from tests.ui.conftest import fleet_app, loaded, plain, typed
from tests.ui.test_action_contract import notified
from tests.ui.test_actions import SIZE, to_vm
from vimtui.core.actions.display import Display
from vimtui.core.actions.display_forward import Forward
from vimtui.ui.screens.display import DisplayScreen

NO_SSH = "not over vimtui's SSH connection"


async def test_the_key_the_line_and_the_palette_say_why_a_display_cannot_be_opened() -> None:
    from vimtui.ui.commands import _vm_action_commands

    app = fleet_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web01")
        await typed(pilot, "V")
        assert notified(app, NO_SSH)
        titles = {t: h for t, h, _ in _vm_action_commands(app.screen)}  # type: ignore[arg-type]
        assert NO_SSH in titles["VM: Display web01 — not available"]
        await to_vm(pilot, "old-app")
        await typed(pilot, "V")
        assert notified(app, "old-app is shutoff: only a running VM has a display")
        await typed(pilot, "colon", *"display nonesuch", "enter")
        assert notified(app, "nonesuch")
        await typed(pilot, "escape", "colon", *"displays", "enter")
        assert notified(app, "no display forward is open")
        assert not app.displays.open_ones() and not isinstance(app.screen, DisplayScreen)


async def test_the_dialog_shows_the_address_the_notes_and_how_to_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    app = fleet_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot)
        vm = app.fleet.state.find_vm("web01")[0]
        display = Display("vnc", "0.0.0.0", 5901, password=False)
        forward = Forward(vm, display, "127.0.0.1", 40123, time.time())  # as a forward over SSH leaves it
        await app.push_screen(DisplayScreen(forward))
        await pilot.pause()
        screen = app.screen
        assert plain(screen.query_one("#title")).strip() == "VNC display of web01 (kvm-a) at 127.0.0.1:40123"
        address = plain(screen.query_one("#address"))
        assert "vnc://127.0.0.1:40123" in address and "on kvm-a: 0.0.0.0:5901, through SSH" in address
        notes = plain(screen.query_one("#notes"), width=300)
        assert "no password" in notes and "beyond its loopback" in notes
        how = plain(screen.query_one("#how"), width=300)
        assert "no graphical session here" in how and "ssh -L 5900:127.0.0.1:40123" in how
        keys = plain(screen.query_one("#keys"), width=300)
        assert "open, 0 viewer connection(s)" in keys and "x close the forward" in keys
        await typed(pilot, "v")  # no viewer can open a window here: said, nothing started
        assert notified(app, "no graphical session here")
        await typed(pilot, "y")
        assert app.clipboard == "127.0.0.1:40123" and notified(app, "copied 127.0.0.1:40123")
        await typed(pilot, "escape")
        assert not isinstance(app.screen, DisplayScreen)
