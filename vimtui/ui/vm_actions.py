"""VM actions on the screen, all made from the action registry: the bindings (one id per action, the same
on every screen), whether each applies to the selection, the form built from the action's parameters, the
confirmation with the dry run's lines, and handing the checked steps to the core as tasks.

Screens that show VMs mix in ActionsMixin and say which VMs the selection is (`action_targets`).
Nothing here calls libvirt: choices that need the host (snapshots) and previews (what a delete removes) are
asked of the core, which asks the host on its lane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from textual.binding import Binding, BindingsMap

from vimtui.core.actions import ACTIONS, Action, of_kind, operations
from vimtui.core.actions.params import BadArgument, Choice, Param, check_args
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.fleet.tasks import Task
from vimtui.core.model import FleetState, VmState
from vimtui.ui.screens.prompt import Field, PromptScreen

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

ACTIONS_GROUP = Binding.Group("actions")
"""The group of the action bindings: the key bar shows the ones that apply, first."""
CONSOLE = Binding("c", "vm_console", "Console", id="vm.console", group=ACTIONS_GROUP)
"""The serial console: not a task (the terminal is handed over), but bound like an action."""
DISPLAY = Binding("V", "vm_display", "Display", id="vm.display", group=ACTIONS_GROUP)
"""The graphical console forwarded to a local port: not a task either (screens/display.py)."""
SCREEN = Binding("v", "vm_screen", "Screen", id="vm.screen", group=ACTIONS_GROUP)
"""The guest's screen (its display, in the terminal): a view, not a task."""


def action_bindings() -> list[Binding]:
    """One binding per VM action that has a key, id `vm.<name>` on every screen; remappable from [keys]."""
    out = [
        Binding(a.key, f"vm_action('{a.name}')", a.title, id=a.id, show=a.bar, group=ACTIONS_GROUP)
        for a in of_kind("vm")
        if a.key
    ]
    out += [CONSOLE, DISPLAY, SCREEN]
    return out


def why_not(app: VimApp, name: str, vms: Sequence[VmState]) -> str | None:
    """None when the action applies to at least one of the VMs, else the reason (the first VM's)."""
    if not vms:
        return "no VM selected"
    act = ACTIONS.get(name)
    if act is None:
        return f"no action {name!r}"
    if len(vms) > 1 and not act.bulk:
        return f"{act.title} takes one VM at a time"
    state = app.fleet.state
    first: str | None = None
    for vm in vms:  # stops at the first VM it applies to: with every VM marked, keys are checked per refresh
        why = act.state_refusal(vm, state)
        if why is None:
            return None
        first = first or why
    return first


def console_why_not(app: VimApp, vms: Sequence[VmState]) -> str | None:
    """None when the console key may open the selection's console, else why not (one VM, and a profile
    that allows it: the VM's state is said when it is tried)."""
    from vimtui.core.actions.console import CONSOLE_NEEDS
    from vimtui.core.profiles import refusal

    if len(vms) != 1:
        return "the console takes one VM" if vms else "no VM selected"
    host = app.fleet.state.host(vms[0].host)
    return refusal(host.profile, CONSOLE_NEEDS, host.name, "The console") if host is not None else None


def display_why_not(app: VimApp, vms: Sequence[VmState]) -> str | None:
    """None when the display key may forward the selection's display, else why not (one VM, running, a
    profile that allows it, a host reached over SSH or on this machine)."""
    from vimtui.core.actions.display import display_refusal

    if len(vms) != 1:
        return "the display takes one VM" if vms else "no VM selected"
    return display_refusal(vms[0], app.fleet.state.host(vms[0].host))


def screen_why_not(app: VimApp, vms: Sequence[VmState]) -> str | None:
    """None when the screen key may show the selection's screen, else why not."""
    from vimtui.core.actions.guest_screen import screen_refusal

    if len(vms) != 1:
        return "the screen shows one VM" if vms else "no VM selected"
    return screen_refusal(vms[0], app.fleet.state.host(vms[0].host))


def state_choices(act: Action, vm: VmState, state: FleetState) -> dict[str, list[Choice]]:
    """The choices computed from the fleet state (no host asked): enough to check a `:` line at once."""
    return {p.name: list(p.from_state(vm, state)) for p in act.params if p.from_state is not None}


def field_for(p: Param, value: Any, choices: Sequence[Choice]) -> Field:
    kind = {"int": "number", "float": "number", "size": "text", "path": "text"}.get(p.kind, p.kind)
    if p.kind in ("choice", "list") and not choices and not p.choices:
        kind = "text"  # a list without choices is typed: words or commas
        if p.kind == "list" and isinstance(value, list | tuple):
            value = " ".join(value)
    return Field(p.name, p.title, kind, value, tuple(choices or p.choices), p.required, p.describe())


class ActionsMixin:
    """For screens: `vm_action(name)` and `vm_console`, with their bindings (made from the registry when
    the screen is made, so an action registered before is bound) greyed out when they do not apply."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        node = cast(Any, self)
        node._bindings = BindingsMap.merge([node._bindings, BindingsMap(action_bindings())])

    @property
    def vimapp(self) -> VimApp:
        return cast("VimApp", cast(Any, self).app)

    def action_targets(self) -> list[VmState]:
        raise NotImplementedError

    def check_vm_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """For check_action: None (shown disabled) when the action does not apply to the selection."""
        vms = self.action_targets()
        if action == "vm_action":
            return None if why_not(self.vimapp, str(parameters[0]), vms) else True
        if action == "vm_console":
            return None if console_why_not(self.vimapp, vms) else True
        if action == "vm_display":
            return None if display_why_not(self.vimapp, vms) else True
        if action == "vm_screen":
            return None if screen_why_not(self.vimapp, vms) else True
        return True

    def action_refusal(self, action: str, parameters: tuple[object, ...]) -> str | None:
        """Why a key's action is greyed out for the selection (the app flashes it when the key is pressed)."""
        vms = self.action_targets()
        if action == "vm_action":
            return why_not(self.vimapp, str(parameters[0]), vms)
        if action == "vm_console":
            return console_why_not(self.vimapp, vms)
        if action == "vm_display":
            return display_why_not(self.vimapp, vms)
        if action == "vm_screen":
            return screen_why_not(self.vimapp, vms)
        return None

    def action_vm_action(self, name: str) -> None:
        vms = self.action_targets()
        reason = why_not(self.vimapp, name, vms)
        if reason:
            self.vimapp.notify(reason, severity="warning", timeout=4, markup=False)
            return
        self.vimapp.run_worker(self.run_vm_action(name, vms), group="vm-actions")

    async def run_vm_action(
        self, name: str, vms: list[VmState], given: Mapping[str, Any] | None = None
    ) -> list[Task]:
        app = self.vimapp
        act = ACTIONS[name]
        if act.opens == "editor":
            await self._open_editor(vms[0])
            return []
        args = await self._ask_arguments(act, vms, dict(given or {}))
        if args is None:
            return []
        steps = operations.plan(app.fleet.state, name, vms, args)
        runnable = [s for s in steps if s.refusal is None]
        if act.destructive or len(steps) > 1:
            lines = await operations.preview(app.fleet, steps)
            question = f"{act.title}: {len(runnable)} of {len(steps)} VM(s)"
            answer = await app.push_screen_wait(
                PromptScreen(question, [], ok=act.title, detail="\n".join(lines), danger=act.destructive)
            )
            if answer is None:
                return []
        tasks = operations.submit(app.fleet, steps)
        queued = sum(not t.state.finished for t in tasks)
        app.notify(
            f"{act.title}: {queued} task(s) queued, {len(tasks) - queued} refused", timeout=3, markup=False
        )
        if name == "shutdown" and len(tasks) == 1:
            await self._offer_force(tasks[0], vms[0])
        return tasks

    async def _offer_force(self, task: Task, vm: VmState) -> None:
        await task.done.wait()
        if task.state == "failed" and "power button" in task.error:
            answer = await self.vimapp.push_screen_wait(
                PromptScreen(
                    f"{vm.name} is still running", [], ok="Force off", detail=task.error, danger=True
                )
            )
            if answer is not None:
                operations.submit(
                    self.vimapp.fleet, operations.plan(self.vimapp.fleet.state, "destroy", [vm])
                )

    async def _ask_arguments(
        self, act: Action, vms: list[VmState], given: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The action's arguments: the form made from its parameters (none when it asks nothing, or when a
        `:` line gave them all and they check), each value checked by `check_args` as every face does."""
        app = self.vimapp
        vm = vms[0]
        try:
            choices = await operations.choices_for(app.fleet, act, vm)
        except QueryFailed as exc:
            app.notify(f"{act.title}: {exc}", severity="error", timeout=6, markup=False)
            return None
        asked = [p for p in act.params if p.asked and not (p.kind == "list" and p.computed and len(vms) > 1)]
        for p in asked:
            if p.required and p.kind == "choice" and p.computed and not choices.get(p.name):
                app.notify(
                    f"{vm.name}: no {p.title} to choose from", severity="warning", timeout=4, markup=False
                )
                return None
        state, now = app.fleet.state, app.clock()
        preset: dict[str, Any] = {}
        for p in act.params:
            if p.name in given:
                preset[p.name] = given[p.name]
            elif p.suggest is not None:
                preset[p.name] = p.suggest(vm, state, now)
            elif p.kind == "choice" and choices.get(p.name) and p.required:
                preset[p.name] = choices[p.name][0][1]
        fixed = {k: v for k, v in preset.items() if k not in {p.name for p in asked}}

        def check(raw: Mapping[str, Any]) -> dict[str, Any]:
            return check_args(act.params, {**fixed, **raw}, choices)

        def check_in_form(raw: Mapping[str, Any]) -> dict[str, Any]:
            args = check(raw)
            if len(vms) == 1:  # what the arguments make impossible is said while they can be changed
                why = act.refusal(vm, args, app.fleet.state)
                if why is not None:
                    raise BadArgument(why)
            return args

        if not asked or given:
            try:
                return check({k: v for k, v in preset.items() if k in {p.name for p in asked}})
            except BadArgument as exc:
                if not asked or "required" not in str(exc):
                    app.notify(f"{act.title}: {exc}", severity="error", timeout=6, markup=False)
                    return None
        fields = [field_for(p, preset.get(p.name, p.default), choices.get(p.name, ())) for p in asked]
        what = vm.name if len(vms) == 1 else f"{len(vms)} VMs"
        return await app.push_screen_wait(
            PromptScreen(
                f"{act.title}: {what}",
                fields,
                ok=act.ok or act.title,
                detail=act.note,
                danger=act.destructive,
                check=check_in_form,
            )
        )

    # -- console and XML: the app steps aside for the terminal ------------------------------------

    def action_vm_console(self) -> None:
        vms = self.action_targets()
        reason = console_why_not(self.vimapp, vms)
        if reason:
            self.vimapp.notify(reason, severity="warning", timeout=4, markup=False)
            return
        self.vimapp.run_worker(self._open_console(vms[0]), group="vm-console")

    def action_vm_screen(self) -> None:
        vms = self.action_targets()
        reason = screen_why_not(self.vimapp, vms)
        if reason:
            self.vimapp.notify(reason, severity="warning", timeout=4, markup=False)
            return
        from vimtui.ui.screens.guest_screen import GuestScreen

        self.vimapp.push_screen(GuestScreen(vms[0]))

    async def _open_console(self, vm: VmState) -> None:
        from vimtui.ui.terminal import console

        await console(self.vimapp, vm)

    def action_vm_display(self) -> None:
        vms = self.action_targets()
        reason = display_why_not(self.vimapp, vms)
        if reason:
            self.vimapp.notify(reason, severity="warning", timeout=4, markup=False)
            return
        from vimtui.ui.screens.display import open_display

        self.vimapp.run_worker(open_display(self.vimapp, vms[0]), group="vm-display")

    async def _open_editor(self, vm: VmState) -> None:
        from vimtui.ui.terminal import edit_xml

        await edit_xml(self.vimapp, vm)
