"""What every action is: a plain blocking function of (TaskContext, target, **arguments) run on the host's
lane, returning a line saying what it did, declared once with everything the faces need: its id and key,
what it applies to and when it is refused, whether it destroys something (and what its preview lists), and
its parameters as typed data. Keys, palette, `:` commands, forms, CLI verbs, dry runs and audit records are
all made from the declaration."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import libvirt

from vimtui.core.actions.params import Param
from vimtui.core.fleet import quotas
from vimtui.core.fleet.tasks import ActionError, TaskContext
from vimtui.core.model import FleetState, HostState, VmState
from vimtui.core.profiles import Profile, refusal

ActionFn = Callable[..., str]
Check = Callable[[Any, dict[str, Any], FleetState], str | None]
Preview = Callable[[Any, str, dict[str, Any]], Sequence[str]]
"""fn(conn, uuid, args): the lines of what it would do, asked of the host on its lane (a delete's volumes);
for a pool, volume or network, fn(conn, name, args) with its name in its host (`POOL/VOL`)."""
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
    templates: Literal["any", "not", "only"] = "any"
    """Whether it applies to a VM marked as a template (templates.py): start and delete do "not", unmarking
    does "only"."""
    check: Check | None = None
    """Further checks before anything is touched (arguments, names, other hosts); returns why not."""
    mutates: bool = True
    """Refused on read-only hosts."""
    needs: Profile = "operator"
    """The least profile allowed to run it (an action that only reads may say 'viewer')."""
    destructive: bool = False
    """Asks first (with what goes), and is audited like every task."""
    preview: Preview | None = None
    plan: Callable[[Any, str, dict[str, Any]], Awaitable[Sequence[str]]] | None = None
    """fn(fleet, host, args): what a host action would do, worked out from the fleet's state and its hosts'
    answers (an evacuation's moves), in place of `preview`."""
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
    creates: bool = False
    """Makes the pool, volume or network it names (define, create): a form asks the new one's name, within
    the selected host (a pool) or pool (a volume)."""
    connects: bool = True
    """Runs on the target host's libvirt connection (False: on vimtui's own records, such as a host's
    maintenance mark, so it runs while the host does not answer)."""
    own_lane: bool = False
    """Runs on a task lane of its own (one per target) rather than its host's: a volume transfer, which goes
    chunk by chunk through the host's connection for minutes, while other actions on the host go on."""
    new_vm: str = ""
    """A host action that makes a VM: the parameter naming it (the task log's and the audit's VM)."""
    adds: quotas.Adds | None = None
    """What it adds to the tenant of its VM (vCPUs, memory, a VM, disk), so the tenant's quota is checked
    before it runs: fn(vm, args, state) -> quotas.Use (a change: the difference, new minus old)."""

    @property
    def id(self) -> str:
        """`vm.start`: the binding id in [keys], the palette's and the audit's name for it."""
        return f"{self.target}.{self.name}"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def profile_refusal(self, host: HostState) -> str | None:
        """Why the profile on `host` may not run it (None: it may): the CLI's exit 2, the screen's grey."""
        return refusal(host.profile, self.needs, host.name, self.title)

    def state_refusal(self, vm: VmState, state: FleetState) -> str | None:
        """Why it cannot run on `vm` whatever the arguments (greys the key and the palette entry)."""
        host = state.host(vm.host)
        if host is not None and (why := self.profile_refusal(host)) is not None:
            return why
        if self.states is not None and vm.state not in self.states:
            why = self.not_applicable or f"{self.name} needs it {' or '.join(sorted(self.states))}"
            return f"{vm.name} is {vm.state}: {why}"
        if self.templates != "any" and vm.details is not None:
            if self.templates == "not" and vm.details.template:
                return (
                    f"{vm.name} is a template: {self.title.lower()} refused; unmark it first (vm untemplate)"
                )
            if self.templates == "only" and not vm.details.template:
                return f"{vm.name} is not a template"
        if host is None or not host.status.healthy:
            status = host.status if host else "not in the inventory"
            return f"host {vm.host} is {status}"
        if self.mutates and host.read_only:
            return f"host {vm.host} is connected read-only"
        for p in self.params:
            if p.required and p.kind == "choice" and p.from_state is not None and not p.from_state(vm, state):
                return f"{vm.name}: no {p.title} to choose from"
        return None

    def refusal(
        self,
        vm: VmState,
        args: dict[str, Any],
        state: FleetState,
        pending: Mapping[str, quotas.Use] | None = None,
    ) -> str | None:
        """Why this action cannot run on `vm` now with `args` (None: it can). Touches nothing. `pending`:
        what earlier steps of the same request add to each tenant (their quota is checked with it)."""
        why = self.state_refusal(vm, state)
        if why is not None:
            return why
        if vm.stale:
            return f"{vm.name}: its host's last poll failed; its state is not known"
        if self.check is not None and (why := self.check(vm, args, state)) is not None:
            return why
        if self.adds is not None and state.quotas:
            return quotas.refusal(vm, self.adds(vm, args, state), state, pending)
        return None

    def host_state_refusal(self, host: HostState, state: FleetState) -> str | None:
        """Why a host action (or one on a pool, volume or network of `host`) cannot run on `host` whatever
        the arguments (greys its key and palette entry)."""
        if self.target == "vm":
            return f"{self.title} applies to a VM, not to a host"
        if (why := self.profile_refusal(host)) is not None:
            return why
        if self.connects and not host.status.healthy:
            return f"host {host.name} is {host.status}" + (f": {host.message}" if host.message else "")
        if self.connects and self.mutates and host.read_only:
            return f"host {host.name} is connected read-only"
        return None

    def host_refusal(self, host: HostState, args: dict[str, Any], state: FleetState) -> str | None:
        """Why this host action cannot run on `host` now with `args` (None: it can). Touches nothing."""
        why = self.host_state_refusal(host, state)
        if why is None and self.check is not None:
            why = self.check(host, args, state)
        return why


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
    "Profile",
    "VmAction",
    "domain",
    "dom_state",
    "job_progress",
    "job_percent",
]
