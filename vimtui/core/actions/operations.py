"""From "do X to these VMs" to tasks: find the VMs, check each one, and run one task per VM.

The screen (a key, the palette, a marked selection), the `:` line and the CLI verbs all come through here,
so a refusal reads the same everywhere: a failed task saying why, and nothing touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vimtui.core.actions import ACTIONS, Action, VmAction, of_kind, targets
from vimtui.core.actions.base import domain
from vimtui.core.actions.params import BadArgument, Choice, check_args
from vimtui.core.fleet import quotas
from vimtui.core.fleet.audit import redact
from vimtui.core.fleet.fleet import Fleet, QueryFailed
from vimtui.core.fleet.tasks import Task, TaskContext
from vimtui.core.model import FleetState, HostState, VmState, tenant_of

CANNOT = "cannot: "
"""How a preview line starts when the host says the step cannot be done."""


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

    @property
    def where(self) -> str:
        """host/vm, or the host for a host action."""
        return f"{self.host}/{self.vm}" if self.vm else self.host

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in redact(self.args).items() if v not in (None, False, (), ""))
        what = f"{self.action.name} {self.where}" + (f" ({extra})" if extra else "")
        return f"{what}: REFUSED: {self.refusal}" if self.refusal else what


def action(name: str) -> VmAction:
    try:
        return ACTIONS[name]
    except KeyError:
        raise UnknownAction(f"unknown action {name!r}; known: {', '.join(sorted(ACTIONS))}") from None


def host_action(name: str) -> Action:
    found = next((a for a in of_kind("host") if a.name == name), None)
    if found is None:
        known = ", ".join(sorted(a.name for a in of_kind("host")))
        raise UnknownAction(f"unknown host action {name!r}; known: {known}")
    return found


def resolve_hosts(state: FleetState, names: Sequence[str]) -> tuple[list[HostState], list[tuple[str, str]]]:
    """Hosts by name, and (name, why) for each name the inventory does not have."""
    found: list[HostState] = []
    errors: list[tuple[str, str]] = []
    for name in names:
        h = state.host(name)
        if h is None:
            known = ", ".join(x.name for x in state.hosts) or "none"
            errors.append((name, f"no host {name!r} in the inventory (hosts: {known})"))
        elif h not in found:
            found.append(h)
    return found, errors


def plan_hosts(
    state: FleetState, name: str, hosts: Sequence[HostState], args: Mapping[str, Any] | None = None
) -> list[Step]:
    """One checked step per host for the host action `name` (a VM's fields left empty)."""
    act = host_action(name)
    args = dict(args or {})
    vm = str(args.get(act.new_vm) or "") if act.new_vm else ""
    return [Step(act, h.name, vm, "", args, act.host_refusal(h, args, state)) for h in hosts]


def target_action(kind: str, name: str) -> Action:
    """The action `name` on targets of `kind` (pool, volume, network)."""
    found = next((a for a in of_kind(kind) if a.name == name), None)
    if found is None:
        known = ", ".join(sorted(a.name for a in of_kind(kind)))
        raise UnknownAction(f"unknown {targets.GROUP[kind]} action {name!r}; known: {known}")
    return found


def plan_targets(
    state: FleetState, act: Action, refs: Sequence[targets.Ref], args: Mapping[str, Any] | None = None
) -> list[Step]:
    """One checked step per pool, volume or network (the step's VM field holds its name in its host)."""
    given = dict(args or {})
    return [Step(act, r.host, r.name, "", given, targets.refusal(act, r, given, state)) for r in refs]


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
    if act.adds is None or not state.quotas:
        return [Step(act, vm.host, vm.name, vm.uuid, args, act.refusal(vm, args, state)) for vm in vms]
    steps = []
    pending: dict[str, quotas.Use] = {}  # several VMs in one request share their tenant's quota
    for vm in vms:
        why = act.refusal(vm, args, state, pending)
        steps.append(Step(act, vm.host, vm.name, vm.uuid, args, why))
        if why is None and (tenant := tenant_of(vm)):
            pending[tenant] = pending.get(tenant, quotas.Use()) + act.adds(vm, args, state)
    return steps


async def choices_for(fleet: Fleet, act: VmAction, vm: VmState) -> dict[str, list[Choice]]:
    """The computed choices of each parameter for `vm`: from the fleet state, or asked of its host on its
    lane (QueryFailed when the host cannot say)."""
    out: dict[str, list[Choice]] = {}
    for p in act.params:
        if p.from_state is not None:
            out[p.name] = list(p.from_state(vm, fleet.state))
        elif p.from_host is not None:
            out[p.name] = list(await fleet.ask(vm.host, p.from_host, vm.uuid))
    return out


async def arguments(
    fleet: Fleet, act: VmAction, vms: Sequence[VmState], given: Mapping[str, Any]
) -> dict[str, Any]:
    """`given` checked against the action's parameters, with the choices computed for the first VM (the
    one a form shows): the one check every face makes. BadArgument says what is wrong."""
    choices: dict[str, list[Choice]] = {}
    if vms and any(p.computed and p.strict and p.name in given for p in act.params):
        try:
            choices = await choices_for(fleet, act, vms[0])
        except QueryFailed as exc:
            raise BadArgument(f"cannot list the choices on {vms[0].host}: {exc}") from exc
    return check_args(act.params, given, choices)


async def step_preview(fleet: Fleet, step: Step) -> list[str]:
    """What one step would do beyond its name, asked of its host (a delete's volumes); nothing for a
    refused step or an action without a preview. A preview that fails says why (the task will refuse)."""
    if step.refusal:
        return []
    if step.action.plan is not None:  # from the fleet's state and answers (an evacuation's moves)
        try:
            return list(await step.action.plan(fleet, step.host, dict(step.args)))
        except Exception as exc:
            return [f"{CANNOT}{exc}"]
    if step.action.preview is None:
        return []
    try:
        key = step.vm if step.action.target in targets.PARTS else step.uuid  # a pool's name, a VM's uuid
        return list(await fleet.ask(step.host, step.action.preview, key, dict(step.args)))
    except Exception as exc:  # the task refuses with the same reason
        return [f"{CANNOT}{exc}"]


async def preview(fleet: Fleet, steps: Sequence[Step]) -> list[str]:
    """The dry run: every step, what it would do, what will be refused and why. The screen's confirmation
    and the CLI's question show these lines; --dry-run prints each step's."""
    lines = []
    for s in steps:
        if s.refusal:
            lines.append(f"✗ {s.where}: {s.refusal}")
            continue
        lines.append(f"• {s.where}")
        lines += [f"    {line}" for line in await step_preview(fleet, s)]
    return lines


def submit(fleet: Fleet, steps: Sequence[Step]) -> list[Task]:
    """One task per step: refused ones end at once (failed, with the reason, audited), the others queue on
    their host's task lane. One VM's failure never stops the others."""
    tasks = []
    for step in steps:
        if step.refusal is not None:
            tasks.append(
                fleet.tasks.refuse(
                    step.host, task_name(step.action), step.refusal, vm=step.vm, args=step.args
                )
            )
        else:
            tasks.append(_submit_one(fleet, step))
    return tasks


def task_name(act: Action) -> str:
    """What the task log and the audit call it: `start` for a VM or a host, `volume.delete` for a pool,
    volume or network (whose names alone would read like a VM's action)."""
    return act.id if act.target in targets.PARTS else act.name


def refuse_unresolved(
    fleet: Fleet, name: str, errors: Sequence[tuple[str, str]], host: str | None
) -> list[Task]:
    """Names that matched no VM: a refused task each, so they show in the task log and the audit log."""
    return [fleet.tasks.refuse(host or "", name, why, vm=vm) for vm, why in errors]


def _submit_one(fleet: Fleet, step: Step) -> Task:
    act, uuid, args = step.action, step.uuid, dict(step.args)
    if act.target in targets.PARTS:
        return _submit_target(fleet, step)
    if act.target == "host":
        host = step.host

        def run_on_host(ctx: TaskContext) -> str | None:
            return act.run(ctx, host, **args)

        host_abort = None
        if act.abort is not None:
            stop = act.abort

            def host_abort(conn: Any) -> None:
                stop(conn, "")

        return fleet.tasks.submit(
            host,
            act.name,
            run_on_host,
            vm=step.vm,
            args=args,
            abort=host_abort,
            timeout=act.timeout,
            connect=act.connects,
        )

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


def _submit_target(fleet: Fleet, step: Step) -> Task:
    """A task on a pool, volume or network: recorded as `volume.delete` on `POOL/VOL` of its host."""
    act, args = step.action, dict(step.args)
    ref = targets.Ref(act.target, step.host, step.vm)

    def run(ctx: TaskContext) -> str | None:
        return act.run(ctx, ref, **args)

    abort = None
    if act.abort is not None:
        stop = act.abort

        def abort(conn: Any) -> None:
            stop(conn, ref.name)

    return fleet.tasks.submit(
        step.host,
        task_name(act),
        run,
        vm=step.vm,
        args=args,
        abort=abort,
        timeout=act.timeout,
        connect=act.connects,
        lane=f"{step.host}/{step.vm}" if act.own_lane else "",
    )
