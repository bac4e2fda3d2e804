"""Host evacuation: every VM of a host moved away, running ones live (their disks copied where the storage
is not shared), shut-off ones cold, each move a migrate task of its own, several at a time within a limit.

The evacuation is itself a task on the host's task lane (it holds it, so nothing else is started there
meanwhile); its moves run on lanes of their own (`HOST-move-N`, N below the limit), each checked against
the state of the moment it starts, as any migration is. A move that fails leaves its VM where it was (live
migration and cold migration both do) and the others go on; the evacuation ends with a summary. Cancelling
it stops the moves not yet started and cancels those under way (each then leaves its VM on the source).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from vimtui.core.actions.base import Action, ActionError, domain
from vimtui.core.actions.evacuate_plan import Move, Plan, plan_evacuation, storage_of, summary
from vimtui.core.actions.migrate import ACTIONS as MIGRATE_ACTIONS
from vimtui.core.actions.params import Param
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task, TaskCancelled, TaskContext
from vimtui.core.model import FleetState, HostState

EVACUATE_TIMEOUT = 7 * 24 * 3600.0
"""It ends when its moves have: each move has its own deadline."""

MIGRATE = MIGRATE_ACTIONS[0]
"""Each move is the migrate action (live or cold by the VM's state), as if asked for by hand."""
Progress = Callable[[float | None, str], None]


def evacuate(ctx: TaskContext, host: str, parallel: int = 0) -> str:
    """Move every VM off `host` (see the module's head): the plan from the published state and the host's
    answer on storage, then the moves, `parallel` at a time (0: the configured number)."""
    fleet = ctx.fleet
    state = fleet.state
    vms = state.vms_on(host)
    plan = plan_evacuation(state, host, storage_of(ctx.conn, [v.uuid for v in vms]))
    if not plan.moves:
        return f"{host} has no VM: nothing to move"
    limit = parallel or fleet.evacuate_parallel
    ctx.progress(0.0, f"{len(plan.runnable)} of {len(plan.moves)} to move, {limit} at a time")
    outcomes = ctx.on_loop(lambda: run_moves(fleet, plan, limit, ctx.cancel_event, ctx.progress))
    ctx.poll_soon(host)
    for m in plan.runnable:
        if m.dest:
            ctx.poll_soon(m.dest)
    line = summary(host, outcomes)
    if ctx.cancelled:
        raise TaskCancelled(f"cancelled: {line}")
    if any(state != "done" for _m, state, _why in outcomes):
        raise ActionError(line)  # not empty: whoever waits on it (a script, maintenance) must know
    return line


async def plan_for(fleet: Fleet, host: str) -> Plan:
    """The plan as it would run now: the published state and the host's answer on its VMs' storage."""
    uuids = [v.uuid for v in fleet.state.vms_on(host)]
    storage = await fleet.ask(host, storage_of, uuids)
    return plan_evacuation(fleet.state, host, storage)


async def _plan_lines(fleet: Any, host: str, _args: dict[str, Any]) -> list[str]:
    return (await plan_for(fleet, host)).lines()


async def run_moves(
    fleet: Fleet, plan: Plan, limit: int, cancel: threading.Event, progress: Progress
) -> list[tuple[Move, str, str]]:
    """Run the plan's moves, at most `limit` at once, each on a lane of its own; (move, how it ended, why)
    for each VM of the plan (refused ones included, in the plan's order)."""
    ends: dict[str, tuple[str, str]] = {m.uuid: ("refused", m.refusal or "") for m in plan.moves if m.refusal}
    waiting = list(plan.runnable)
    running: dict[asyncio.Future[Any], tuple[Task, Move, str]] = {}
    free = [f"{plan.host}-move-{i}" for i in range(limit)]
    total = len(plan.runnable)
    cancelled = False

    def say() -> None:
        done = total - len(waiting) - len(running)
        moving = ", ".join(f"{m.vm} to {m.dest}" for _t, m, _lane in running.values())
        pct = done * 100.0 / total if total else 100.0
        progress(min(pct, 99.0), f"{done} of {total} done" + (f"; moving {moving}" if moving else ""))

    while waiting or running:
        if cancel.is_set() and not cancelled:
            cancelled = True
            for m in waiting:
                ends[m.uuid] = ("cancelled", "the evacuation was cancelled before it moved")
            waiting = []
            for t, _m, _lane in running.values():
                fleet.tasks.cancel(t.id)
        while waiting and free:
            move, lane = waiting.pop(0), free.pop(0)
            task = _start(fleet, plan.host, move, lane)
            if task.state.finished:  # refused at once: the state changed since the plan
                ends[move.uuid] = (str(task.state), task.error)
                free.append(lane)
                continue
            running[asyncio.ensure_future(task.done.wait())] = (task, move, lane)
        say()
        if not running:
            continue
        done, _ = await asyncio.wait(list(running), timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
        for fut in done:
            task, move, lane = running.pop(fut)
            free.append(lane)
            ends[move.uuid] = (str(task.state), task.result if task.ok else task.error)
    say()
    return [(m, *ends.get(m.uuid, ("cancelled", "not started"))) for m in plan.moves]


def _start(fleet: Fleet, host: str, move: Move, lane: str) -> Task:
    """The move as a migrate task on `lane`, checked against the state of now like any migration."""
    act, args = MIGRATE, move.args
    vm = fleet.state.vms.get(f"{host}/{move.uuid}")
    why = f"{move.vm} is no longer on {host}" if vm is None else act.refusal(vm, args, fleet.state)
    if why is not None:
        return fleet.tasks.refuse(host, act.name, why, vm=move.vm, args=args)
    uuid = move.uuid

    def run(ctx: TaskContext) -> str | None:
        return act.run(ctx, domain(ctx, uuid), **args)

    def abort(conn: Any) -> None:
        assert act.abort is not None
        act.abort(conn, uuid)

    return fleet.tasks.submit(
        host, act.name, run, vm=move.vm, uuid=uuid, args=args, abort=abort, timeout=act.timeout, lane=lane
    )


def _check(host: HostState, args: dict[str, Any], state: FleetState) -> str | None:
    parallel = args.get("parallel", 0)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 0:
        return (
            f"parallel must be a whole number of moves at once (0: the configured number), not {parallel!r}"
        )
    if not state.vms_on(host.name):
        return f"{host.name} has no VM: nothing to move"
    return None


def _abort(_conn: Any, _uuid: str) -> None:
    """Nothing to abort on the host: the cancel flag is set, the moves see it (run_moves)."""


ACTIONS: tuple[Action, ...] = (
    Action(
        "evacuate",
        "Evacuate",
        "Move every VM away: running ones live (disks copied where not shared), shut-off ones cold; "
        "destinations by placement; a plan first, then the moves several at a time",
        evacuate,
        params=(
            Param(
                "parallel",
                "int",
                "moves at once (0: [defaults] evacuate_parallel)",
                default=0,
                low=0,
                high=64,
                asked=False,
                metavar="N",
            ),
        ),
        target="host",
        check=_check,
        needs="admin",
        destructive=True,
        plan=_plan_lines,
        abort=_abort,
        timeout=EVACUATE_TIMEOUT,
        key="E",
        bulk=False,
    ),
)
