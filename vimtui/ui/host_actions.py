"""Host actions on the screen, made from the action registry like the VM actions: one binding per host
action with a key (id `host.<name>`, remappable from [keys]), greyed out when it does not apply to the
selected host, the form built from its parameters, the confirmation of a destructive one, and the task.

Widgets and screens that have a selected host mix in HostActionsMixin and say which host it is
(`host_target`). Nothing here calls libvirt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from textual.binding import Binding, BindingsMap

from vimtui.core.actions import Action, of_kind, operations
from vimtui.core.actions.hosts import since
from vimtui.core.actions.params import BadArgument, Choice, check_args
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.fleet.tasks import Task
from vimtui.core.model import HostState
from vimtui.ui.screens.prompt import PromptScreen
from vimtui.ui.vm_actions import ACTIONS_GROUP, field_for

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp


def host_action_bindings() -> list[Binding]:
    """One binding per host action that has a key, id `host.<name>`."""
    return [
        Binding(a.key, f"host_action('{a.name}')", a.title, id=a.id, show=a.bar, group=ACTIONS_GROUP)
        for a in of_kind("host")
        if a.key
    ]


def host_why_not(app: VimApp, name: str, host: str | None) -> str | None:
    """None when the host action applies to `host`, else the reason."""
    if host is None:
        return "no host selected"
    try:
        act = operations.host_action(name)
    except operations.UnknownAction as exc:
        return str(exc)
    h = app.fleet.state.host(host)
    if h is None:
        return f"no host {host!r} in the inventory"
    return act.host_state_refusal(h, app.fleet.state)


async def run_host_action(
    app: VimApp, name: str, host: str, given: Mapping[str, Any] | None = None
) -> list[Task]:
    """The form (its parameters, preset from the suggestions), a confirmation when destructive, the task."""
    act = operations.host_action(name)
    h = app.fleet.state.host(host)
    if h is None:
        return []
    args = await _ask(app, act, host, dict(given or {}))
    if args is None:
        return []
    steps = operations.plan_hosts(app.fleet.state, name, [h], args)
    if act.destructive and steps[0].refusal is None:
        lines = await operations.preview(app.fleet, steps)
        answer = await app.push_screen_wait(
            PromptScreen(f"{act.title}: {host}", [], ok=act.title, detail="\n".join(lines), danger=True)
        )
        if answer is None:
            return []
    tasks = operations.submit(app.fleet, steps)
    if tasks and tasks[0].state.finished and not tasks[0].ok:
        app.notify(f"{act.title} {host}: {tasks[0].error}", severity="warning", timeout=5, markup=False)
    return tasks


async def _ask(app: VimApp, act: Action, host: str, given: dict[str, Any]) -> dict[str, Any] | None:
    h = app.fleet.state.host(host)
    if h is None:
        return None
    state, now = app.fleet.state, app.clock()
    try:
        choices = await host_choices(app, act, h)
    except QueryFailed as exc:
        app.notify(f"{act.title}: {exc}", severity="error", timeout=6, markup=False)
        return None
    preset = {
        p.name: given.get(p.name, p.suggest(h, state, now) if p.suggest is not None else p.default)
        for p in act.params
    }
    for p in act.params:  # a list to choose from shows what it has: a preset it lacks is not offered
        offered = choices.get(p.name)
        if p.kind == "choice" and offered and preset.get(p.name) not in {v for _, v in offered}:
            preset[p.name] = offered[0][1] if p.required or preset.get(p.name) is not None else None
    asked = [p for p in act.params if p.asked]
    fixed = {k: v for k, v in preset.items() if k not in {p.name for p in asked}}

    def check(raw: Mapping[str, Any]) -> dict[str, Any]:
        args = check_args(act.params, {**fixed, **raw}, choices)
        current = app.fleet.state.host(host)
        why = act.host_refusal(current, args, app.fleet.state) if current is not None else "host gone"
        if why is not None:
            raise BadArgument(why)
        return args

    if not asked or given:
        try:
            return check({k: v for k, v in preset.items() if k in {p.name for p in asked}})
        except BadArgument as exc:
            if not asked:
                app.notify(f"{act.title}: {exc}", severity="error", timeout=6, markup=False)
                return None
    fields = [field_for(p, preset.get(p.name), choices.get(p.name, ())) for p in asked]
    now_text = f"{host} is {h.status}" + (
        f", in maintenance since {since(h)}" if h.maintenance else ", in service"
    )
    return await app.push_screen_wait(
        PromptScreen(
            f"{act.title}: {host}",
            fields,
            ok=act.ok or act.title,
            detail=act.note or now_text,
            danger=act.destructive,
            check=check,
        )
    )


async def host_choices(app: VimApp, act: Action, host: HostState) -> dict[str, list[Choice]]:
    """The choices of a host action's parameters: from the fleet state (its pools, its templates) or asked
    of the host on its lane (its ISO volumes)."""
    out: dict[str, list[Choice]] = {}
    for p in act.params:
        if p.from_state is not None:
            out[p.name] = list(p.from_state(host, app.fleet.state))
        elif p.from_host is not None:
            out[p.name] = list(await app.fleet.ask(host.name, p.from_host, host.name))
    return out


class HostActionsMixin:
    """`host_action(name)` with its bindings (made from the registry when the widget is made), greyed out
    when the action does not apply to the selected host."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        node = cast(Any, self)
        node._bindings = BindingsMap.merge([node._bindings, BindingsMap(host_action_bindings())])

    def host_target(self) -> str | None:
        raise NotImplementedError

    @property
    def _vimapp(self) -> VimApp:
        return cast("VimApp", cast(Any, self).app)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "host_action":
            return None if host_why_not(self._vimapp, str(parameters[0]), self.host_target()) else True
        return True

    def action_refusal(self, action: str, parameters: tuple[object, ...]) -> str | None:
        """Why a key's action is greyed out for the host (the app flashes it when the key is pressed)."""
        if action == "host_action":
            return host_why_not(self._vimapp, str(parameters[0]), self.host_target())
        return None

    def action_host_action(self, name: str) -> None:
        host = self.host_target()
        why = host_why_not(self._vimapp, name, host)
        if why is not None or host is None:
            self._vimapp.notify(why or "no host selected", severity="warning", timeout=4, markup=False)
            return
        self._vimapp.run_worker(run_host_action(self._vimapp, name, host), group="host-actions")
