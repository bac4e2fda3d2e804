"""The guest's screen view on libvirt's test driver (its screenshot is a 1120x832 PNG; its keyboard takes
keys): v opens it on the VM under the cursor, the picture comes and is drawn, i types every key into the
guest (ctrl+p included) until ctrl+], and the view is audited: opened, closed with the keys sent."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from textual.pilot import Pilot

from tests.ui.conftest import fleet_app, loaded, plain, typed
from vimtui.ui.app import VimApp
from vimtui.ui.screens.guest_screen import GuestScreen
from vimtui.ui.screens.prompt import PromptScreen
from vimtui.ui.widgets.picture import Picture


async def until(pilot: Pilot[None], what: str, test: Callable[[], object], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not test():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:.0f} s waiting for {what}")
        await pilot.pause(0.02)


async def test_the_screen_view_shows_the_picture_and_types_into_the_guest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app: VimApp = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await typed(pilot, "colon", *"screen web01", "enter")
        screen = app.screen
        assert isinstance(screen, GuestScreen) and screen.vm.name == "web01"
        picture = screen.query_one(Picture)
        await until(pilot, "the picture", lambda: "1120x832" in plain(screen.query_one("#head"), 120))
        assert picture._strips and picture._message is None
        # 120x38 cells under the head and above the keys: 1120x832 fills the 76 pixels high, 102 wide
        assert (len(picture._strips), picture._width) == (38, 102)
        await typed(pilot, "i", "l", "s", "enter", "ctrl+p")
        assert app.screen is screen  # ctrl+p went to the guest, not to the palette
        await until(pilot, "4 keys sent", lambda: screen._sent == 4)
        await typed(pilot, "ctrl+right_square_bracket")
        assert not screen.typing
        await typed(pilot, "K")  # a key sequence, asked in a form
        await until(pilot, "the keys form", lambda: isinstance(app.screen, PromptScreen))
        await typed(pilot, "ctrl+u", *"esc f2", "ctrl+s")
        await until(pilot, "6 keys sent", lambda: screen._sent == 6)
        await typed(pilot, "t")  # a line of text, then enter
        await until(pilot, "the text form", lambda: isinstance(app.screen, PromptScreen))
        await typed(pilot, *"ab", "ctrl+s")
        await until(pilot, "9 keys sent", lambda: screen._sent == 9)
        await typed(pilot, "D")  # ctrl+alt+del, asked first
        await until(pilot, "the confirmation", lambda: isinstance(app.screen, PromptScreen))
        await typed(pilot, "enter")
        await until(pilot, "10 keys sent", lambda: screen._sent == 10)
        await typed(pilot, "s")
        await until(pilot, "the save form", lambda: isinstance(app.screen, PromptScreen))
        await typed(pilot, "ctrl+u", *str(tmp_path / "saved.png"), "ctrl+s")
        await until(pilot, "the file", lambda: (tmp_path / "saved.png").exists())
        assert Image.open(tmp_path / "saved.png").size == (1120, 832)
        await typed(pilot, "escape")
        assert not isinstance(app.screen, GuestScreen)
        await pilot.pause()
    log = app.fleet.tasks.audit
    assert log is not None
    steps = [(r.action, r.vm, r.outcome, r.error) for r in log.records() if r.action == "screen"]
    assert steps == [
        ("screen", "web01", "started", ""),
        ("screen", "web01", "keys", ""),
        ("screen", "web01", "keys", ""),
        ("screen", "web01", "closed", "10 key(s) sent"),
    ]
    named = [r.args.get("keys") for r in log.records() if r.outcome == "keys"]
    assert named == ["esc f2", "ctrl+alt+del"]  # named sequences recorded; typed text only counted
    assert "ls" not in json.dumps([r.args for r in log.records()])


async def test_a_shut_off_vm_has_no_screen_to_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app: VimApp = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await typed(pilot, "colon", *"screen old-app", "enter")
        assert not isinstance(app.screen, GuestScreen)


async def test_zoom_shows_part_of_the_screen_and_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app: VimApp = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await typed(pilot, "colon", *"screen web01", "enter")
        screen = app.screen
        assert isinstance(screen, GuestScreen)
        await until(pilot, "the picture", lambda: screen._image is not None)
        await typed(pilot, "z")  # 1:2 from the bottom left: 240x152 of the 1120x832 picture's pixels
        await until(pilot, "the zoomed part", lambda: screen._region == (0, 680, 240, 832))
        head = plain(screen.query_one("#head"), 120)
        assert "zoom 1:2 at 0,680-240,832" in head, head
        await typed(pilot, "right", "up")  # a third of the part each way
        await until(pilot, "the part moved", lambda: screen._region == (80, 630, 320, 782))
        await typed(pilot, "z", "z")  # 1:1, then the whole picture again
        await until(pilot, "the whole picture", lambda: screen._region == (0, 0, 1120, 832))
