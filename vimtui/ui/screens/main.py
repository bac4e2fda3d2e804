"""MainScreen: host tree | VM table and graphs, task log below; `/` filter and `:` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static

from vimtui.core.fleet.filter import Query, QueryError, describe, parse_query
from vimtui.core.model import FleetState, VmState
from vimtui.core.profiles import PROFILES
from vimtui.ui.format import literal
from vimtui.ui.messages import FleetUpdated
from vimtui.ui.screens.alerts import banner_text
from vimtui.ui.task_log_actions import TaskLogActions
from vimtui.ui.vm_actions import ActionsMixin
from vimtui.ui.widgets.graphs import GraphPanel
from vimtui.ui.widgets.host_tree import ALL, HostTree, Scope
from vimtui.ui.widgets.key_bar import KeyBar
from vimtui.ui.widgets.static_text import set_text
from vimtui.ui.widgets.task_log import TaskLog
from vimtui.ui.widgets.vm_table import VmTable

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

PANES = ("#tree", "#vms", "#graphs", "#tasks")


class MainScreen(TaskLogActions, ActionsMixin, Screen[None]):
    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/", id="main.filter"),
        Binding("escape", "clear", "Clear", show=False, id="main.clear"),
        Binding("tab", "next_pane", "Next pane", show=False, id="main.next_pane"),
        Binding("shift+tab", "previous_pane", "Previous pane", show=False, id="main.previous_pane"),
        Binding("w", "graph_window", "Window", id="main.graph_window"),
        Binding("m", "graph_metrics", "Metrics", id="main.graph_metrics"),
        Binding("d", "details", "Details", id="main.details"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.state: FleetState | None = None
        self.scope: Scope = ALL
        self.filter_query: Query = parse_query("")
        self._input_mode = ""  # "filter" | "command" while the bar is open

    @property
    def vimapp(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def action_targets(self) -> list[VmState]:
        """The marked VMs, else the one under the cursor (what an action applies to)."""
        if self.state is None:
            return []
        table = self.query_one(VmTable)
        marked = table.marked
        if marked:
            return [v for k in marked if (v := self.state.vms.get(k)) is not None]
        vm = table.current_vm
        return [self.state.vms.get(vm.key, vm)] if vm is not None else []

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.check_vm_action(action, parameters)

    def compose(self) -> ComposeResult:
        yield Static("", id="title")
        yield Static("", id="alert-banner")
        with Horizontal(id="body"):
            yield HostTree(id="tree")
            with Vertical(id="center"):
                yield VmTable(id="vms")
                yield GraphPanel(id="graphs")
        yield TaskLog(id="tasks")
        yield Input(id="bar", placeholder="", select_on_focus=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#bar", Input).display = False
        self.query_one(VmTable).focus()
        self.query_one(TaskLog).now = self.vimapp.clock
        self._layout_for(self.size.width, self.size.height)

    def on_resize(self) -> None:
        self._layout_for(self.size.width, self.size.height)

    def _layout_for(self, width: int, height: int) -> None:
        """Collapse panes at small sizes: everything stays usable at 80x24."""
        self.set_class(width < 110, "-narrow")
        self.set_class(width >= 160, "-wide")  # room for the host tree's capacity columns
        self.set_class(height < 32, "-short")
        self.set_class(width < 70 or height < 18, "-tiny")

    # -- data -------------------------------------------------------------------------------------

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self.state = message.state
        with self.app.batch_update():
            self.query_one(HostTree).update_state(message.state)
            self._refresh_vms()
            self._refresh_graphs()
            self.query_one(TaskLog).update(self.vimapp.fleet.activity.entries())
            self._refresh_title()
            self._refresh_alerts()
        self.refresh_bindings()

    def _refresh_alerts(self) -> None:
        """The banner (hidden while nothing fires) and the NAME cells of VMs with an alert."""
        st = self.state
        if st is None:
            return
        banner = self.query_one("#alert-banner", Static)
        alerts = st.alerts
        banner.display = bool(alerts)
        if alerts:
            set_text(banner, banner_text(alerts, self.vimapp.clock()), layout=False)  # one line (tcss)
            banner.set_class(alerts[0].severity == "critical", "-critical")
        by_key: dict[str, int] = {}
        for a in alerts:
            if a.kind == "vm":
                by_key[a.key] = max(by_key.get(a.key, 0), 2 if a.severity == "critical" else 1)
        self.query_one(VmTable).set_alerts(by_key)

    def _visible_vms(self) -> list[VmState]:
        if self.state is None:
            return []
        hosts = self.state.hosts
        inside = {h.name for h in hosts if self.scope.contains(h)}
        if len(inside) == len(hosts):
            vms = list(self.state.vms.values())
        else:
            vms = [v for v in self.state.vms.values() if v.host in inside]
        if self.filter_query:
            table = self.query_one(VmTable)
            vms = self.filter_query.filter(
                vms,
                now=self.vimapp.clock(),
                groups={h.name: h.group for h in self.state.hosts},
                marked=table.marked,
            )
        return vms

    def _refresh_vms(self) -> None:
        table = self.query_one(VmTable)
        table.update(self._visible_vms(), history=self.vimapp.fleet.vm_history, now=self.vimapp.clock())

    def _refresh_graphs(self) -> None:
        graphs = self.query_one(GraphPanel)
        if not graphs.display:
            return
        key = self.query_one(VmTable).current_key
        fleet = self.vimapp.fleet
        now, archive = self.vimapp.clock(), fleet.archive
        if key is not None:
            notes = GraphPanel.vm_notes(fleet.state.vms.get(key))
            graphs.show(key, "vm", fleet.vm_history, now=now, archive=archive, notes=notes)
        elif self.scope.kind == "host":
            graphs.show(self.scope.value, "host", fleet.host_history, now=now, archive=archive)
        else:
            graphs.show(None, "vm", fleet.vm_history, now=now, archive=archive)

    def _refresh_title(self) -> None:
        st = self.state
        if st is None:
            return
        up = sum(h.status.healthy for h in st.hosts)
        running = st.running
        shown = self.query_one(VmTable).visible_count
        parts = [
            f"vimtui  {self.scope.label}" + (f"  ·  tenant {st.tenant}" if st.tenant else ""),
            f"hosts {up}/{len(st.hosts)} up",
            f"vms {running}/{len(st.vms)} running",
            f"showing {shown}",
        ]
        if self.filter_query:
            parts.append(f"filter: {describe(self.filter_query)}")
        profiles = sorted({h.profile for h in st.hosts}, key=PROFILES.index)
        if profiles and profiles != ["admin"]:  # what may not be done here: the keys that are not shown
            parts.append(f"profile {' / '.join(profiles)}")
        marked = len(self.query_one(VmTable).marked)
        if marked:
            parts.append(f"marked {marked}")
        title = literal("  ·  ".join(parts))  # names hosts and groups, and the filter as typed
        title.stylize("bold", 0, len("vimtui"))
        set_text(self.query_one("#title", Static), title, layout=False)  # one line high (tcss)

    @on(HostTree.ScopeChanged)
    def _scope_changed(self, event: HostTree.ScopeChanged) -> None:
        self.scope = event.scope
        self._refresh_vms()
        self._refresh_graphs()
        self._refresh_title()

    @on(VmTable.Highlighted)
    def _vm_highlighted(self) -> None:
        self._refresh_graphs()
        self.refresh_bindings()

    @on(VmTable.MarksChanged)
    def _marks_changed(self) -> None:
        self._refresh_title()
        self.refresh_bindings()

    @on(VmTable.Selected)
    def _vm_selected(self, event: VmTable.Selected) -> None:
        self._open_vm(event.key)

    def _open_vm(self, key: str | None) -> None:
        if key is None or self.state is None or key not in self.state.vms:
            return
        from vimtui.ui.screens.vm_detail import VmDetailScreen

        self.app.push_screen(VmDetailScreen(key))

    def _open_host(self, name: str) -> None:
        from vimtui.ui.screens.host_detail import HostDetailScreen

        self.app.push_screen(HostDetailScreen(name))

    # -- keys -------------------------------------------------------------------------------------

    def action_details(self) -> None:
        focused = self.focused
        if isinstance(focused, HostTree) and focused.scope.kind == "host":
            self._open_host(focused.scope.value)
        else:
            self._open_vm(self.query_one(VmTable).current_key)

    def action_filter(self) -> None:
        self._open_bar("filter", self.filter_query.text)

    def action_command_line(self) -> None:
        self._open_bar("command", "")

    def _open_bar(self, mode: str, value: str) -> None:
        bar = self.query_one("#bar", Input)
        self._input_mode = mode
        bar.placeholder = (
            "filter: text, field:value (host: state: tag: name: ip:), cpu>50, !negate"
            if mode == "filter"
            else "command: vms, hosts, tasks, host NAME, theme NAME, sort COLUMN, quit"
        )
        bar.value = value
        bar.cursor_position = len(value)
        bar.remove_class("-error")
        bar.display = True
        bar.focus()

    def _close_bar(self) -> None:
        bar = self.query_one("#bar", Input)
        bar.display = False
        self._input_mode = ""
        self.query_one(VmTable).focus()

    def action_clear(self) -> None:
        if self._input_mode:
            if self._input_mode == "filter":
                self._set_filter("")
            self._close_bar()
        elif self.filter_query:
            self._set_filter("")

    def _set_filter(self, text: str) -> bool:
        try:
            self.filter_query = parse_query(text)
        except QueryError as exc:
            bar = self.query_one("#bar", Input)
            bar.add_class("-error")
            bar.tooltip = literal(str(exc))  # it quotes what was typed
            self.notify(str(exc), severity="error", timeout=3)
            return False
        self.query_one("#bar", Input).remove_class("-error")
        self._refresh_vms()
        self._refresh_title()
        return True

    @on(Input.Changed, "#bar")
    def _bar_changed(self, event: Input.Changed) -> None:
        if self._input_mode == "filter":
            try:
                self.filter_query = parse_query(event.value)
            except QueryError:
                event.input.add_class("-error")  # keep the last good filter while typing
                return
            event.input.remove_class("-error")
            self._refresh_vms()
            self._refresh_title()

    @on(Input.Submitted, "#bar")
    def _bar_submitted(self, event: Input.Submitted) -> None:
        if self._input_mode == "filter":
            if self._set_filter(event.value):
                self._close_bar()
        elif self._input_mode == "command":
            from vimtui.ui.command_line import run_command

            error = run_command(self, event.value)
            if error:
                event.input.add_class("-error")
                self.notify(error, severity="error", timeout=4, markup=False)  # it quotes what was typed
            else:
                self._close_bar()

    def action_next_pane(self) -> None:
        self._cycle_pane(1)

    def action_previous_pane(self) -> None:
        self._cycle_pane(-1)

    def _cycle_pane(self, step: int) -> None:
        panes = [self.query_one(sel) for sel in PANES]
        panes = [p for p in panes if p.display and p.can_focus]
        if not panes:
            return
        focused = self.focused
        index = panes.index(focused) if focused in panes else -1
        panes[(index + step) % len(panes)].focus()

    def action_graph_window(self) -> None:
        self.query_one(GraphPanel).cycle_window()
        self._refresh_graphs()

    def action_graph_metrics(self) -> None:
        self.query_one(GraphPanel).cycle_metrics()
        self._refresh_graphs()

    # -- used by commands -------------------------------------------------------------------------

    def show_host(self, name: str) -> bool:
        return self.query_one(HostTree).select_scope(Scope("host", name))

    def show_all(self) -> None:
        self.query_one(HostTree).select_scope(ALL)
        self.scope = ALL
        self._refresh_vms()
        self._refresh_title()
