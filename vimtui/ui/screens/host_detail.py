"""Host detail: capacity and overcommit, versions, storage pools with usage, networks, its VMs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.model import FleetState, HostState
from vimtui.core.poll import host_queries as queries
from vimtui.ui.format import head_line, literal, pct, size, text_row
from vimtui.ui.messages import FleetUpdated
from vimtui.ui.screens.vm_detail import kv_table
from vimtui.ui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp


def capacity_rows(host: HostState, state: FleetState) -> list[tuple[str, str]]:
    info, node, rates = host.info, host.node, host.rates
    vms = state.vms_on(host.name)
    running = [v for v in vms if v.state == "running"]
    vcpus = sum(v.vcpu_count or 0 for v in running)
    mem_alloc = sum(v.memory_kib or 0 for v in running)
    cpus = info.cpus if info else 0
    used = size(rates.mem_used_kib * 1024) if rates and rates.mem_used_kib is not None else "?"
    mem_total = (node.mem_total_kib if node and node.mem_total_kib else None) or (
        info.memory_kib if info else 0
    )
    rows = [
        ("Status", f"{host.status}" + (f": {host.message}" if host.message else "")),
        ("Address", f"{host.address or '-'}  ({host.transport}{', read-only' if host.read_only else ''})"),
        ("URI", host.uri),
        ("Hostname", info.hostname if info else "-"),
        ("Hypervisor", f"{info.hypervisor} {info.hypervisor_version}" if info else "-"),
        ("libvirt", info.libvirt_version if info else "-"),
        ("CPUs", f"{cpus} x {info.cpu_model} @ {info.cpu_mhz} MHz" if info else "-"),
        ("CPU in use", pct(rates.cpu_pct if rates else None)),
        (
            "Memory",
            f"{size(mem_total * 1024)} physical, {used} used ({pct(rates.mem_pct if rates else None)})",
        ),
        ("VMs", f"{len(running)} running of {len(vms)}"),
        ("vCPU allocation", f"{vcpus} vCPUs on {cpus} CPUs: overcommit {vcpus / cpus:.2f}x" if cpus else "-"),
        (
            "Memory allocation",
            f"{size(mem_alloc * 1024)} to running VMs: {mem_alloc / mem_total:.2f}x of physical"
            if mem_total
            else "-",
        ),
    ]
    if host.local is not None:
        m = host.local
        rows.append(
            ("This machine", f"load {m.load1:.2f} {m.load5:.2f} {m.load15:.2f}, swap {m.swap_pct:.0f}%")
        )
    return rows


class HostDetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="host_detail.back"),
        Binding("r", "reload", "Reload", id="host_detail.reload"),
    ]
    DEFAULT_CSS = """
    HostDetailScreen #head { height: 1; padding: 0 1; background: $panel; }
    HostDetailScreen VerticalScroll { padding: 0 1; }
    HostDetailScreen .section { margin-top: 1; }
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.host_name = name

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("", id="head")
        with VerticalScroll():
            yield Static(id="capacity")
            yield Static("storage pools: loading ...", id="pools", classes="section")
            yield Static("networks: loading ...", id="networks", classes="section")
            yield Static(id="vms", classes="section")
        yield KeyBar()

    def on_mount(self) -> None:
        self._refresh()
        self.action_reload()

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self._refresh()

    def _refresh(self) -> None:
        state = self.vimapp.fleet.state
        host = state.host(self.host_name)
        if host is None:
            return
        head = head_line(host.name, f"  ·  {host.group or '-'}  ·  {host.status}")
        self.query_one("#head", Static).update(head)
        self.query_one("#capacity", Static).update(kv_table(capacity_rows(host, state)))
        t = Table(title="VMs", title_justify="left", expand=True, box=None, header_style="bold")
        for col in ("name", "state", "vcpus", "memory", "cpu"):
            t.add_column(col)
        for v in state.vms_on(host.name):
            t.add_row(
                *text_row(
                    v.name,
                    v.state,
                    str(v.vcpu_count or "-"),
                    size((v.memory_kib or 0) * 1024),
                    pct(v.rates.cpu_pct if v.rates else None),
                )
            )
        self.query_one("#vms", Static).update(t)

    def action_reload(self) -> None:
        self._load_inventory()

    @work(exclusive=True, group="host-detail", exit_on_error=False, description="pools and networks")
    async def _load_inventory(self) -> None:
        try:
            inv = await self.vimapp.fleet.ask(self.host_name, queries.host_inventory)
        except QueryFailed as exc:
            self.query_one("#pools", Static).update(literal(f"storage pools: {exc}"))
            self.query_one("#networks", Static).update(literal(f"networks: {exc}"))
            return
        pools = Table(title="Storage pools", title_justify="left", expand=True, box=None, header_style="bold")
        for col in ("pool", "type", "state", "capacity", "allocated", "available", "used", "path"):
            pools.add_column(col)
        for p in inv.pools:
            used = 100.0 * p.allocation / p.capacity if p.capacity else None
            pools.add_row(
                *text_row(
                    p.name,
                    p.type,
                    "active" if p.active else "inactive",
                    size(p.capacity),
                    size(p.allocation),
                    size(p.available),
                    pct(used),
                    p.path or "-",
                )
            )
        nets = Table(title="Networks", title_justify="left", expand=True, box=None, header_style="bold")
        for col in ("network", "state", "forward", "bridge", "address", "dhcp"):
            nets.add_column(col)
        for n in inv.networks:
            nets.add_row(
                *text_row(
                    n.name,
                    "active" if n.active else "inactive",
                    n.forward,
                    n.bridge or "-",
                    n.address or "-",
                    "yes" if n.dhcp else "no",
                )
            )
        self.query_one("#pools", Static).update(pools)
        self.query_one("#networks", Static).update(nets)
