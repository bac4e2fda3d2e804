"""VM detail: overview, disks and NICs with their rates, resources (live and config), snapshots, graphs,
and the domain XML."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.syntax import Syntax
from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static, TabbedContent, TabPane

from vimtui.core.actions import resource_view
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.fleet.tasks import Task
from vimtui.core.model import VmState
from vimtui.core.poll import host_queries as queries
from vimtui.core.text import shown
from vimtui.ui.format import duration, head_line, literal, pct, rate, size, text_row
from vimtui.ui.messages import FleetUpdated
from vimtui.ui.screens.vm_resources import resources_table
from vimtui.ui.vm_actions import ActionsMixin
from vimtui.ui.widgets.graphs import GraphPanel
from vimtui.ui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp


def kv_table(rows: list[tuple[str, str]]) -> Table:
    """Label and value: values hold names, paths and messages from the host, shown as text."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    for k, v in rows:
        t.add_row(literal(k), literal(v, keep="\n"))
    return t


def overview_rows(vm: VmState, now: float) -> list[tuple[str, str]]:
    d, r = vm.details, vm.rates
    mem = f"{size((vm.memory_kib or 0) * 1024)} allocated"
    if r is not None and r.mem_used_kib is not None:
        mem += f", {size(r.mem_used_kib * 1024)} used ({pct(r.mem_pct)})"
    elif vm.state == "running":
        mem += ", used unknown (the guest reports no balloon stats)"
    rows = [
        ("Name", vm.name + (f"  ({d.title})" if d and d.title else "")),
        ("UUID", vm.uuid),
        ("Host", vm.host),
        ("State", vm.state + ("  (stale: its host is not answering)" if vm.stale else "")),
        ("vCPUs", f"{vm.vcpu_count or '-'}" + (f"  CPU {pct(r.cpu_pct)} of its vCPUs" if r else "")),
        ("Memory", mem),
        ("CPU model", (d.cpu_model or "-") if d else "-"),
        (
            "Machine",
            f"{d.arch or '-'} {d.machine or ''} {('firmware ' + d.firmware) if d.firmware else ''}"
            if d
            else "-",
        ),
        ("Uptime", _uptime(vm, now)),
        ("Autostart", ("yes" if d.autostart else "no") if d else "-"),
        ("Persistent", ("yes" if d.persistent else "no (transient)") if d else "-"),
        ("Addresses", ", ".join(vm.ips) + (f"  (from {vm.ip_source})" if vm.ip_source else "") or "-"),
        ("Tags", ", ".join(d.tags) if d and d.tags else "-"),
        ("Tenant", (d.tenant or "-") if d else "-"),
    ]
    if d and d.description:
        rows.append(("Description", d.description))
    return rows


def devices_table(vm: VmState) -> Table:
    t = Table(expand=True, box=None, header_style="bold")
    for col in ("device", "kind", "source", "format", "read", "write"):
        t.add_column(col)
    d, r = vm.details, vm.rates
    for disk in d.disks if d else ():
        dr = r.disk(disk.target) if r else None
        t.add_row(
            *text_row(
                disk.target,
                disk.device,
                disk.source or "-",
                disk.driver_type or "-",
                rate(dr.rd_bps) if dr else "-",
                rate(dr.wr_bps) if dr else "-",
            )
        )
    t.add_section()
    for nic in d.nics if d else ():
        nr = r.nic(nic.target) if r and nic.target else None
        t.add_row(
            *text_row(
                nic.target or "-",
                f"nic {nic.model or ''}".strip(),
                f"{nic.source or '-'}  {nic.mac or ''}",
                "",
                f"rx {rate(nr.rx_bps)}" if nr else "-",
                f"tx {rate(nr.tx_bps)}" if nr else "-",
            )
        )
    return t


class VmDetailScreen(ActionsMixin, Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="vm_detail.back"),
        Binding("w", "graph_window", "Window", id="vm_detail.graph_window"),
        Binding("r", "reload", "Reload", id="vm_detail.reload"),
    ]
    DEFAULT_CSS = """
    VmDetailScreen #head { height: 1; padding: 0 1; background: $panel; }
    VmDetailScreen #tabs { height: 1fr; }
    VmDetailScreen TabPane { padding: 0 1; }
    VmDetailScreen #graphs { height: 1fr; }
    """

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def vm(self) -> VmState | None:
        return self.vimapp.fleet.state.vms.get(self.key)

    def action_targets(self) -> list[VmState]:
        vm = self.vm()
        return [vm] if vm is not None else []

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.check_vm_action(action, parameters)

    def compose(self) -> ComposeResult:
        yield Static("", id="head")
        with TabbedContent(id="tabs"):
            with TabPane("Overview", id="overview"):
                yield VerticalScroll(Static(id="overview-body"))
            with TabPane("Devices", id="devices"):
                yield VerticalScroll(Static(id="devices-body"))
            with TabPane("Resources", id="resources"):
                yield VerticalScroll(Static("loading ...", id="resources-body"))
            with TabPane("Snapshots", id="snapshots"):
                yield VerticalScroll(Static("loading ...", id="snapshots-body"))
            with TabPane("Graphs", id="graphs-tab"):
                yield GraphPanel(id="graphs")
            with TabPane("XML", id="xml"):
                yield VerticalScroll(Static("loading ...", id="xml-body"))
        yield KeyBar()

    def on_mount(self) -> None:
        self._refresh()
        self.action_reload()

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self._refresh()
        self.refresh_bindings()

    def _refresh(self) -> None:
        vm = self.vm()
        if vm is None:
            self.query_one("#head", Static).update(
                literal(f"{self.key}: gone (undefined or its host was removed)")
            )
            return
        now = self.vimapp.clock()
        self.query_one("#head", Static).update(head_line(vm.name, f" on {vm.host}  ·  {vm.state}"))
        self.query_one("#overview-body", Static).update(kv_table(overview_rows(vm, now)))
        self.query_one("#devices-body", Static).update(devices_table(vm))
        fleet = self.vimapp.fleet
        self.query_one(GraphPanel).show(
            vm.key, "vm", fleet.vm_history, now=now, archive=fleet.archive, notes=GraphPanel.vm_notes(vm)
        )

    def action_graph_window(self) -> None:
        self.query_one(GraphPanel).cycle_window()
        self._refresh()

    def action_reload(self) -> None:
        self._load_xml_and_snapshots()
        self._load_resources()

    async def run_vm_action(
        self, name: str, vms: list[VmState], given: Mapping[str, Any] | None = None
    ) -> list[Task]:
        """As everywhere, then the tabs read again once the tasks end (a resize shows its new size)."""
        tasks = await super().run_vm_action(name, vms, given)
        if tasks:
            await self.vimapp.fleet.tasks.wait(tasks)
            self.action_reload()
        return tasks

    @work(exclusive=True, group="vm-resources", exit_on_error=False, description="resources live and config")
    async def _load_resources(self) -> None:
        vm = self.vm()
        if vm is None:
            return
        body = self.query_one("#resources-body", Static)
        try:
            res = await self.vimapp.fleet.ask(vm.host, resource_view.read, vm.uuid)
        except QueryFailed as exc:
            body.update(literal(f"cannot read the resources: {exc}"))
            return
        body.update(resources_table(res))

    @work(exclusive=True, group="vm-detail", exit_on_error=False, description="domain XML and snapshots")
    async def _load_xml_and_snapshots(self) -> None:
        vm = self.vm()
        if vm is None:
            return
        xml_body = self.query_one("#xml-body", Static)
        snap_body = self.query_one("#snapshots-body", Static)
        try:
            xml = await self.vimapp.fleet.ask(vm.host, queries.domain_xml, vm.uuid)
            snaps = await self.vimapp.fleet.ask(vm.host, queries.snapshots, vm.uuid)
        except QueryFailed as exc:
            xml_body.update(literal(f"cannot read the domain XML: {exc}"))
            snap_body.update(literal(f"cannot list snapshots: {exc}"))
            return
        theme = "ansi_light" if not self.app.current_theme.dark else "ansi_dark"
        xml = shown(xml, keep="\n\t")
        xml_body.update(Syntax(xml, "xml", theme=theme, line_numbers=True, word_wrap=False))
        if not snaps:
            snap_body.update("no snapshots")
            return
        t = Table(expand=True, box=None, header_style="bold")
        for col in ("snapshot", "state", "kind", "created", "description"):
            t.add_column(col)
        depth: dict[str, int] = {}
        for s in snaps:
            level = depth.get(s.parent, -1) + 1 if s.parent else 0
            depth[s.name] = level
            name = "  " * level + ("└ " if level else "") + s.name + ("  ◀ current" if s.current else "")
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created)) if s.created else "-"
            kind = "external" if s.external else "internal"
            t.add_row(*text_row(name, s.state, kind, created, s.description))
        snap_body.update(t)


def _uptime(vm: VmState, now: float) -> str:
    """Since its start when vimtui saw it; else at least since vimtui first saw it running (libvirt does
    not say when a domain started)."""
    if vm.state != "running":
        return "-"
    if vm.state_since:
        return duration(now - vm.state_since)
    return "> " + duration(now - vm.first_seen) if vm.first_seen else "-"
