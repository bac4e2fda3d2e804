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


def _lint(screen: MainScreen, args: list[str]) -> str | None:
    from vimtui.ui.screens.lint import LintScreen

    screen.app.push_screen(LintScreen())
    return None


def _tenants(screen: MainScreen, args: list[str]) -> str | None:
    from vimtui.ui.screens.tenants import TenantsScreen

    screen.app.push_screen(TenantsScreen())
    return None


def _audit(screen: MainScreen, args: list[str]) -> str | None:
    from vimtui.core.fleet.audit_read import parse_words
    from vimtui.ui.screens.audit import AuditScreen

    try:
        query = parse_words(args, screen.vimapp.clock())
    except ValueError as exc:
        return f":audit: {exc}"
    screen.app.push_screen(AuditScreen(query))
    return None


def _screen(screen: MainScreen, args: list[str]) -> str | None:
    from vimtui.core.actions.operations import resolve
    from vimtui.ui.screens.guest_screen import GuestScreen
    from vimtui.ui.vm_actions import screen_why_not

    if len(args) > 1:
        return "usage: :screen [NAME]"
    vms, errors = resolve(screen.vimapp.fleet.state, args) if args else (screen.action_targets(), [])
    if errors:
        return "; ".join(f"{n}: {why}" for n, why in errors)
    reason = screen_why_not(screen.vimapp, vms)
    if reason:
        return reason
    screen.app.push_screen(GuestScreen(vms[0]))
    return None


def _host(screen: MainScreen, args: list[str]) -> str | None:
    if len(args) != 1:
        return "usage: :host NAME"
    if not screen.show_host(args[0]):
        known = ", ".join(h.name for h in screen.state.hosts) if screen.state else ""
        return f"no such host: {args[0]} (known: {known})"
    return None


def _net(screen: MainScreen, args: list[str]) -> str | None:
    """`:net [HOST[/NET]]` shows a host's networks and leases; `:net VERB HOST/NET [name=value ...]` acts
    on one there (a define's form, a delete's confirmation), as the keys of its networks table do."""
    from vimtui.core.actions import of_kind
    from vimtui.core.actions.params import parse_words
    from vimtui.ui.screens.host_detail import HostDetailScreen
    from vimtui.ui.widgets.host_networks import NetRequest

    state = screen.vimapp.fleet.state
    verbs = {a.name: a for a in of_kind("network")}
    usage = f"usage: :net [{'|'.join(verbs)}] HOST[/NET] [name=value ...]"
    verb = args[0].lower() if args and args[0].lower() in verbs else ""
    words = args[1:] if verb else args
    names, given = parse_words(verbs[verb].params, words) if verb else (words, {})
    if len(names) > 1 or (verb and not names):
        return usage
    target = names[0] if names else ""
    if not target:
        if len(state.hosts) != 1:
            return f"{usage} (hosts: {', '.join(h.name for h in state.hosts)})"
        target = state.hosts[0].name
    host, _, net = target.partition("/")
    if state.host(host) is None:
        if len(state.hosts) == 1 and "/" not in target:  # NET alone in a fleet of one host
            host, net = state.hosts[0].name, target
        else:
            return f"no host {host!r} in the inventory (hosts: {', '.join(h.name for h in state.hosts)})"
    if verb and verb != "define" and not net:
        return f":net {verb} needs the network: HOST/NET"
    screen.app.push_screen(HostDetailScreen(host, NetRequest(net, verb, given)))
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


def _display(screen: MainScreen, args: list[str]) -> str | None:
    """`:display` on the selection, `:display NAME` on that VM: as the key."""
    from vimtui.core.actions.operations import resolve
    from vimtui.ui.screens.display import open_display
    from vimtui.ui.vm_actions import display_why_not

    vms = screen.action_targets()
    if args:
        vms, errors = resolve(screen.vimapp.fleet.state, args)
        if errors:
            return "; ".join(f"{n}: {why}" for n, why in errors)
    reason = display_why_not(screen.vimapp, vms)
    if reason:
        return reason
    screen.app.run_worker(open_display(screen.vimapp, vms[0]), group="vm-display")
    return None


def _displays(screen: MainScreen, args: list[str]) -> str | None:
    from vimtui.ui.screens.display import DisplayScreen

    open_ones = screen.vimapp.displays.open_ones()
    if not open_ones:
        return "no display forward is open (V on a running VM opens one)"
    if len(open_ones) == 1:
        screen.app.push_screen(DisplayScreen(open_ones[0]))
        return None
    listed = ", ".join(f"{f.vm.name} at {f.address}" for f in open_ones)
    screen.vimapp.notify(f"display forwards: {listed} (:display NAME shows one)", timeout=10)
    return None


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
    if name == "tag":  # `:tag web01 +blue -green`, as the CLI takes it
        from vimtui.core.actions.tenancy import tag_line

        words = tag_line(words)
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


def _target(kind: str) -> Callable[[MainScreen, list[str]], str | None]:
    """`:pool start kvm01/default`, `:vol create kvm01/default/web.qcow2 size=20G`: a pool or volume
    action by its target's name, its parameters as `name=value` (a form opens for what is left out or
    refused); `:pool` alone opens the host's storage (`:pool kvm01`)."""

    def run(screen: MainScreen, args: list[str]) -> str | None:
        from vimtui.core.actions import of_kind, targets
        from vimtui.core.actions.params import parse_words
        from vimtui.ui.target_actions import NAME_FIELD, run_target_action

        group = targets.GROUP[kind]
        verbs = sorted(a.name for a in of_kind(kind))
        state = screen.vimapp.fleet.state
        if len(args) == 1 and state.host(args[0]) is not None:
            from vimtui.ui.screens.host_detail import HostDetailScreen

            screen.app.push_screen(HostDetailScreen(args[0]))
            return None
        if len(args) < 2:
            return f"usage: :{group} VERB {targets.SPELLING[kind]} [name=value ...] ({', '.join(verbs)})"
        act = next((a for a in of_kind(kind) if a.name == args[0]), None)
        if act is None:
            return f"no {group} action {args[0]!r} (known: {', '.join(verbs)})"
        names, given = parse_words(act.params, args[1:])
        if len(names) != 1:
            return f"usage: :{group} {act.name} {targets.SPELLING[kind]} [name=value ...]"
        try:
            ref = targets.parse(kind, names[0], state)
        except targets.BadTarget as exc:
            return str(exc)
        selected: str = ref.name
        extra: dict[str, str] = {}
        if act.creates:  # the new one's name, made in its host (a pool) or its pool (a volume)
            parent, _, new = ref.name.rpartition("/")
            selected, extra = parent or ref.host, {NAME_FIELD: new}
        app = screen.vimapp
        app.run_worker(
            run_target_action(app, act, ref.host, selected, None, {**given, **extra}), group="storage-actions"
        )
        return None

    return run


COMMANDS: tuple[Command, ...] = (
    Command("vms", ("vm", "v"), "", "all VMs of all hosts", _vms),
    Command("hosts", ("host-tree", "h"), "", "focus the host tree", _hosts),
    Command("host", ("node",), "NAME", "show one host's VMs", _host),
    Command("tasks", ("task", "t", "log"), "", "the task and event log, full screen", _tasks),
    Command("alerts", ("alert", "a"), "", "alerts firing, and the recent ones", _alerts),
    Command("lint", ("compliance",), "", "fleet lint: what is unsafe or will break, and fixes", _lint),
    Command("tenants", (), "", "each tenant's use against its quota", _tenants),
    Command(
        "audit",
        ("au",),
        "[host=H] [vm=V] [since=1d] [user=U]",
        "what operators did (all hosts' audit)",
        _audit,
    ),
    Command("display", ("vnc", "spice"), "[NAME]", "forward a VM's display here, for a viewer", _display),
    Command("displays", (), "", "the display forwards open", _displays),
    Command(
        "pool",
        ("pools",),
        "VERB HOST/POOL",
        "a pool action (:pool HOST: the host's storage)",
        _target("pool"),
    ),
    Command(
        "vol",
        ("volume",),
        "VERB HOST/POOL/VOL",
        "a volume action (create, delete, resize ...)",
        _target("volume"),
    ),
    Command("screen", (), "[NAME]", "a VM's screen in the terminal, keys sent to it", _screen),
    Command(
        "net",
        ("network", "networks"),
        "[VERB] HOST[/NET] [name=value]",
        "a host's networks and DHCP leases; with a verb (define, start, stop, autostart, delete) acts",
        _net,
    ),
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
