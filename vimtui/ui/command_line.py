"""`:` commands (k9s style): a table of verbs with aliases; each returns an error text or None."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vimtui.ui.screens.main import MainScreen
    from vimtui.ui.vm_actions import ActionsMixin


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    aliases: tuple[str, ...]
    args: str
    help: str
    run: Callable[[MainScreen, list[str]], str | None]


def _vms(screen: MainScreen, args: list[str]) -> str | None:
    screen.show_all()
    screen.query_one("#vms").focus()
    return None


def _hosts(screen: MainScreen, args: list[str]) -> str | None:
    screen.query_one("#tree").focus()
    return None


def _tasks(screen: MainScreen, args: list[str]) -> str | None:
    from vimtui.ui.screens.tasks import TasksScreen

    screen.app.push_screen(TasksScreen())
    return None


def _alerts(screen: MainScreen, args: list[str]) -> str | None:
    from vimtui.ui.screens.alerts import AlertsScreen

    screen.app.push_screen(AlertsScreen())
    return None


def _host(screen: MainScreen, args: list[str]) -> str | None:
    if len(args) != 1:
        return "usage: :host NAME"
    if not screen.show_host(args[0]):
        known = ", ".join(h.name for h in screen.state.hosts) if screen.state else ""
        return f"no such host: {args[0]} (known: {known})"
    return None


def _theme(screen: MainScreen, args: list[str]) -> str | None:
    names = sorted(screen.app.available_themes)
    if len(args) != 1:
        return f"usage: :theme NAME ({', '.join(names)})"
    if args[0] not in screen.app.available_themes:
        return f"no such theme: {args[0]} (themes: {', '.join(names)})"
    screen.app.theme = args[0]
    return None


def _sort(screen: MainScreen, args: list[str]) -> str | None:
    from vimtui.ui.widgets.vm_columns import sort_columns
    from vimtui.ui.widgets.vm_table import VmTable

    if len(args) != 1:
        return f"usage: :sort COLUMN ({', '.join(sort_columns())})"
    try:
        screen.query_one(VmTable).sort_by(args[0].lower())
    except ValueError:
        return f"no such column: {args[0]} (columns: {', '.join(sort_columns())})"
    return None


def _quit(screen: MainScreen, args: list[str]) -> str | None:
    screen.app.call_later(screen.app.run_action, "quit")
    return None


def _help(screen: MainScreen, args: list[str]) -> str | None:
    screen.app.call_later(screen.app.run_action, "help")
    return None


def _filter(screen: MainScreen, args: list[str]) -> str | None:
    return None if screen._set_filter(" ".join(args)) else "bad filter"


def _cancel(screen: MainScreen, args: list[str]) -> str | None:
    if len(args) != 1 or not args[0].isdigit():
        return "usage: :cancel TASK-ID (the id is in the task log)"
    return screen.vimapp.fleet.tasks.cancel(int(args[0]))


def run_action(screen: ActionsMixin, name: str, words: list[str]) -> str | None:
    """`:start web01 web02` acts on the VMs named (HOST/NAME where a name is on several hosts);
    `:start` alone on the marked VMs or the one under the cursor, like the key. Parameters go as
    `name=value` (`:migrate web01 dest=kvm02`, a yes/no one bare: `:delete old force`), checked here as
    the form and the CLI check them; a required one left out opens the form."""
    from vimtui.core.actions import ACTIONS
    from vimtui.core.actions.operations import resolve
    from vimtui.core.actions.params import BadArgument, check_args, parse_words
    from vimtui.ui.vm_actions import state_choices, why_not

    app = screen.vimapp
    state = app.fleet.state
    if not state.hosts:
        return "no hosts yet"
    act = ACTIONS[name]
    names, given = parse_words(act.params, words)
    if names:
        vms, errors = resolve(state, names)
        if errors:
            return "; ".join(f"{n}: {why}" for n, why in errors)
    else:
        vms = screen.action_targets()
    reason = why_not(app, name, vms)
    if reason:
        return reason
    try:
        check_args(act.params, given, state_choices(act, vms[0], state), partial=True)
    except BadArgument as exc:
        return f":{name}: {exc}"
    app.run_worker(screen.run_vm_action(name, vms, given), group="vm-actions")
    return None


COMMANDS: tuple[Command, ...] = (
    Command("vms", ("vm", "v"), "", "all VMs of all hosts", _vms),
    Command("hosts", ("host-tree", "h"), "", "focus the host tree", _hosts),
    Command("host", ("node",), "NAME", "show one host's VMs", _host),
    Command("tasks", ("task", "t", "log"), "", "the task and event log, full screen", _tasks),
    Command("alerts", ("alert", "a"), "", "alerts firing, and the recent ones", _alerts),
    Command("theme", (), "NAME", "switch theme", _theme),
    Command("sort", (), "COLUMN", "sort the VM table (again: reverse)", _sort),
    Command("filter", ("f",), "TERMS", "filter the VM table (as /)", _filter),
    Command("cancel", ("abort",), "TASK-ID", "cancel a queued task, or abort a running one", _cancel),
    Command("help", ("?",), "", "keys and commands", _help),
    Command("quit", ("q", "q!", "exit"), "", "quit (asks if tasks are running)", _quit),
)


def find(word: str) -> Command | None:
    word = word.lower()
    for c in COMMANDS:
        if word == c.name or word in c.aliases:
            return c
    return None


def run_command(screen: MainScreen, text: str) -> str | None:
    words = text.strip().lstrip(":").split()
    if not words:
        return None
    command = find(words[0])
    if command is None:
        from vimtui.core.actions import ACTIONS

        if words[0].lower() in ACTIONS:
            return run_action(screen, words[0].lower(), words[1:])
        return f"unknown command: {words[0]} (try :help)"
    return command.run(screen, words[1:])
