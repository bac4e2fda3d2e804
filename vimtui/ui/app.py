"""VimApp: composition and routing only."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header

from vimtui.core.config import Config
from vimtui.core.fleet import Fleet
from vimtui.core.inventory import HostSpec
from vimtui.core.model import FleetState
from vimtui.core.startup import make_fleet


class VimApp(App[None]):
    """The vimtui screen (for now: hosts and their VMs, updated each tick)."""

    TITLE = "vimtui"
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, fleet: Fleet) -> None:
        super().__init__()
        self.fleet = fleet

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="hosts", cursor_type="row")
        yield DataTable(id="vms", cursor_type="row")
        yield Footer()

    async def on_mount(self) -> None:
        hosts = self.query_one("#hosts", DataTable)
        hosts.add_columns("host", "status", "cpu", "mem", "vms")
        vms = self.query_one("#vms", DataTable)
        vms.add_columns("name", "host", "state", "cpu", "mem used")
        self.fleet.subscribe(self._show)
        await self.fleet.start()

    async def on_unmount(self) -> None:
        await self.fleet.stop()

    def _show(self, state: FleetState) -> None:
        hosts = self.query_one("#hosts", DataTable)
        hosts.clear()
        for h in state.hosts:
            r = h.rates
            hosts.add_row(
                h.name,
                str(h.status),
                _pct(r.cpu_pct if r else None),
                _pct(r.mem_pct if r else None),
                str(len(h.vm_keys)),
            )
        vms = self.query_one("#vms", DataTable)
        vms.clear()
        for v in state.vms.values():
            vr = v.rates
            used = vr.mem_used_kib if vr else None
            vms.add_row(
                v.name,
                v.host,
                v.state,
                _pct(vr.cpu_pct if vr else None),
                "-" if used is None else f"{used // 1024} MiB",
            )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}%"


def run_app(config: Config, specs: Sequence[HostSpec]) -> int:
    VimApp(make_fleet(config, specs)).run()
    return 0
