"""The screen on libvirt's test driver: two hosts (tests/data/fleet-a.xml, fleet-b.xml), a fixed clock."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from vimtui.core.config.settings import Config, parse_config
from vimtui.core.fleet.inventory import build_inventory
from vimtui.ui.app import VimApp, make_app

DATA = Path(__file__).resolve().parent.parent / "data"
CLOCK = 1_790_000_000.0  # a fixed wall time: screens that show times are reproducible


class Clock:
    """Wall time that stands still until a test moves it (shared by the app, its fleet and sessions)."""

    def __init__(self, now: float = CLOCK) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def stable_data_dir() -> Path:
    """The fleet XML files at a path that is the same in every checkout (the host detail screen shows
    the URI, and snapshots must not depend on where the repository was cloned)."""
    stable = Path("/tmp/vimtui-test-fleet")
    stable.mkdir(exist_ok=True)
    for f in DATA.glob("fleet-*.xml"):
        data, target = f.read_bytes(), stable / f.name
        if not target.is_file() or target.read_bytes() != data:
            # whole or not at all: test workers and other checkouts read these files while one writes
            part = target.with_name(f".{f.name}.{os.getpid()}")
            part.write_bytes(data)
            part.replace(target)
    return stable


def fleet_config(extra: str = "", defaults: str = "") -> Config:
    """The test fleet; `defaults` goes into its [defaults] table, `extra` (more tables) at the end."""
    text = (DATA / "fleet.toml").read_text().replace("@DATA@", str(stable_data_dir()))
    text = text.replace("[defaults]\n", "[defaults]\n" + defaults, 1) + extra
    return parse_config(text, file=str(DATA / "fleet.toml"))


def fleet_app(
    extra: str = "",
    wall: bool = False,
    config: Config | None = None,
    defaults: str = "",
    clock: Callable[[], float] | None = None,
) -> VimApp:
    """The test fleet's app, on a Clock standing at CLOCK unless the test gives another clock."""
    config = config or fleet_config(extra, defaults)
    return make_app(config, build_inventory(config), wall=wall, clock=clock or Clock())


def plain(widget: object, width: int = 160) -> str:
    """The text a Static shows, whatever it holds (str, Content, or a Rich renderable such as a Table)."""
    from io import StringIO

    from rich.console import Console

    content = getattr(widget, "content", None)
    if content is None or isinstance(content, str):
        return str(content or "")
    console = Console(width=width, file=StringIO(), color_system=None, record=True)
    console.print(content)
    return console.export_text()


async def typed(pilot: Pilot[None], *keys: str) -> None:
    """Press keys one at a time, letting the screen settle after each (a bar opened by `:` or `/` has its
    focus before the next key arrives)."""
    for key in keys:
        await pilot.press(key)
        await pilot.pause()


async def loaded(pilot: Pilot[None], vms: int = 8) -> None:
    """Wait (on a condition, with a deadline) until the fleet's VMs are on the screen."""
    app: VimApp = pilot.app  # type: ignore[assignment]
    for _ in range(500):
        state = app.fleet.state
        shown = getattr(app.screen, "state", None)
        if (
            len(state.vms) >= vms
            and all(h.last_poll for h in state.hosts)
            and all(v.details is not None for v in state.vms.values())
            and shown is state  # the screen has applied the newest snapshot
        ):
            await pilot.pause()
            await pilot.pause()
            return
        await pilot.pause(0.02)
    pytest.fail(f"the fleet did not load: {[(h.name, h.status, h.message) for h in app.fleet.state.hosts]}")
