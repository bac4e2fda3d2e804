"""Fleet: every host session, the tick that polls them, and the one immutable FleetState it publishes.

A tick starts a poll on every connected host whose last poll has ended (ticks never overlap), waits for
them up to the tick's deadline, marks the late ones degraded and publishes one snapshot. Events and late
polls publish at once (coalesced: several changes in one loop iteration give one snapshot). Subscribers get
FleetState objects, never sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import libvirt

from vimtui.core import metrics
from vimtui.core.fleet.activity import ActivityLog
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.host_figures import HostFigures
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.maintenance import Maintenance
from vimtui.core.fleet.pool_watch import PoolWatch
from vimtui.core.fleet.scope import TenantScope
from vimtui.core.fleet.tasks import TaskManager
from vimtui.core.model import FleetState, HostState, VmState
from vimtui.core.monitor.alerts import DEFAULT_RULES, Alert, AlertEngine, Rule, record_alert
from vimtui.core.monitor.hook import HookRunner
from vimtui.core.monitor.rings import History
from vimtui.core.poll.eventloop import ensure_event_impl, silence_libvirt_errors
from vimtui.core.poll.host_keys import HostKeyCheck, Listed, check_host_key, trust_recorded
from vimtui.core.poll.lane import CallTimeout
from vimtui.core.poll.session import HostEvent, HostSession, NotConnected, SessionSettings
from vimtui.core.poll.transport import known_hosts_files

if TYPE_CHECKING:
    from vimtui.core.monitor.archive import Archive

EVENT_LOG_SIZE = 1000

Subscriber = Callable[[FleetState], None]


def _by_name(item: tuple[str, VmState]) -> str:
    """The sort key of a (key, VmState) item: the VM's name."""
    return item[1].name


T = TypeVar("T")


PUBLISH_GAP = 0.25
"""Seconds at least between a publish and the next one made for a change outside a tick."""
SPREAD_SHARE = 0.25
"""The share of the interval over which a tick's polls start, one host after another (see Fleet.tick)."""
MAX_GAP = 0.02
"""At most this many seconds between two hosts' poll starts (a few hosts need no quarter of a second)."""


class QueryFailed(Exception):
    """A question asked of a host (Fleet.ask) could not be answered; the message says why."""


class Fleet:
    def __init__(
        self,
        specs: Iterable[HostSpec],
        settings: SessionSettings,
        runtime_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        audit: AuditLog | None = None,
        alert_rules: Iterable[Rule] = DEFAULT_RULES,
        hook: HookRunner | None = None,
        archive: Archive | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        """Wall time for snapshots, history and the activity log (injectable for reproducible screens)."""
        self.sessions: dict[str, HostSession] = {}
        for spec in specs:
            self.sessions[spec.name] = HostSession(
                spec,
                settings,
                runtime_dir,
                on_change=self._changed,
                on_event=self._event,
                on_polled=self._changed_unless_ticking(spec.name),
                on_gone=self._gone,
                clock=clock,
            )
        self._ticking: set[str] = set()
        """Hosts whose polls the running tick waits for: it publishes for them."""
        self._published_at = float("-inf")
        """The event loop's time of the last publish (see _changed)."""
        self.vm_history = History(
            metrics=metrics.history_names("vm"), percent=metrics.percent_history_names("vm")
        )
        self.host_history = History(
            metrics=metrics.history_names("host"), percent=metrics.percent_history_names("host")
        )
        self._vm_values = metrics.history_row("vm")
        self._vm_rates_row = metrics.rates_row("vm")
        """The same from a VM's VmRates, one C call (None unless every VM history metric is a rates field)."""
        self._no_values = (None,) * len(self.vm_history.metrics)
        self._host_values = metrics.history_row("host")
        """A subject's history values (the registry's history metrics), in the history's order."""
        self.events: deque[HostEvent] = deque(maxlen=EVENT_LOG_SIZE)
        self.activity = ActivityLog()
        """What the task log shows: host status changes, libvirt events, and (later) tasks."""
        self.state = FleetState(
            version=0, time=self.clock(), hosts=tuple(s.state for s in self.sessions.values())
        )
        self._subscribers: list[Subscriber] = []
        self._publish_handle: asyncio.Handle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._updated = asyncio.Condition()
        self._waiters = 0
        """wait_for() calls in progress: only they need waking up when a state is published."""
        self.alerts = AlertEngine(alert_rules, clock=clock)
        """Evaluated on every published state and on each libvirt event (crashes fire at once)."""
        self.hook = hook
        """Run with each alert that fires or resolves (JSON on stdin), off the loop; its failures go to
        the log unless it reports them elsewhere."""
        if hook is not None and hook.on_problem is None:
            hook.on_problem = self._hook_failed
        self.archive = archive
        """The lasting history (SQLite, its own writer thread): every poll's values, events and alerts."""
        self.evacuate_parallel = 2
        """Moves a host evacuation runs at once unless it says ([defaults] evacuate_parallel)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early_problems: list[Callable[[], None]] = []
        self._described: dict[str, tuple[str, str]] = {}
        """What the archive was last told of each key (see _describe)."""
        self._described_roster: dict[str, tuple[object, str | None]] = {}
        """Per host: its roster and the scope's tenant when its VMs were last described."""
        self._name_order: dict[str, tuple[object, tuple[str, ...]]] = {}
        """Per host: its roster (HostSession.roster) and its VMs' keys in name order then."""
        self.figures = HostFigures()
        """What a publish adds to each host's state: its VMs' load, maintenance mark and pools."""
        self.maintenance = Maintenance(None, self.figures)
        """Which hosts are in maintenance (make_fleet gives it its file in the data dir)."""
        self.scope: TenantScope | None = None
        """The tenant scope (tenant, quotas) applied to each published state; None: the state as is."""
        self.pools = PoolWatch(self)
        """Reads the hosts' storage pools every few minutes (while ticking), into `figures`."""
        self.ticks = 0
        self.tasks = TaskManager(self, audit)
        """Every action runs as a task here (one task lane per host, beside its poll lane)."""

    # -- life -------------------------------------------------------------------------------------

    async def start(self, *, tick: bool = True) -> None:
        silence_libvirt_errors()
        ensure_event_impl()
        loop = self._loop = asyncio.get_running_loop()
        if self.tasks.host_audit is not None:
            self.tasks.host_audit.bind(loop)
        while self._early_problems:
            self._early_problems.pop(0)()
        for s in self.sessions.values():
            self._tasks.append(loop.create_task(s.run(), name=f"host-{s.spec.name}"))
        if tick:
            self._tasks.append(loop.create_task(self._tick_loop(), name="fleet-tick"))
            self._tasks.append(loop.create_task(self.pools.run(), name="fleet-pools"))

    async def stop(self) -> None:
        await self.tasks.close()
        if self.hook is not None:
            await self.hook.close()
        if self.archive is not None:
            await asyncio.to_thread(self.archive.close)  # writes what it holds: a blocking last pass
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*(s.close() for s in self.sessions.values()), return_exceptions=True)
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- ticks ------------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.tick(spread=self.settings.interval * SPREAD_SHARE)
            # the next tick is armed when this one has ended: never two at once
            await asyncio.sleep(max(0.0, started + self.settings.interval - loop.time()))

    async def tick(self, deadline: float | None = None, spread: float = 0.0) -> FleetState:
        """Poll every connected host once (those still busy with their last poll are skipped), their
        starts spread evenly over `spread` seconds: each lane then parses its records while the others
        wait on their hosts, not all at once fighting for the interpreter (bench/fleet.py: at 50 hosts
        the lanes' hand-overs cost more than their work). Publishes when every poll has ended, or
        `deadline` (default: the interval) after the last one started."""
        loop = asyncio.get_running_loop()
        names = list(self.sessions)
        gap = min(spread / len(names), MAX_GAP) if spread > 0 and len(names) > 1 else 0.0
        first = loop.time()
        polls: dict[str, asyncio.Task[None] | None] = {}
        try:
            for i, name in enumerate(names):
                if gap and i:
                    await asyncio.sleep(max(0.0, first + i * gap - loop.time()))
                session = self.sessions.get(name)
                if session is None:  # removed meanwhile
                    continue
                task = polls[name] = session.start_poll()
                if task is not None:
                    self._ticking.add(name)
            running = [t for t in polls.values() if t is not None]
            if running:
                await asyncio.wait(running, timeout=deadline or self.settings.interval)
        finally:
            self._ticking = set()
        for name, task in polls.items():
            if task is not None and not task.done() and name in self.sessions:
                self.sessions[name].note_late()
        self.ticks += 1
        return self.publish()

    def _record_history(self, s: HostSession) -> None:
        """Every poll of a host goes into the history (at the poll, so what it holds does not depend on
        when the poll ended relative to a tick)."""
        t = self.clock()
        archive = self.archive
        if s.state.last_poll and s.state.rates is not None:
            host_values = dict(zip(self.host_history.metrics, self._host_values(s.state, t), strict=True))
            self.host_history.record(s.spec.name, t, host_values)
            if archive is not None:
                archive.add(s.spec.name, t, host_values)
        # one pass for all the host's VMs (a session's keys are its VMs' `key`s)
        # a VM with nothing to record (shut off; no counters yet) takes no ring and writes no row
        values, get, nothing = self._vm_values, self._vm_rates_row, self._no_values
        if get is not None:  # every VM at every poll: no Python call a VM
            rows = [
                (key, row)
                for key, vm in s.vms.items()
                if (r := vm.rates) is not None and not vm.stale and (row := get(r)) != nothing
            ]
        else:
            rows = [
                (key, row)
                for key, vm in s.vms.items()
                if vm.rates is not None and not vm.stale and (row := values(vm, t)) != nothing
            ]
        if self.scope is not None and self.scope.tenant is not None:  # other tenants' VMs are not kept
            rows = self.scope.own_rows(rows, s.vms)
        self.vm_history.record_many(t, rows)
        if archive is not None:
            archive.add_many(t, self.vm_history.metrics, rows)
            self._describe(s)

    def _describe(self, s: HostSession) -> None:
        """Tell the archive who its keys are (name, host, group, tenant) when that is new or changed: the
        history outlives the VMs, and a report names them."""
        assert self.archive is not None
        described = self._described
        group = s.spec.group
        host = s.spec.name
        if described.get(host) != ("host", group):
            described[host] = ("host", group)
            self.archive.describe(host, {"kind": "host", "host": host, "group": group})
        # who the VMs are changes only with the roster (VMs, names, details): not at every poll
        seen = (s.roster, None if self.scope is None else self.scope.tenant)
        if self._described_roster.get(host) == seen:
            return
        self._described_roster[host] = seen
        for key, vm in s.vms.items():
            tenant = (vm.details.tenant or "") if vm.details is not None else ""
            if self.scope is not None and self.scope.tenant not in (None, tenant):
                continue
            if described.get(key) != (vm.name, tenant):
                described[key] = (vm.name, tenant)
                info = {"kind": "vm", "name": vm.name, "host": host, "group": group, "uuid": vm.uuid}
                self.archive.describe(key, info | {"tenant": tenant})

    def _gone(self, keys: list[str]) -> None:
        """VMs gone from their host (undefined, migrated away): their rings and what the archive was told
        of them are forgotten (the archive keeps their history; a VM that comes back starts anew)."""
        for key in keys:
            self.vm_history.drop(key)
            self._described.pop(key, None)

    def _hook_failed(self, alert: Alert, problem: str) -> None:
        self.activity.add(alert.host, alert.vm, "alert hook", "failed", message=problem, error=problem)

    def archive_problem(self, message: str) -> None:
        """The archive's trouble (corrupt, locked, disk full), from any thread: into the log."""

        def log() -> None:
            self.activity.add("", "", "history", "failed", time=self.clock(), message=message, error=message)
            self._changed()

        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(log)
        else:
            self._early_problems.append(log)  # before start(): logged by it, on the loop

    # -- publishing -------------------------------------------------------------------------------

    async def ask(self, host: str, fn: Callable[..., T], *args: Any) -> T:
        """Run the read-only question `fn(conn, *args)` on `host`'s lane (detail screens, forms): the one
        door through which the screen reaches a host. Any failure is a QueryFailed saying why."""
        session = self.sessions.get(host)
        if session is None:
            raise QueryFailed(f"{host}: no such host")
        try:
            return await session.call(fn, *args)
        except (NotConnected, CallTimeout, libvirt.libvirtError) as exc:
            raise QueryFailed(str(exc)) from exc

    async def host_key(self, host: str) -> HostKeyCheck:
        """The key `host` offers over SSH and what its known_hosts files hold for it (the trust prompt's
        facts). Raises HostKeyError when it cannot be read or judged, QueryFailed for a host not over SSH."""
        spec = self._ssh_spec(host)
        return await check_host_key(spec, known_hosts_files(spec), self.settings.connect_timeout)

    async def trust_host_key(self, check: HostKeyCheck) -> Listed:
        """Add the key of `check` (unknown, and accepted by the operator) to the host's trust file, with an
        audit record, then have the host connect now rather than at its next retry. Raises HostKeyError
        when refused (a changed or revoked key: recorded as refused)."""
        entry = await asyncio.to_thread(trust_recorded, check, self.tasks.audit, self.clock())
        session = self.sessions.get(check.spec.name)
        if session is not None:
            session.retry_now()
        return entry

    def _ssh_spec(self, host: str) -> HostSpec:
        session = self.sessions.get(host)
        if session is None:
            raise QueryFailed(f"{host}: no such host")
        if session.spec.transport != "ssh":
            raise QueryFailed(f"{host}: opened directly ({session.spec.uri}), not over SSH: no host key")
        return session.spec

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def _changed(self) -> None:
        """A session changed outside a tick (event, status, late poll, addresses read): publish soon,
        coalesced, and not sooner than PUBLISH_GAP after the last publish: each publish costs every
        subscriber a pass over every VM (alerts, the screen), and side work or late polls of many hosts
        would otherwise publish many times a second."""
        if self._publish_handle is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the next tick publishes
                loop = asyncio.get_running_loop()
                wait = self._published_at + PUBLISH_GAP - loop.time()
                if wait > 0:
                    self._publish_handle = loop.call_later(wait, self.publish)
                else:
                    self._publish_handle = loop.call_soon(self.publish)

    def notify(self) -> None:
        """Something subscribers show changed outside the sessions (a task's progress): publish soon."""
        self._changed()

    def _changed_unless_ticking(self, name: str) -> Callable[[], None]:
        """A poll ended: record it; the tick waiting for it publishes, a late one publishes on its own."""

        def polled() -> None:
            self._record_history(self.sessions[name])
            if name not in self._ticking:
                self._changed()

        return polled

    def _event(self, event: HostEvent) -> None:
        if self.scope is not None and not self.scope.sees(self.state, event.host, event.uuid):
            return
        self.events.append(event)
        self.activity.add(event.host, event.vm, event.kind, time=event.time, message=event.detail)
        if self.archive is not None and event.uuid:
            self.archive.note(f"{event.host}/{event.uuid}", event.time, event.kind, event.detail)
        self._alerted(self.alerts.on_event(event))

    def _alerted(self, alerts: list[Alert]) -> None:
        """Alerts that fired or resolved: into the log, the archive and the hook. (The state that lists
        them is the one being published, or, for an event's, the one its session's change publishes.)"""
        for alert in alerts:
            record_alert(self.activity, alert)
            if self.archive is not None:
                at = alert.fired_at if alert.firing else (alert.resolved_at or alert.fired_at)
                self.archive.note(alert.key, at, f"alert {alert.state}", f"{alert.severity}: {alert.message}")
            if self.hook is not None:
                self.hook.submit(alert)

    def publish(self) -> FleetState:
        if self._publish_handle is not None:
            self._publish_handle.cancel()
            self._publish_handle = None
        with contextlib.suppress(RuntimeError):
            self._published_at = asyncio.get_running_loop().time()
        hosts: list[HostState] = []
        vms: dict[str, VmState] = {}
        name_order = self._name_order
        figures = self.figures
        for name, s in self.sessions.items():
            host_vms = s.vms  # replaced, never changed in place
            hosts.append(figures.compose(s.state, host_vms))
            # the name order stands while the roster does (every poll makes new VmStates, not new names)
            roster = s.roster
            kept = name_order.get(name)
            if kept is not None and kept[0] is roster and len(kept[1]) == len(host_vms):
                try:  # a session's keys are its VMs' `key`s
                    vms.update(zip(kept[1], map(host_vms.__getitem__, kept[1]), strict=True))
                    continue
                except KeyError:  # the roster missed a change: work the order out again
                    pass
            order = tuple(key for key, _vm in sorted(host_vms.items(), key=_by_name))
            name_order[name] = (roster, order)
            vms.update(zip(order, map(host_vms.__getitem__, order), strict=True))
        now = self.clock()
        before = {h.name: h.status for h in self.state.hosts}
        for h in hosts:
            if before.get(h.name) not in (None, h.status):
                kind = "failed" if not h.status.healthy else "event"
                if self.archive is not None:  # a host's state changes, for reports
                    self.archive.note(h.name, now, "state", f"{h.status}: {h.message}".rstrip(": "))
                self.activity.add(
                    h.name,
                    "",
                    f"host {h.status}",
                    kind,
                    time=now,
                    message=h.message,
                    error=h.message if kind == "failed" else "",
                )
        state = FleetState(
            version=self.state.version + 1, time=now, hosts=tuple(hosts), vms=MappingProxyType(vms)
        )
        if self.scope is not None:
            state = self.scope.apply(state)
        transitions = self.alerts.evaluate(state, state.time)
        self.state = replace(state, alerts=tuple(self.alerts.active))
        self._alerted(transitions)
        for fn in list(self._subscribers):
            fn(self.state)
        if self._waiters:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(self._notify())
        return self.state

    async def _notify(self) -> None:
        async with self._updated:
            self._updated.notify_all()

    async def wait_for(self, predicate: Callable[[FleetState], object], within: float) -> FleetState:
        """Wait until a published state satisfies predicate; TimeoutError at the deadline."""

        async def waiter() -> FleetState:
            self._waiters += 1
            try:
                async with self._updated:
                    while not predicate(self.state):
                        await self._updated.wait()
                    return self.state
            finally:
                self._waiters -= 1

        return await asyncio.wait_for(waiter(), within)

    async def connected(self, within: float) -> FleetState:
        """Wait until every host has left `connecting` (up, or failed with a reason)."""
        return await self.wait_for(lambda st: all(h.status != "connecting" for h in st.hosts), within)
