"""`:tenants`: each tenant's use against its quota (vCPUs, memory, VMs, disk), from the fleet state; in a
tenant-scoped view only that tenant. The numbers are the core's (vimtui.core.fleet.quotas), the same the
refusals and `vimtui tenants` give."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from vimtui.core.fleet.quotas import TenantUse, fraction, tenants_table
from vimtui.ui.format import literal
from vimtui.ui.messages import FleetUpdated
from vimtui.ui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

FULL = 0.9
"""Use at or above this share of a limit is shown as nearly full."""


def _cell(used: float, limit: int | None) -> Text:
    style = ""
    if limit is not None:
        style = "bold red" if used > limit else ("yellow" if used >= FULL * limit else "")
    return Text(fraction(used, limit), style)


def usage_table(rows: Sequence[TenantUse]) -> Table:
    table = Table(expand=True, box=None, header_style="bold", pad_edge=False)
    table.add_column("TENANT", no_wrap=True, overflow="ellipsis")
    for col in ("VCPUS", "MEMORY MIB", "VMS", "DISK GIB"):
        table.add_column(col, no_wrap=True, overflow="ellipsis", justify="right")
    for r in rows:
        q, u = r.quota, r.use
        table.add_row(
            literal(r.tenant),
            _cell(u.vcpus, q.vcpus if q else None),
            _cell(u.memory_mib, q.memory_mib if q else None),
            _cell(u.vms, q.vms if q else None),
            _cell(u.disk_gib, q.disk_gib if q else None),
        )
    return table


class TenantsScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", id="tenants.back")]
    DEFAULT_CSS = """
    TenantsScreen #head { height: 1; padding: 0 1; background: $panel; }
    TenantsScreen #usage { padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="head")
        with VerticalScroll():
            yield Static("", id="usage")
        yield KeyBar()

    def on_mount(self) -> None:
        self._show()

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self._show()

    def _show(self) -> None:
        app: VimApp = self.app  # type: ignore[assignment]
        state = app.fleet.state
        rows = tenants_table(state)
        scope = f"  scoped to {state.tenant}" if state.tenant else ""
        head = Text.assemble(("tenants", "bold"), f": use / quota ([tenants.NAME] in the config){scope}")
        self.query_one("#head", Static).update(head)
        usage = self.query_one("#usage", Static)
        usage.update(usage_table(rows) if rows else "no tenant has VMs or a quota")
