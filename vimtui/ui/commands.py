"""Command palette provider (ctrl+p): every `:` command, every host, every theme, every screen action.

Hits name hosts and VMs: their titles and help are shown as text (Textual's matcher would read them as
markup), with the typed letters highlighted."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from vimtui.core.text import shown
from vimtui.ui.command_line import run_command

if TYPE_CHECKING:
    from vimtui.ui.vm_actions import ActionsMixin
from vimtui.ui.widgets.vm_columns import sort_columns

NOT_AVAILABLE = " — not available"


def _vm_action_commands(screen: ActionsMixin) -> list[tuple[str, str, Callable[[], object]]]:
    """Every VM action of the registry on the selection; those that do not apply are listed as such, and
    say why. Each says its `:` command and its key as remapped."""
    from vimtui.core.actions import of_kind
    from vimtui.ui.command_line import run_action
    from vimtui.ui.vm_actions import console_why_not, display_why_not, screen_why_not, why_not

    vms = screen.action_targets()
    what = vms[0].name if len(vms) == 1 else f"{len(vms)} marked VMs"
    keymap = screen.vimapp._keymap
    out: list[tuple[str, str, Callable[[], object]]] = []
    for act in of_kind("vm"):
        reason = why_not(screen.vimapp, act.name, vms)
        key = keymap.get(act.id, act.key)
        hint = f":{act.name}" + (f"  ({key})" if key else "")
        if reason:
            out.append(
                (
                    f"VM: {act.title} {what}{NOT_AVAILABLE}",
                    f"{hint}: {reason}",
                    partial(screen.vimapp.notify, reason, markup=False),
                )
            )
        else:
            out.append(
                (f"VM: {act.title} {what}", f"{hint}: {act.help}", partial(run_action, screen, act.name, []))
            )
    key = keymap.get("vm.console", "c")
    reason = console_why_not(screen.vimapp, vms)
    if reason:
        note = partial(screen.vimapp.notify, reason, markup=False)
        out.append((f"VM: Console {what}{NOT_AVAILABLE}", f"({key}): {reason}", note))
    else:
        out.append((f"VM: Console {what}", f"({key}): the serial console", screen.action_vm_console))
    key = keymap.get("vm.display", "V")
    reason = display_why_not(screen.vimapp, vms)
    if reason:
        note = partial(screen.vimapp.notify, reason, markup=False)
        out.append((f"VM: Display {what}{NOT_AVAILABLE}", f":display  ({key}): {reason}", note))
    else:
        help_text = f":display  ({key}): its VNC/SPICE display forwarded here over SSH, for a viewer"
        out.append((f"VM: Display {what}", help_text, screen.action_vm_display))
    key = keymap.get("vm.screen", "v")
    reason = screen_why_not(screen.vimapp, vms)
    if reason:
        note = partial(screen.vimapp.notify, reason, markup=False)
        out.append((f"VM: Screen {what}{NOT_AVAILABLE}", f":screen ({key}): {reason}", note))
    else:
        help_ = f":screen ({key}): its display in the terminal, keys sent to it"
        out.append((f"VM: Screen {what}", help_, screen.action_vm_screen))
    return out


def _host_action_commands(app: Any, host: str) -> list[tuple[str, str, Callable[[], object]]]:
    """Every host action on the selected host (the tree's cursor, or the host detail's); those that do not
    apply are listed as such, and say why."""
    from vimtui.core.actions import of_kind
    from vimtui.ui.host_actions import host_why_not, run_host_action

    keymap = app._keymap
    out: list[tuple[str, str, Callable[[], object]]] = []
    for act in of_kind("host"):
        key = keymap.get(act.id, act.key)
        hint = f"host {act.name} {host}" + (f"  ({key} in the host tree)" if key else "")
        reason = host_why_not(app, act.name, host)
        if reason:
            title = f"Host: {act.title} {host}{NOT_AVAILABLE}"
            out.append((title, f"{hint}: {reason}", partial(app.notify, reason, markup=False)))
        else:

            def run(name: str = act.name) -> object:
                return app.run_worker(run_host_action(app, name, host), group="host-actions")

            out.append((f"Host: {act.title} {host}", f"{hint}: {act.help}", run))
    return out


def as_text(title: str, matcher: Matcher | None = None) -> Content:
    """A hit's title as text, never markup; with a matcher, the letters it matched highlighted."""
    content = Content(shown(title))  # one character for one: the matcher's offsets still apply
    if matcher is not None:
        _score, offsets = matcher.fuzzy_search.match(matcher.query, title)
        for offset in offsets:
            if not title[offset].isspace():
                content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


def help_markup(text: str) -> str:
    """A hit's help, which Textual's palette always reads as markup: every "[" escaped, so it shows as
    written (Textual's own `escape` doubles a backslash before a bracket; this one round-trips)."""
    return shown(text).replace("[", "\\[")


class VimCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        from vimtui.ui.screens.main import MainScreen
        from vimtui.ui.vm_actions import ActionsMixin

        app = self.app
        stack = list(reversed(app.screen_stack))
        screen = next((s for s in stack if isinstance(s, MainScreen)), None)
        acting = next((s for s in stack if isinstance(s, ActionsMixin)), None)
        out: list[tuple[str, str, Callable[[], object]]] = []
        if screen is not None:

            def cmd(text: str) -> Callable[[], object]:
                return partial(run_command, screen, text)

            out += [
                ("Go: all VMs", ":vms", cmd("vms")),
                ("Go: host tree", ":hosts", cmd("hosts")),
                ("Go: task and event log", ":tasks", cmd("tasks")),
                ("Go: alerts", ":alerts", cmd("alerts")),
                ("Go: fleet lint", ":lint", cmd("lint")),
                ("Filter VMs", "/", partial(screen.action_filter)),
                ("Clear filter", "esc", partial(screen.action_clear)),
                ("Graphs: next time window", "w", partial(screen.action_graph_window)),
                ("Graphs: next metric set", "m", partial(screen.action_graph_metrics)),
                ("Details of the selection", "d / enter", partial(screen.action_details)),
            ]
            if screen.state is not None:
                out += [
                    (f"Host: {h.name}", f":host {h.name}", cmd(f"host {h.name}")) for h in screen.state.hosts
                ]
                out += [  # its pools and volumes, in the host detail
                    (f"Storage: {h.name}", f":pool {h.name}", cmd(f"pool {h.name}"))
                    for h in screen.state.hosts
                ]
        host = _selected_host(stack)
        if host is not None:
            out += _host_action_commands(app, host)
        out += _storage_commands(stack)
        if (table := _networks_table(stack)) is not None:
            from vimtui.ui.net_actions import network_commands

            out += network_commands(table.vimapp, table.host, table.selected(), table.act_on, NOT_AVAILABLE)
        if acting is not None:  # the actions of the screen in front: the detail screen's VM, or the table's
            out += _vm_action_commands(acting)
        if screen is not None:
            for column in (c for c in sort_columns() if c != "mark"):
                out.append((f"Sort by {column}", f":sort {column}", cmd(f"sort {column}")))
        out += [
            (f"Theme: {name}", f":theme {name}", partial(setattr, app, "theme", name))
            for name in sorted(app.available_themes)
        ]
        out.append(("Help: keys and commands", "?", partial(app.run_action, "help")))
        out.append(("Quit", "q", partial(app.run_action, "quit")))
        return out

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            shown_title = _greyed(as_text(title), title)
            yield DiscoveryHit(shown_title, callback, text=title, help=help_markup(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                hit = _greyed(as_text(title, matcher), title)
                yield Hit(score, hit, callback, text=title, help=help_markup(help_text))


def _selected_host(stack: list[Any]) -> str | None:
    """The host the screen in front is about: the host detail's, or the host tree's cursor."""
    from vimtui.ui.screens.host_detail import HostDetailScreen
    from vimtui.ui.screens.main import MainScreen
    from vimtui.ui.widgets.host_tree import HostTree

    for screen in stack:
        if isinstance(screen, HostDetailScreen):
            return screen.host_name
        if isinstance(screen, MainScreen):
            return screen.query_one(HostTree).host_target()
    return None


def _storage_commands(stack: list[Any]) -> list[tuple[str, str, Callable[[], object]]]:
    """The pool and volume actions of the host detail screen in front (its storage's rows)."""
    from vimtui.ui.screens.host_detail import HostDetailScreen
    from vimtui.ui.screens.main import MainScreen
    from vimtui.ui.widgets.storage_panel import StoragePanel

    for screen in stack:  # (the palette itself is on top)
        if isinstance(screen, HostDetailScreen):
            return screen.query_one(StoragePanel).commands()
        if isinstance(screen, MainScreen):
            break
    return []


def _networks_table(stack: list[Any]) -> Any:
    """The networks table of the host detail in front, if that is the screen in front."""
    from vimtui.ui.screens.host_detail import HostDetailScreen
    from vimtui.ui.widgets.host_networks import NetworkTable

    if stack and isinstance(stack[0], HostDetailScreen):
        found = stack[0].query(NetworkTable)
        return found.first() if found else None
    return None


def _greyed(content: Content, title: str) -> Content:
    """An action that does not apply is listed dim (choosing it says why)."""
    return content.stylize("dim") if title.endswith(NOT_AVAILABLE) else content
