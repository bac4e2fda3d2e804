"""Wall mode (`vimtui --wall`): a read-only NOC display. Large counters and host graphs per group, an alerts
banner (the alert rules firing, then hosts down and VMs crashed or stopped by an I/O error), and the groups
in turn every `wall_cycle` seconds. No action keys. Names and messages are shown as text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Digits, Label, Static

from vimtui.core.model import FleetState, HostState
from vimtui.ui.format import literal
from vimtui.ui.messages import FleetUpdated
from vimtui.ui.widgets.graphs import GraphPanel
from vimtui.ui.widgets.static_text import set_text

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

HOSTS_PER_PAGE = 4


def pages(state: FleetState) -> list[tuple[str, list[HostState]]]:
    """(group, hosts) pages: one per group (its top level), split when a group has many hosts."""
    groups: dict[str, list[HostState]] = {}
    for h in state.hosts:
        groups.setdefault(h.group.split("/")[0] if h.group else "ungrouped", []).append(h)
    out = []
    for group, hosts in groups.items():
        chunks = [hosts[i : i + HOSTS_PER_PAGE] for i in range(0, len(hosts), HOSTS_PER_PAGE)]
        for n, chunk in enumerate(chunks):
            out.append((group if len(chunks) == 1 else f"{group} ({n + 1}/{len(chunks)})", chunk))
    return out


def alerts(state: FleetState) -> list[str]:
    """What needs a human now: the alert rules firing (most severe first, as the fleet state has them),
    then what needs no rule: hosts not answering (unless a rule's alert is about them already), VMs
    crashed or paused by an I/O error."""
    out = [f"{a.severity}: {a.message or a.subject}" for a in state.alerts]
    said = {a.host for a in state.alerts if a.kind == "host"}  # a rule already speaks for the host
    down = [h for h in state.hosts if not h.status.healthy and h.name not in said]
    out += [f"host {h.name} {h.status}: {h.message}".rstrip(": ") for h in down]
    out += [f"vm {v.name} on {v.host} {v.state}" for v in state.vms.values() if v.state in ("crashed",)]
    out += [
        f"vm {v.name} on {v.host} paused (I/O error)"
        for v in state.vms.values()
        if v.state == "paused" and v.reason == 5
    ]  # VIR_DOMAIN_PAUSED_IOERROR
    return out


def banner_text(found: list[str]) -> Text:
    """The banner: each alert as text (a host's message is the host's to say, never markup)."""
    return literal("  ⚠  " + "   ·   ".join(found)) if found else Text("all clear")


class Counter(Vertical):
    DEFAULT_CSS = """
    Counter { width: 1fr; height: auto; padding: 0 1; }
    Counter Label { color: $text-muted; }
    Counter Digits { color: $primary; }
    """

    def __init__(self, label: str, *, id: str) -> None:
        super().__init__(id=id)
        self.label = label

    def compose(self) -> ComposeResult:
        yield Label(self.label)
        yield Digits("-")

    def set(self, value: str) -> None:
        self.query_one(Digits).update(value)


class WallScreen(Screen[None]):
    BINDINGS = [
        Binding("q", "app.quit", "Quit", id="wall.quit"),
        Binding("right,l", "page(1)", "Next group", id="wall.next"),
        Binding("left,h", "page(-1)", "Previous group", id="wall.previous"),
    ]
    DEFAULT_CSS = """
    WallScreen { layout: vertical; }
    WallScreen #banner { height: auto; padding: 0 1; background: $success 30%; color: $foreground; }
    WallScreen #banner.-alert { background: $error; color: $text; text-style: bold; }
    WallScreen #group { height: 1; padding: 0 1; text-style: bold; background: $panel; }
    WallScreen #counters { height: auto; }
    WallScreen #hosts { grid-size: 2; grid-gutter: 1; height: 1fr; }
    WallScreen .host { border: round $panel; border-title-color: $foreground; }
    WallScreen .host.-down { border: round $error; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.page = 0
        self.state: FleetState | None = None

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("", id="banner")
        yield Static("", id="group")
        with Horizontal(id="counters"):
            yield Counter("hosts up", id="c-hosts")
            yield Counter("VMs running", id="c-vms")
            yield Counter("CPU %", id="c-cpu")
            yield Counter("memory %", id="c-mem")
        yield Grid(id="hosts")

    def on_mount(self) -> None:
        self.set_interval(
            self.vimapp.config.defaults.wall_cycle, lambda: self.action_page(1), name="wall-cycle"
        )

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self.state = message.state
        self._render_page(rebuild=False)

    def action_page(self, step: int) -> None:
        if self.state is None:
            return
        n = len(pages(self.state)) or 1
        self.page = (self.page + step) % n
        self._render_page(rebuild=True)

    def _render_page(self, rebuild: bool) -> None:
        state = self.state
        if state is None:
            return
        found = alerts(state)
        banner = self.query_one("#banner", Static)
        banner.set_class(bool(found), "-alert")
        set_text(banner, banner_text(found), layout=True)  # its height follows its text
        all_pages = pages(state)
        if not all_pages:
            return
        self.page %= len(all_pages)
        group, hosts = all_pages[self.page]
        head = literal(group)
        head.append(f"    page {self.page + 1}/{len(all_pages)}", "dim")
        set_text(self.query_one("#group", Static), head, layout=False)  # one line high (DEFAULT_CSS)
        names = {h.name for h in hosts}
        vms = [v for v in state.vms.values() if v.host in names]
        up = sum(h.status.healthy for h in hosts)
        cpu = [h.rates.cpu_pct for h in hosts if h.rates and h.rates.cpu_pct is not None]
        mem = [h.rates.mem_pct for h in hosts if h.rates and h.rates.mem_pct is not None]
        self.query_one("#c-hosts", Counter).set(f"{up}/{len(hosts)}")
        self.query_one("#c-vms", Counter).set(f"{sum(v.state == 'running' for v in vms)}/{len(vms)}")
        self.query_one("#c-cpu", Counter).set(f"{sum(cpu) / len(cpu):.0f}" if cpu else "-")
        self.query_one("#c-mem", Counter).set(f"{sum(mem) / len(mem):.0f}" if mem else "-")
        grid = self.query_one("#hosts", Grid)
        panels = list(grid.query(GraphPanel))
        if rebuild or [p.name for p in panels] != [h.name for h in hosts]:
            grid.remove_children()
            panels = [GraphPanel(name=h.name, classes="host") for h in hosts]
            grid.mount_all(panels)
        now = self.vimapp.clock()
        for panel, host in zip(panels, hosts, strict=True):
            panel.border_title = literal(f"{host.name}  {host.status}")
            panel.set_class(not host.status.healthy, "-down")
            panel.show(host.name, "host", self.vimapp.fleet.host_history, now=now)
