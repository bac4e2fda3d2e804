"""What every action is: a plain blocking function of (TaskContext, target, **arguments) run on the host's
lane, returning a line saying what it did, declared once with everything the faces need: its id and key,
what it applies to and when it is refused, whether it destroys something (and what its preview lists), and
its parameters as typed data. Keys, palette, `:` commands, forms, CLI verbs, dry runs and audit records are
all made from the declaration."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import libvirt

from vimtui.core.actions.params import Param
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.model import FleetState, VmState

ActionFn = Callable[..., str]
Check = Callable[[Any, dict[str, Any], FleetState], str | None]
Preview = Callable[[Any, str, dict[str, Any]], Sequence[str]]
"""fn(conn, uuid, args): the lines of what it would do, asked of the host on its lane (a delete's volumes)."""
TargetKind = Literal["vm", "host", "pool", "volume", "network"]

RUNNING = frozenset({"running"})
ACTIVE = frozenset({"running", "paused", "blocked", "pmsuspended"})
INACTIVE = frozenset({"shutoff", "crashed"})


@dataclass(frozen=True)
class Action:
    name: str
    """Verb: `vimtui vm NAME`, `:NAME`, the task log."""
    title: str
    help: str
    run: ActionFn
    params: tuple[Param, ...] = ()
    target: TargetKind = "vm"
    states: frozenset[str] | None = None
    """The states it applies to (None: any)."""
    not_applicable: str = ""
    """Why not, in other states: '{vm} is {state}: ...' is prefixed."""
    check: Check | None = None
    """Further checks before anything is touched (arguments, names, other hosts); returns why not."""
    mutates: bool = True
    """Refused on read-only hosts."""
    destructive: bool = False
    """Asks first (with what goes), and is audited like every task."""
    preview: Preview | None = None
    abort: Callable[[Any, str], None] | None = None
    """Given the domain's connection and uuid, stops the running job (abortJob): cancellable while running."""
    timeout: float = 300.0
    key: str = ""
    """Default key wherever a target of its kind is selected ('' = palette and `:` only)."""
    bar: bool = False
    """Shown in the key bar when it applies to the selection (the view's main actions)."""
    bulk: bool = True
    """Offered for a marked selection."""
    note: str = ""
    """A line the form shows above its fields."""
    ok: str = ""
    """The form's button (default: the title)."""
    opens: str = ""
    """Not a form but an interactive step first ('editor': the domain XML in $EDITOR)."""

    @property
    def id(self) -> str:
        """`vm.start`: the binding id in [keys], the palette's and the audit's name for it."""
        return f"{self.target}.{self.name}"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def state_refusal(self, vm: VmState, state: FleetState) -> str | None:
        """Why it cannot run on `vm` whatever the arguments (greys the key and the palette entry)."""
        if self.states is not None and vm.state not in self.states:
            why = self.not_applicable or f"{self.name} needs it {' or '.join(sorted(self.states))}"
            return f"{vm.name} is {vm.state}: {why}"
        host = state.host(vm.host)
        if host is None or not host.status.healthy:
            status = host.status if host else "not in the inventory"
            return f"host {vm.host} is {status}"
        if self.mutates and host.read_only:
            return f"host {vm.host} is connected read-only"
        for p in self.params:
            if p.required and p.kind == "choice" and p.from_state is not None and not p.from_state(vm, state):
                return f"{vm.name}: no {p.title} to choose from"
        return None

    def refusal(self, vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
        """Why this action cannot run on `vm` now with `args` (None: it can). Touches nothing."""
        why = self.state_refusal(vm, state)
        if why is not None:
            return why
        if vm.stale:
            return f"{vm.name}: its host's last poll failed; its state is not known"
        if self.check is not None:
            return self.check(vm, args, state)
        return None


VmAction = Action
"""The name the action modules declared with before other target kinds existed."""


def domain(ctx: TaskContext, uuid: str) -> Any:
    try:
        return ctx.conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise ActionError(f"the VM is no longer defined on {ctx.host}") from exc
        raise


def dom_state(dom: Any) -> int:
    return int(dom.state()[0])


@contextmanager
def job_progress(ctx: TaskContext, dom: Any, label: str, interval: float = 0.5) -> Iterator[None]:
    """While the body runs a libvirt job (migration, save, snapshot ...), report its progress from the job
    stats, read on a thread of its own (a libvirt connection takes calls from several threads)."""
    stop = threading.Event()

    def watch() -> None:
        shown = 0.0  # never backwards: a migration's totals grow as it finds more to copy
        while not stop.wait(interval):
            try:
                stats = dom.jobStats()
            except libvirt.libvirtError:
                continue
            pct, text = job_percent(stats)
            if pct is not None:
                shown = max(shown, pct)
                ctx.progress(shown, f"{label}: {text}")

    thread = threading.Thread(target=watch, name=f"job-{ctx.host}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def job_percent(stats: dict[str, Any]) -> tuple[float | None, str]:
    """Percent done and a short text from virDomainGetJobStats (None when the job reports no totals)."""
    total = stats.get("data_total") or stats.get("disk_total") or stats.get("memory_total")
    remaining = stats.get("data_remaining")
    if total and remaining is not None:
        done = total - remaining  # processed counts pages sent again: it can pass what is left to send
    else:
        done = stats.get("data_processed")
        if done is None:
            done = (stats.get("disk_processed") or 0) + (stats.get("memory_processed") or 0)
    if not total:
        return None, ""
    pct = max(0.0, min(99.0, done * 100.0 / total))
    text = f"{done / 2**20:,.0f} of {total / 2**20:,.0f} MiB"
    if remaining is not None:
        text += f", {remaining / 2**20:,.0f} MiB left"
    passes = stats.get("memory_iteration") or 0
    if passes > 1:  # pages the guest wrote meanwhile are sent again: say so, or the figures seem to go back
        text = f"pass {passes}: {text}"
    return pct, text


__all__ = [
    "ACTIVE",
    "INACTIVE",
    "RUNNING",
    "Action",
    "ActionError",
    "Param",
    "VmAction",
    "domain",
    "dom_state",
    "job_progress",
    "job_percent",
]
