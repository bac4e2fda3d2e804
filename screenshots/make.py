"""Regenerate the README's screenshots from real runs on the demo lab (3 hosts, real guests).

    .venv/bin/python screenshots/make.py        # as root; brings the demo lab up if it is not

Each shot opens vimtui on the lab over SSH, waits until every running guest has rates on screen, presses
the keys a person would, and saves an SVG here.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402

from tests.lab.lab import Lab  # noqa: E402
from vimtui.core.config.settings import Config, parse_config  # noqa: E402
from vimtui.core.fleet.inventory import build_inventory  # noqa: E402
from vimtui.ui.app import VimApp, make_app  # noqa: E402
from vimtui.ui.widgets.host_tree import HostTree, Scope  # noqa: E402

OUT = Path(__file__).resolve().parent


async def warm(pilot: Pilot[None], ticks: int = 8) -> None:
    """Until every running guest has a CPU rate and a few ticks of history."""
    app: VimApp = pilot.app  # type: ignore[assignment]
    for _ in range(600):
        st = app.fleet.state
        running = [v for v in st.vms.values() if v.state == "running"]
        if (
            running
            and all(v.rates and v.rates.cpu_pct is not None for v in running)
            and app.fleet.ticks >= ticks
        ):
            break
        await pilot.pause(0.1)
    await pilot.pause()


def read_config(path: Path, extra: str, tables: str = "") -> Config:
    """The lab's config with `extra` lines added to its [defaults] table and `tables` at its end."""
    text = path.read_text().replace("[defaults]\n", "[defaults]\n" + extra, 1) + tables
    return parse_config(text, file=str(path), path=path)


# low thresholds, so that the lab's small guests fire them while the shot is taken
ALERT_RULES = """
[[alerts.rules]]
name = "web-cpu"
metric = "vm.cpu_pct"
threshold = 2
for = "4s"
severity = "warning"
vms = ["web*"]

[[alerts.rules]]
name = "app-cpu"
metric = "vm.cpu_pct"
threshold = 2
for = "4s"
severity = "critical"
vms = ["app*"]
"""


async def shot(
    config_path: Path,
    name: str,
    size: tuple[int, int],
    keys: Sequence[str] = (),
    *,
    wall: bool = False,
    extra: str = "",
    tables: str = "",
    host: str | None = None,
) -> None:
    config = read_config(config_path, extra, tables)
    app = make_app(config, build_inventory(config), wall=wall)
    async with app.run_test(size=size) as pilot:
        await warm(pilot)
        if tables:  # alert rules: until one fires, and the screen shows it
            for _ in range(600):
                if app.fleet.state.alerts and getattr(app.screen, "state", None) is app.fleet.state:
                    break
                await pilot.pause(0.1)
        if host is not None:
            tree = app.screen.query_one(HostTree)
            tree.focus()
            tree.select_scope(Scope("host", host))
            await pilot.pause()
        if keys:
            await pilot.press(*keys)
            await pilot.pause(1.0)  # let the detail screen's lane calls land
        app.save_screenshot(f"{name}.svg", str(OUT))
        print(f"screenshots/{name}.svg")


async def main() -> None:
    lab = Lab("demo").up(3)
    cfg = lab.config_file
    await shot(cfg, "main", (140, 44))
    await shot(cfg, "main-80x24", (80, 24))
    await shot(cfg, "light", (140, 44), extra='theme = "light"\n')
    await shot(cfg, "vm-detail", (140, 44), ["colon", *"sort name", "enter", "enter"])
    await shot(cfg, "host-detail", (140, 44), ["d"], host="kvm01")
    await shot(cfg, "wall", (140, 44), wall=True)
    await shot(cfg, "alerts-banner", (140, 44), tables=ALERT_RULES)
    await shot(cfg, "alerts", (140, 44), ["colon", *"alerts", "enter"], tables=ALERT_RULES)


if __name__ == "__main__":
    asyncio.run(main())
