"""VM actions on the screen: the bindings, whether each applies to the selection, the questions asked
before (arguments, confirmation with what goes), and handing the checked steps to the core as tasks.

Screens that show VMs mix in ActionsMixin and say which VMs the selection is (`action_targets`).
Nothing here calls libvirt: arguments that need the host (snapshots, what a delete removes) are asked of the
core on the host's lane.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from textual.binding import Binding

from vimtui.core.actions import ACTIONS, VmAction, operations
from vimtui.core.actions.remove import preview
from vimtui.core.fleet.tasks import Task
from vimtui.core.model import FleetState, VmState
from vimtui.core.poll.host_queries import snapshots
from vimtui.ui.screens.prompt import Field, PromptScreen

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

CONSOLE_KEY, EDIT_KEY = "c", "e"

UI_KEYS = {"snapshot": "n", "clone": "C", "migrate": "M"}
"""Keys for actions whose modules leave it to the screen."""


def action_key(a: VmAction) -> str:
    return a.key or UI_KEYS.get(a.name, "")


def action_bindings(prefix: str) -> list[Binding]:
    """One binding per action that has a key; ids `<prefix>.<action>` remap from [keys] like any other."""
    out = [
        Binding(action_key(a), f"vm_action('{a.name}')", a.title, id=f"{prefix}.{a.name}", show=False)
        for a in ACTIONS.values()
        if action_key(a)
    ]
    out.append(Binding(CONSOLE_KEY, "vm_console", "Console", id=f"{prefix}.console", show=False))
    out.append(Binding(EDIT_KEY, "vm_edit", "Edit XML", id=f"{prefix}.edit", show=False))
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
    reasons = [_state_refusal(act, vm, state) for vm in vms]
    return None if any(r is None for r in reasons) else reasons[0]


def _state_refusal(act: VmAction, vm: VmState, state: FleetState) -> str | None:
    """The refusal that does not depend on arguments (those are asked for after)."""
    if act.states is not None and vm.state not in act.states:
        return act.refusal(vm, {}, state)
    host = state.host(vm.host)
    if host is None or not host.status.healthy:
        return f"host {vm.host} is {host.status if host else 'gone'}"
    if act.mutates and host.read_only:
        return f"host {vm.host} is connected read-only"
    return None


class ActionsMixin:
    """For screens: `vm_action(name)`, `vm_console`, `vm_edit`, with bindings greyed out when they do not
    apply."""

    @property
    def _app(self) -> VimApp:
        return cast("VimApp", cast(Any, self).app)

    def action_targets(self) -> list[VmState]:
        raise NotImplementedError

    def check_vm_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """For check_action: None (shown disabled) when the action does not apply to the selection."""
        vms = self.action_targets()
        if action == "vm_action":
            return None if why_not(self._app, str(parameters[0]), vms) else True
        if action in ("vm_console", "vm_edit"):
            return True if len(vms) == 1 else None
        return True

    def action_vm_action(self, name: str) -> None:
        vms = self.action_targets()
        reason = why_not(self._app, name, vms)
        if reason:
            self._app.notify(reason, severity="warning", timeout=4)
            return
        self._app.run_worker(self._run_vm_action(name, vms), group="vm-actions")

    async def _run_vm_action(self, name: str, vms: list[VmState]) -> list[Task]:
        app = self._app
        act = ACTIONS[name]
        args = await self._ask_arguments(act, vms)
        if args is None:
            return []
        state = app.fleet.state
        steps = operations.plan(state, name, vms, args)
        runnable = [s for s in steps if s.refusal is None]
        if act.destructive or len(steps) > 1:
            lines = await self._what_happens(steps)
            question = f"{act.title}: {len(runnable)} of {len(steps)} VM(s)"
            answer = await app.push_screen_wait(
                PromptScreen(question, [], ok=act.title, detail="\n".join(lines), danger=act.destructive)
            )
            if answer is None:
                return []
        tasks = operations.submit(app.fleet, steps)
        queued = sum(not t.state.finished for t in tasks)
        app.notify(f"{act.title}: {queued} task(s) queued, {len(tasks) - queued} refused", timeout=3)
        if name == "shutdown" and len(tasks) == 1:
            await self._offer_force(tasks[0], vms[0])
        return tasks

    async def _offer_force(self, task: Task, vm: VmState) -> None:
        await task.done.wait()
        if task.state == "failed" and "power button" in task.error:
            answer = await self._app.push_screen_wait(
                PromptScreen(
                    f"{vm.name} is still running", [], ok="Force off", detail=task.error, danger=True
                )
            )
            if answer is not None:
                operations.submit(self._app.fleet, operations.plan(self._app.fleet.state, "destroy", [vm]))

    async def _what_happens(self, steps: Sequence[operations.Step]) -> list[str]:
        """The dry run: every step, what goes for a delete, and what will be refused and why."""
        lines = []
        for s in steps:
            if s.refusal:
                lines.append(f"✗ {s.host}/{s.vm}: {s.refusal}")
                continue
            lines.append(f"• {s.host}/{s.vm}")
            if s.action.name == "delete":
                try:
                    plan = await self._app.fleet.sessions[s.host].call(
                        preview, s.uuid, s.args.get("remove_storage", ())
                    )
                except Exception as exc:  # the task refuses with the same reason
                    lines.append(f"    cannot: {exc}")
                    continue
                lines += [f"    {line}" for line in plan.lines()]
        return lines

    async def _ask_arguments(self, act: VmAction, vms: list[VmState]) -> dict[str, Any] | None:
        """The arguments an action needs, asked in a form (none asked when it needs none)."""
        app = self._app
        vm = vms[0]
        fields: list[Field]
        if act.name == "shutdown":
            return {"timeout": 120.0, "force": False}
        if act.name == "autostart":
            on = bool(vm.details and vm.details.autostart)
            return {"enable": not on}
        if act.name == "delete":
            fields = [Field("force", "force off first if running", "bool", False)]
            if len(vms) == 1 and vm.details is not None:
                fields += [
                    Field(f"rm-{d.target}", f"also REMOVE {d.target} ({d.source})", "bool", False)
                    for d in vm.details.disks
                    if d.source and d.device == "disk"
                ]
            values = await app.push_screen_wait(
                PromptScreen(
                    f"Delete {vm.name if len(vms) == 1 else f'{len(vms)} VMs'}",
                    fields,
                    ok="Next",
                    detail="Disks are kept unless ticked below.",
                    danger=True,
                )
            )
            if values is None:
                return None
            remove = tuple(k[3:] for k, v in values.items() if k.startswith("rm-") and v)
            return {"force": values["force"], "remove_storage": remove}
        if act.name == "snapshot":
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(app.clock()))
            fields = [
                Field("name", "name", default=f"snap-{stamp}", required=True),
                Field("description", "description", default=""),
                Field("disk_only", "disk-only (external, no memory)", "bool", False),
            ]
            return await app.push_screen_wait(PromptScreen(f"Snapshot of {_names(vms)}", fields, ok="Take"))
        if act.name in ("revert", "snapshot-delete"):
            snaps = await app.fleet.sessions[vm.host].call(snapshots, vm.uuid)
            if not snaps:
                app.notify(f"{vm.name} has no snapshots", severity="warning")
                return None
            current = next((s.name for s in snaps if s.current), snaps[-1].name)
            fields = [
                Field("name", "snapshot", "choice", current, [(_snap_label(s), s.name) for s in snaps], True)
            ]
            if act.name == "snapshot-delete":
                fields.append(Field("children", "with its children", "bool", False))
            return await app.push_screen_wait(PromptScreen(f"{act.title}: {vm.name}", fields, danger=True))
        if act.name == "migrate":
            hosts = [h.name for h in app.fleet.state.hosts if h.name != vm.host and h.status.healthy]
            fields = [
                Field(
                    "dest",
                    "destination host",
                    "choice",
                    hosts[0] if hosts else None,
                    [(h, h) for h in hosts],
                    True,
                ),
                Field("copy_storage", "copy the disks too (no shared storage)", "bool", False),
            ]
            return await app.push_screen_wait(PromptScreen(f"Migrate {_names(vms)}", fields, ok="Migrate"))
        fields = _fields_from_signature(act, vm)
        if not fields:
            return {}
        return await app.push_screen_wait(PromptScreen(f"{act.title}: {_names(vms)}", fields))

    # -- console and XML: the app steps aside for the terminal ------------------------------------

    def action_vm_console(self) -> None:
        vms = self.action_targets()
        if len(vms) == 1:
            self._app.run_worker(self._open_console(vms[0]), group="vm-console")

    async def _open_console(self, vm: VmState) -> None:
        from vimtui.ui.terminal import console

        await console(self._app, vm)

    def action_vm_edit(self) -> None:
        vms = self.action_targets()
        if len(vms) == 1:
            self._app.run_worker(self._open_editor(vms[0]), group="vm-edit")

    async def _open_editor(self, vm: VmState) -> None:
        from vimtui.ui.terminal import edit_xml

        await edit_xml(self._app, vm)


def _names(vms: Sequence[VmState]) -> str:
    return vms[0].name if len(vms) == 1 else f"{len(vms)} VMs"


def _snap_label(s: Any) -> str:
    mark = " (current)" if s.current else ""
    return f"{s.name}{mark}  {s.state}{'  external' if s.external else ''}"


def _fields_from_signature(act: VmAction, vm: VmState) -> list[Field]:
    """A form from the action function's keyword arguments: text for str, a box for bool, number."""
    params = list(inspect.signature(act.run).parameters.values())[2:]
    fields = []
    for p in params:
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        ann = str(p.annotation)
        label = p.name.replace("_", " ")
        if "bool" in ann:
            fields.append(Field(p.name, label, "bool", bool(default)))
        elif "float" in ann or "int" in ann:
            fields.append(Field(p.name, label, "number", default))
        elif "Sequence" in ann or "tuple" in ann:
            continue
        else:
            fields.append(
                Field(p.name, label, default=default, required=p.default is inspect.Parameter.empty)
            )
    return fields
