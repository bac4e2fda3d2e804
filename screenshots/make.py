"""Regenerate the README's screenshots from one real run on the demo lab (3 hosts, real guests).

    .venv/bin/python screenshots/make.py [--minutes M]   # as root; brings the demo lab up if it is not

One vimtui (headless, 140x44, over SSH to the lab's hosts) watches the lab for M minutes (6 by default)
while the guests' work changes: each guest is made busy or idle in turn (its workload reads /tmp/load),
so the graphs, sparklines and rates show minutes of varied load, alert rules fire on busy guests, and the
guests' addresses are known. Then the shots are taken from that same run, pressing the keys a person
would: the main screen at 140x44 and at 80x24, the light theme, the VM detail, the host detail, the wall,
the alerts banner and the alerts view. Each is saved as an SVG here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402

from tests.lab.lab import Lab  # noqa: E402
from vimtui.core.config.settings import Config, parse_config  # noqa: E402
from vimtui.core.fleet.inventory import build_inventory  # noqa: E402
from vimtui.ui.app import VimApp, make_app  # noqa: E402
from vimtui.ui.screens.wall import WallScreen  # noqa: E402
from vimtui.ui.widgets.host_tree import HostTree, Scope  # noqa: E402

OUT = Path(__file__).resolve().parent


def read_config(path: Path, extra: str, tables: str = "") -> Config:
    """The lab's config with `extra` lines added to its [defaults] table and `tables` at its end."""
    text = path.read_text().replace("[defaults]\n", "[defaults]\n" + extra, 1) + tables
    return parse_config(text, file=str(path), path=path)


# thresholds the lab's small guests cross when they are made busy
ALERT_RULES = """
[[alerts.rules]]
name = "web-cpu"
metric = "vm.cpu_pct"
threshold = 40
for = "20s"
severity = "warning"
vms = ["web*"]

[[alerts.rules]]
name = "app-cpu"
metric = "vm.cpu_pct"
threshold = 40
for = "20s"
severity = "critical"
vms = ["app*"]
"""


def vary_load(lab: Lab, stop: threading.Event, period: float = 50.0) -> None:
    """Make the guests busy and idle in turn until `stop`: in each period about a third of them are busy,
    a different third each time, so that every graph has rises and falls."""
    guests = [(h.name, g) for h in lab.hosts for g in h.guests]
    turn = 0
    while not stop.is_set():
        for i, (host, guest) in enumerate(guests):
            if stop.is_set():
                return
            busy = (i + turn) % 3 == 0
            lab.on_console(host, guest, f"echo {'busy' if busy else 'idle'} > /tmp/load", within=60)
        turn += 1
        stop.wait(period)


async def until(pilot: Pilot[None], what: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not what() and time.monotonic() < deadline:
        await pilot.pause(0.2)


def save(app: VimApp, name: str) -> None:
    app.save_screenshot(f"{name}.svg", str(OUT))
    print(f"screenshots/{name}.svg", flush=True)


async def shots(lab: Lab, minutes: float) -> None:
    config = read_config(lab.config_file, "", ALERT_RULES)
    app = make_app(config, build_inventory(config))
    stop = threading.Event()
    loader = threading.Thread(target=vary_load, args=(lab, stop), daemon=True)
    loader.start()
    try:
        async with app.run_test(size=(140, 44)) as pilot:
            started = time.monotonic()
            while time.monotonic() - started < minutes * 60:
                await pilot.pause(5)
                print(f"  {(time.monotonic() - started) / 60:.1f} of {minutes} min", flush=True)
            await until(pilot, lambda: bool(app.fleet.state.alerts), 300)  # a busy guest has an alert
            await pilot.pause(1.0)
            save(app, "main")
            save(app, "alerts-banner")
            await pilot.resize_terminal(80, 24)
            await pilot.pause(1.0)
            save(app, "main-80x24")
            await pilot.resize_terminal(140, 44)
            app.theme = "light"
            await pilot.pause(1.0)
            save(app, "light")
            app.theme = config.defaults.theme
            await pilot.press("colon", *"sort name", "enter", "enter")
            await pilot.pause(2.0)  # the detail screen's lane calls land
            save(app, "vm-detail")
            await pilot.press("escape")
            tree = app.screen.query_one(HostTree)
            tree.focus()
            tree.select_scope(Scope("host", "kvm01"))
            await pilot.pause()
            await pilot.press("d")
            await pilot.pause(2.0)
            save(app, "host-detail")
            await pilot.press("escape")
            await pilot.press("colon", *"alerts", "enter")
            await pilot.pause(1.0)
            save(app, "alerts")
            await pilot.press("escape")
            app.push_screen(WallScreen())
            await pilot.pause(2.0)
            save(app, "wall")
    finally:
        stop.set()
        loader.join(120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=6.0, help="how long the run watches before the shots")
    args = ap.parse_args()
    lab = Lab("demo").up(3)
    with tempfile.TemporaryDirectory() as data:  # this run's audit and history, not the operator's
        os.environ["XDG_DATA_HOME"] = data
        asyncio.run(shots(lab, args.minutes))


if __name__ == "__main__":
    main()
