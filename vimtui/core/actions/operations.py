"""From "do X to these VMs" to tasks: find the VMs, check each one, and run one task per VM.

The screen (a key, the palette, a marked selection), the `:` line and the CLI verbs all come through here,
so a refusal reads the same everywhere: a failed task saying why, and nothing touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vimtui.core.actions import ACTIONS, VmAction
from vimtui.core.actions.base import domain
from vimtui.core.fleet.audit import redact
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task, TaskContext
from vimtui.core.model import FleetState, VmState


class UnknownAction(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    """One action on one VM, checked: `refusal` says why it will not run (None: it will)."""

    action: VmAction
    host: str
    vm: str
    uuid: str
    args: Mapping[str, Any] = field(default_factory=dict)
    refusal: str | None = None

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in redact(self.args).items() if v not in (None, False, (), ""))
        what = f"{self.action.name} {self.host}/{self.vm}" + (f" ({extra})" if extra else "")
        return f"{what}: REFUSED: {self.refusal}" if self.refusal else what


def action(name: str) -> VmAction:
    try:
        return ACTIONS[name]
    except KeyError:
        raise UnknownAction(f"unknown action {name!r}; known: {', '.join(sorted(ACTIONS))}") from None


def resolve(
    state: FleetState, names: Sequence[str], host: str | None = None
) -> tuple[list[VmState], list[tuple[str, str]]]:
    """VMs by name (or host/name), and (name, why) for each name that does not name exactly one VM."""
    found: list[VmState] = []
    errors: list[tuple[str, str]] = []
    if host is not None and state.host(host) is None:
        return [], [(n, f"no host {host!r} in the inventory") for n in names]
    for name in names:
        h, sep, short = name.rpartition("/")
        where = (h if sep else None) or host
        if sep and state.host(h) is None:
            errors.append((name, f"no host {h!r} in the inventory"))
            continue
        matches = state.find_vm(short, where)
        if not matches:
            on = f" on {where}" if where else ""
            unreachable = [
                x.name for x in state.hosts if not x.status.healthy and (not where or x.name == where)
            ]
            hint = f" (not answering: {', '.join(unreachable)})" if unreachable else ""
            errors.append((name, f"no VM named {short!r}{on}{hint}"))
        elif len(matches) > 1:
            hosts = ", ".join(v.host for v in matches)
            errors.append(
                (name, f"{short!r} is on several hosts ({hosts}): say which with --host or HOST/NAME")
            )
        elif matches[0] not in found:
            found.append(matches[0])
    return found, errors


def plan(
    state: FleetState, name: str, vms: Sequence[VmState], args: Mapping[str, Any] | None = None
) -> list[Step]:
    act = action(name)
    args = dict(args or {})
    return [Step(act, vm.host, vm.name, vm.uuid, args, act.refusal(vm, args, state)) for vm in vms]


def submit(fleet: Fleet, steps: Sequence[Step]) -> list[Task]:
    """One task per step: refused ones end at once (failed, with the reason, audited), the others queue on
    their host's task lane. One VM's failure never stops the others."""
    tasks = []
    for step in steps:
        if step.refusal is not None:
            tasks.append(
                fleet.tasks.refuse(step.host, step.action.name, step.refusal, vm=step.vm, args=step.args)
            )
        else:
            tasks.append(_submit_one(fleet, step))
    return tasks


def refuse_unresolved(
    fleet: Fleet, name: str, errors: Sequence[tuple[str, str]], host: str | None
) -> list[Task]:
    """Names that matched no VM: a refused task each, so they show in the task log and the audit log."""
    return [fleet.tasks.refuse(host or "", name, why, vm=vm) for vm, why in errors]


def _submit_one(fleet: Fleet, step: Step) -> Task:
    act, uuid, args = step.action, step.uuid, dict(step.args)

    def run(ctx: TaskContext) -> str | None:
        return act.run(ctx, domain(ctx, uuid), **args)

    abort = None
    if act.abort is not None:
        aborter = act.abort

        def abort(conn: Any) -> None:
            aborter(conn, uuid)

    return fleet.tasks.submit(
        step.host, act.name, run, vm=step.vm, uuid=uuid, args=args, abort=abort, timeout=act.timeout
    )
