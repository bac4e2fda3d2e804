"""Host detail: capacity and overcommit, versions, storage pools with usage, networks, its VMs; and, for a
host whose SSH key is not known yet, the key to trust it (its fingerprint shown, an explicit yes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from vimtui.core.actions.hosts import since
from vimtui.core.fleet.capacity import host_capacity, kib, ratio
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.fleet.pool_watch import forecast_text
from vimtui.core.model import FleetState, HostState, HostStatus
from vimtui.core.poll.host_keys import UNKNOWN, HostKeyCheck, HostKeyError
from vimtui.core.units import format_bytes
from vimtui.ui.format import head_line, pct, size, text_row
from vimtui.ui.host_actions import HostActionsMixin
from vimtui.ui.messages import FleetUpdated
from vimtui.ui.screens.confirm import ConfirmScreen
from vimtui.ui.screens.vm_detail import kv_table
from vimtui.ui.task_log_actions import TaskLogActions
from vimtui.ui.widgets.host_networks import NetRequest, NetworksPart
from vimtui.ui.widgets.key_bar import KeyBar
from vimtui.ui.widgets.storage_panel import StoragePanel
from vimtui.ui.widgets.task_log import TaskLog

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp


PROFILE_TEXT = {
    "viewer": "viewer: look only (libvirt's read-only socket)",
    "operator": "operator: lifecycle, console, snapshots, migrate",
    "admin": "admin: everything",
}


def capacity_rows(host: HostState, state: FleetState) -> list[tuple[str, str]]:
    info, rates = host.info, host.rates
    c = host_capacity(host)
    cpus = c.pcpus or 0
    mem_total = c.mem_total_kib or 0
    used = size(rates.mem_used_kib * 1024) if rates and rates.mem_used_kib is not None else "?"
    vcpus, mem_alloc = c.vcpus_running, c.mem_running_kib
    rows = [
        ("Status", f"{host.status}" + (f": {host.message}" if host.message else "")),
        ("Maintenance", f"since {since(host)}: left out of placement" if host.maintenance else "no"),
        ("Address", f"{host.address or '-'}  ({host.transport}{', read-only' if host.read_only else ''})"),
        ("Profile", PROFILE_TEXT[host.profile]),
        ("URI", host.uri),
        ("Hostname", info.hostname if info else "-"),
        ("Hypervisor", f"{info.hypervisor} {info.hypervisor_version}" if info else "-"),
        ("libvirt", info.libvirt_version if info else "-"),
        ("CPUs", f"{cpus} x {info.cpu_model} @ {info.cpu_mhz} MHz" if info else "-"),
        (
            "CPU in use",
            pct(rates.cpu_pct if rates else None)
            + ("" if c.cpu_used is None else f" ({c.cpu_used:.1f} CPUs)"),
        ),
        (
            "Memory",
            f"{size(mem_total * 1024)} physical, {used} used ({pct(rates.mem_pct if rates else None)}), "
            f"{kib(c.mem_free_kib)} free",
        ),
        ("VMs", f"{c.running} running or paused of {c.vms}"),
        ("vCPU allocation", f"{vcpus} vCPUs on {cpus} CPUs: overcommit {vcpus / cpus:.2f}x" if cpus else "-"),
        (
            "Memory allocation",
            f"{size(mem_alloc * 1024)} to running VMs: {mem_alloc / mem_total:.2f}x of physical"
            if mem_total
            else "-",
        ),
        (
            "All defined VMs",
            f"{c.vcpus_defined} vCPUs ({ratio(c.vcpu_ratio_defined)}x), {kib(c.mem_defined_kib)} "
            f"({ratio(c.mem_ratio_defined)}x of physical)",
        ),
        (
            "Unallocated",
            f"{'-' if c.vcpus_free is None else c.vcpus_free} CPUs, {kib(c.mem_unallocated_kib)}",
        ),
    ]
    for p in host.pools or ():
        fill = p.fill_pct
        what = (
            "inactive" if not p.active else f"{pct(fill, digits=0)} of {format_bytes(p.capacity)} allocated"
        )
        rows.append(
            (f"Pool {p.name}", f"{what}, {format_bytes(p.available)} free; {forecast_text(host.name, p)}")
        )
    if host.local is not None:
        m = host.local
        rows.append(
            ("This machine", f"load {m.load1:.2f} {m.load5:.2f} {m.load15:.2f}, swap {m.swap_pct:.0f}%")
        )
    return rows


def trust_question(check: HostKeyCheck) -> str:
    return (
        f"Trust the SSH host key of {check.spec.name} ({check.where})?\n\n"
        f"  {check.offered.get_algorithm()}\n  {check.fingerprint}\n\n"
        "It is not in known_hosts. Compare the fingerprint with the host's own before you answer (on "
        "its console: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub).\n\n"
        f"Trust adds it to {check.trust_file}."
    )


class HostDetailScreen(TaskLogActions, HostActionsMixin, Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="host_detail.back"),
        Binding("r", "reload", "Reload", id="host_detail.reload"),
        Binding("t", "trust_key", "Trust host key", id="host_detail.trust_key"),
    ]
    DEFAULT_CSS = """
    HostDetailScreen #head { height: 1; padding: 0 1; background: $panel; }
    HostDetailScreen VerticalScroll { padding: 0 1; }
    HostDetailScreen .section { margin-top: 1; }
    HostDetailScreen #host-tasks { height: 6; border-top: hkey $panel; }
    """

    def __init__(self, name: str, networks: NetRequest | None = None) -> None:
        super().__init__()
        self.host_name = name
        self.networks = networks
        """A network to select, and an action to run on it, once the networks are read (`:net`)."""
        self._was_up = True
        """Whether the host was up at the last update (it is reloaded when it comes up)."""

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def host_target(self) -> str | None:
        return self.host_name

    def compose(self) -> ComposeResult:
        yield Static("", id="head")
        with VerticalScroll():
            yield Static(id="capacity")
            yield StoragePanel(self.host_name, id="storage")
            yield NetworksPart(self.host_name, self.networks, id="networks", classes="section")
            yield Static(id="vms", classes="section")
        yield TaskLog(id="host-tasks")  # this host's tasks: an upload's progress, x to cancel it
        yield KeyBar()

    def on_mount(self) -> None:
        self._refresh()
        self.query_one(TaskLog).now = self.vimapp.clock
        self._refresh_tasks()
        self.action_reload()

    def _refresh_tasks(self) -> None:
        name = self.host_name
        self.query_one(TaskLog).update([e for e in self.vimapp.fleet.activity.entries() if e.host == name])

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self._refresh()
        self._refresh_tasks()
        self.refresh_bindings()
        host = self.vimapp.fleet.state.host(self.host_name)
        up = host is not None and host.status == HostStatus.UP
        if up and not self._was_up:  # connected now (a key just trusted): what it could not say before
            self.action_reload()
        self._was_up = up

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "trust_key":  # offered only while the host is refused for a key not known yet
            host = self.vimapp.fleet.state.host(self.host_name)
            return host is not None and host.status == HostStatus.HOSTKEY_MISMATCH and UNKNOWN in host.message
        return super().check_action(action, parameters)

    def action_trust_key(self) -> None:
        self._trust_key()

    @work(exclusive=True, group="host-trust", exit_on_error=False, description="trust host key")
    async def _trust_key(self) -> None:
        """Read the key the host offers now and ask about that key: an unknown one is shown with its
        fingerprint and added only on an explicit yes; a changed or revoked one is refused, not offered."""
        fleet = self.vimapp.fleet
        try:
            check = await fleet.host_key(self.host_name)
        except (HostKeyError, QueryFailed) as exc:
            self.notify(str(exc), title="Host key", severity="error", timeout=10, markup=False)
            return
        if check.verdict == "unknown":  # (a changed or revoked key is not asked about: refused below)
            question = trust_question(check)
            if not await self.app.push_screen_wait(ConfirmScreen(question, "Trust", danger=True)):
                self.notify("not trusted: nothing written", title="Host key", timeout=4)
                return
        try:
            entry = await fleet.trust_host_key(check)
        except (HostKeyError, OSError) as exc:
            self.notify(str(exc), title="Refused", severity="error", timeout=20, markup=False)
            return
        self.notify(f"{check.key} trusted ({entry.where}): connecting", title="Host key", markup=False)

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
        self.query_one(StoragePanel).reload()
        self.query_one(NetworksPart).reload()
