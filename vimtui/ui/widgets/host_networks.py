"""The host detail's networks part: a table of the host's virtual networks (state, mode, bridge, subnet,
DHCP range, autostart, leases, VMs) with a row cursor and the network actions' keys, and under it the
selected network's DHCP leases (which VM holds which address) and the VMs plugged into it.

Read with `Fleet.ask` on the host's lane when shown, every REFRESH seconds while it is shown (a lease comes
while the operator watches), on `r` and after each action; a host that cannot say is shown as such.
Everything from the host is shown as text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from vimtui.core.actions import of_kind
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.poll.host_networks import NetworkView, networks
from vimtui.core.units import format_duration
from vimtui.ui.format import literal, text_row
from vimtui.ui.net_actions import net_why_not, network_bindings, run_net_action
from vimtui.ui.widgets.list_table import ListTable

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

REFRESH = 10.0
"""Seconds between two reads while shown (each lists the host's networks, leases and domains)."""
COLUMNS = ("network", "state", "mode", "bridge", "subnet", "dhcp range", "autostart", "leases", "vms")


def row(n: NetworkView) -> list[Text]:
    running = n.running_users
    vms = f"{len(running)} running" + (f" of {len(n.users)}" if len(n.users) != len(running) else "")
    return text_row(
        n.name,
        "active" if n.active else "inactive",
        n.mode + (f" via {n.forward_dev}" if n.forward_dev else ""),
        n.bridge or "-",
        ", ".join(n.subnets) or "-",
        ", ".join(n.dhcp) or "-",
        "yes" if n.autostart else "no",
        "?" if n.leases is None else str(len(n.leases)),
        vms if n.users else "-",
    )


def leases_table(n: NetworkView, now: float) -> Table | Text:
    """The selected network's leases, each with the VM that holds it, then its VMs without a lease."""
    if n.leases is None:
        why = "inactive: no leases" if not n.active else "leases not known (this libvirt cannot say)"
        t: Table | Text = literal(f"{n.name}: {why}")
    else:
        t = Table(
            title=f"Leases on {n.name}", title_justify="left", expand=True, box=None, header_style="bold"
        )
        for col in ("address", "mac", "vm", "hostname", "expires in"):
            t.add_column(col)
        for x in n.leases:
            left = format_duration(x.expires - now) if x.expires else "never"
            t.add_row(*text_row(x.ip, x.mac, x.vm or "- (no VM here has this MAC)", x.hostname or "-", left))
        if not n.leases:
            t.add_row(*text_row("no lease yet", "", "", "", ""))
    leased = {x.mac for x in n.leases or ()}
    without = [u for u in n.users if u.mac.lower() not in leased]
    if not without:
        return t
    out = Table.grid()
    out.add_row(t)
    names = ", ".join(f"{u.vm} ({u.state})" for u in without)
    out.add_row(literal(f"on it without a lease: {names}"))
    return out


class NetworkTable(ListTable[Text]):
    """The networks, one row each; the network actions' keys act on the row under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="networks.cursor_down"),
        Binding("k", "cursor_up", "Up", show=False, id="networks.cursor_up"),
        *network_bindings(),
    ]

    def __init__(self, host: str, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self.host = host
        self.views: list[NetworkView] = []

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def selected(self) -> NetworkView | None:
        if not self.views or not 0 <= self.cursor_row < len(self.views):
            return None
        return self.views[self.cursor_row]

    def show(self, views: list[NetworkView]) -> None:
        """The rows again, the cursor kept on the same network (by name) when it is still there."""
        was = self.selected()
        self.views = views
        self.clear(columns=not self.columns)
        if not self.columns:
            self.add_columns(*COLUMNS)
        for n in views:
            self.add_row(*row(n), key=n.name)
        names = [n.name for n in views]
        if was is not None and was.name in names:
            self.move_cursor(row=names.index(was.name))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "net_action":
            return None if net_why_not(self.vimapp, str(parameters[0]), self.host, self.selected()) else True
        return True

    def action_refusal(self, action: str, parameters: tuple[object, ...]) -> str | None:
        if action == "net_action":
            return net_why_not(self.vimapp, str(parameters[0]), self.host, self.selected())
        return None

    def action_net_action(self, name: str) -> None:
        self.act_on(name)

    def act_on(self, name: str, given: dict[str, Any] | None = None) -> None:
        why = net_why_not(self.vimapp, name, self.host, self.selected())
        if why is not None:
            self.vimapp.notify(why, severity="warning", timeout=4, markup=False)
            return
        self._act(name, given or {})

    @work(group="net-actions", exit_on_error=False, description="network action")
    async def _act(self, name: str, given: dict[str, Any]) -> None:
        task = await run_net_action(self.vimapp, name, self.host, self.selected(), given)
        if task is not None:
            part = self.screen.query(NetworksPart)
            if part:  # a network just defined is selected, to read its leases
                part.first().reload(select=task.vm if name == "define" else "")


@dataclass(frozen=True)
class NetRequest:
    """What `:net` asked for: the network to select (and focus), and an action to run on it."""

    network: str = ""
    action: str = ""
    given: dict[str, Any] = field(default_factory=dict)


class NetworksPart(Vertical):
    """The networks table and the selected network's leases; `reload()` reads them again."""

    DEFAULT_CSS = """
    NetworksPart { height: auto; }
    NetworksPart #net-title { text-style: bold; }
    NetworksPart NetworkTable { height: auto; max-height: 12; }
    NetworksPart #net-leases { margin-top: 1; height: auto; }
    """

    def __init__(
        self,
        host: str,
        request: NetRequest | None = None,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.host = host
        self.request = request
        self.status = "networks: loading ..."
        """What the title line says besides the name (loading, or why the host cannot say)."""

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(literal(self.status), id="net-title")
        yield NetworkTable(self.host, id="net-table")
        yield Static("", id="net-leases")

    def on_mount(self) -> None:
        self._load()  # at once, even while its screen is still being pushed
        self.set_interval(REFRESH, self.reload)

    @property
    def table(self) -> NetworkTable:
        return self.query_one(NetworkTable)

    def reload(self, select: str = "") -> None:
        if select:
            self.request = NetRequest(select)
        if self.screen.is_current:
            self._load()

    @work(exclusive=True, group="networks", exit_on_error=False, description="networks")
    async def _load(self) -> None:
        try:
            views = await self.vimapp.fleet.ask(self.host, networks)
        except QueryFailed as exc:
            self.query_one("#net-title", Static).update(literal(f"networks: {exc}"))
            return
        n = len(views)
        title = Text("Networks", style="bold")
        title.append(f"  {n} on {self.host}  ({self._keys()}; r reload)", style="dim")
        self.query_one("#net-title", Static).update(title)
        self.table.show(views)
        self._show_leases()
        if self.request is not None:
            self._answer(self.request, views)
            self.request = None

    def _answer(self, request: NetRequest, views: list[NetworkView]) -> None:
        """Select the network asked for and run the action asked for (a network not there is said)."""
        table = self.table
        table.focus()
        names = [n.name for n in views]
        if request.network and request.action != "define":
            if request.network not in names:
                listed = ", ".join(names) or "none"
                self.vimapp.notify(
                    f"no network {request.network!r} on {self.host} (networks: {listed})",
                    severity="warning",
                    timeout=6,
                    markup=False,
                )
                return
            table.move_cursor(row=names.index(request.network))
        if request.action:
            given = dict(request.given)
            if request.action == "define" and request.network:
                given["name"] = request.network
            table.act_on(request.action, given)

    def _keys(self) -> str:
        """The network actions' keys as remapped, for the title line."""
        keymap = self.vimapp._keymap
        return ", ".join(f"{keymap.get(a.id, a.key)} {a.name}" for a in of_kind("network") if a.key)

    def on_data_table_row_highlighted(self, _message: DataTable.RowHighlighted) -> None:
        self._show_leases()

    def _show_leases(self) -> None:
        n = self.table.selected()
        self.query_one("#net-leases", Static).update(leases_table(n, time.time()) if n else "")
