"""HostSession: one host's connection, state machine, lane, polls and events.

States: connecting -> up; up -> degraded (a poll missed its tick) -> up again, or -> unreachable (a call
missed its deadline, the SSH link or libvirt connection dropped); connect failures end in unreachable,
auth-failed or hostkey-mismatch; an unexpected error (a setting libvirt or SSH will not take, a bug) in
error, with its message. From any failure the session reconnects on its own, with exponential
backoff and jitter. Every libvirt call runs on the host's lane, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import libvirt

from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.model import (
    DOMAIN_STATES,
    HostInfo,
    HostState,
    HostStatus,
    LocalMetrics,
    VmState,
    state_name,
)
from vimtui.core.poll.domxml import DomainDetails, parse_domain_xml
from vimtui.core.poll.lane import CallTimeout, Lane
from vimtui.core.poll.stats import (
    DomainSample,
    NodeSample,
    VmRates,
    host_rates,
    parse_domain_stats,
    parse_node,
    vm_rates,
)
from vimtui.core.poll.transport import SshOptions, SshTunnel, TransportError

log = logging.getLogger(__name__)
T = TypeVar("T")


class NotConnected(Exception):
    """The host has no libvirt connection right now (its status says why)."""


STATS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
_PER_DOMAIN = threading.Lock()
"""Held by the lane that reads its bulk call's records (see HostSession._poll_blocking)."""
IP_REFRESH = 30.0
"""Seconds between address look-ups of one running VM."""
IP_BATCH = 16
"""VMs whose addresses are looked up after one poll (the rest wait for later polls)."""

# lifecycle event -> the state the domain is in after it
_EVENT_STATE = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: libvirt.VIR_DOMAIN_RUNNING,
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: libvirt.VIR_DOMAIN_PAUSED,
    libvirt.VIR_DOMAIN_EVENT_RESUMED: libvirt.VIR_DOMAIN_RUNNING,
    libvirt.VIR_DOMAIN_EVENT_STOPPED: libvirt.VIR_DOMAIN_SHUTOFF,
    libvirt.VIR_DOMAIN_EVENT_CRASHED: libvirt.VIR_DOMAIN_CRASHED,
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: libvirt.VIR_DOMAIN_PMSUSPENDED,
}
EVENT_NAMES = (
    "defined",
    "undefined",
    "started",
    "suspended",
    "resumed",
    "stopped",
    "shutdown",
    "pmsuspended",
    "crashed",
)


@dataclass(frozen=True, slots=True)
class HostEvent:
    """Something libvirt told us about a domain, as it happened."""

    time: float
    host: str
    vm: str
    uuid: str
    kind: str
    """lifecycle event name (started, stopped ...), reboot, job-completed, device-added, device-removed."""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    interval: float = 2.0
    call_timeout: float = 10.0
    connect_timeout: float = 10.0
    keepalive_interval: float = 3.0
    keepalive_count_max: int = 2
    host_stats_every: int = 10
    """Node CPU and memory stats every Nth poll (and on the first two after connecting)."""
    backoff_max: float = 30.0
    """Cap of the wait between attempts when the host answered but refused (auth, host key, libvirt)."""
    probe_max: float = 2.0
    """Cap of the wait between reachability probes of a host that does not answer at all."""

    @property
    def poll_timeout(self) -> float:
        """Deadline of one poll: a few ticks, never more than a call's deadline."""
        return min(self.call_timeout, max(3 * self.interval, 4.0))


def backoff(attempt: int, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before reconnect attempt `attempt` (1, 2, 4 ... up to cap), with +-20 % jitter."""
    base = min(cap, 2.0 ** max(attempt - 1, 0))
    return base * (rng or random).uniform(0.8, 1.2)


def is_local_uri(uri: str) -> bool:
    """A hypervisor on this machine (so psutil sees the same host)."""
    parts = urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    return not parts.netloc and transport in ("", "unix") and parts.scheme != "test"


class HostSession:
    """Owns one host. The Fleet starts `run()` and calls `poll()` once per tick."""

    def __init__(
        self,
        spec: HostSpec,
        settings: SessionSettings,
        runtime_dir: Path,
        on_change: Callable[[], None] = lambda: None,
        on_event: Callable[[HostEvent], None] = lambda e: None,
        on_polled: Callable[[], None] | None = None,
        on_gone: Callable[[list[str]], None] = lambda keys: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        """Wall time (injectable, so screen snapshots are reproducible)."""
        self.spec = spec
        self.settings = settings
        self.runtime_dir = runtime_dir
        self._on_change = on_change
        self._on_event = on_event
        self._on_polled = on_polled or on_change
        self._on_gone = on_gone
        """Told the keys of VMs that are gone from the host (undefined, migrated away)."""
        self.lane = Lane(spec.name)
        self._conn: Any = None  # libvirt.virConnect; only touched on the lane
        self._tunnel: SshTunnel | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._lost_status = HostStatus.UNREACHABLE
        self._closing = False
        self._wake = asyncio.Event()
        self._poll_task: asyncio.Task[None] | None = None
        self._side_task: asyncio.Task[None] | None = None
        # the picture (replaced, never mutated in place: readers may hold the old one)
        self.state = HostState(
            name=spec.name,
            group=spec.group,
            address=spec.address,
            uri=spec.uri,
            transport=spec.transport,
            read_only=spec.read_only,
            status=HostStatus.CONNECTING,
            message="",
            status_since=self.clock(),
        )
        self.vms: dict[str, VmState] = {}
        self._samples: dict[str, DomainSample] = {}
        self._uuid_texts: dict[bytes, str] = {}
        """UUID bytes -> text, for the polls (see _uuid_text)"""
        self._keys: dict[str, str] = {}
        """uuid -> the VM's key (host/uuid), kept from one poll to the next"""
        self._node: NodeSample | None = None
        self._polls = 0
        self._details: dict[str, DomainDetails] = {}
        self._dirty: set[str] = set()
        self._event_time: dict[str, float] = {}
        self._ip_time: dict[str, float] = {}
        self.connected = asyncio.Event()

    # -- state ------------------------------------------------------------------------------------

    @property
    def status(self) -> HostStatus:
        return self.state.status

    def _set_status(self, status: HostStatus, message: str = "") -> None:
        if status == self.state.status and message == self.state.message:
            return
        since = self.state.status_since if status == self.state.status else self.clock()
        self.state = replace(self.state, status=status, message=message, status_since=since)
        if not status.healthy:
            self._mark_stale()
        log.info("host %s: %s %s", self.spec.name, status, message)
        self._on_change()

    def _mark_stale(self) -> None:
        self.vms = {k: replace(v, stale=True) if not v.stale else v for k, v in self.vms.items()}

    # -- connection loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, stay connected, reconnect on its own; until close().

        A host that does not answer at all is probed (a TCP connect to its SSH port) every few seconds,
        and connected to as soon as it answers; a host that answers but refuses (auth, host key, libvirt
        down) is retried with exponential backoff and jitter."""
        attempt = 0
        while not self._closing:
            try:
                await self._connect()
            except TransportError as exc:
                self._set_status(HostStatus(exc.kind), str(exc))
            except (libvirt.libvirtError, CallTimeout, OSError) as exc:
                self._set_status(HostStatus.UNREACHABLE, f"libvirt: {_err(exc)}")
            except Exception as exc:  # a setting libvirt or SSH will not take, a bug: shown, and retried
                await self._disconnect()
                log.warning("host %s: cannot connect", self.spec.name, exc_info=True)
                self._set_status(HostStatus.ERROR, f"{_unexpected(exc)} (retrying, attempt {attempt + 1})")
            else:
                attempt = 0
                self._set_status(HostStatus.UP)
                self.connected.set()
                self.start_poll()  # a first picture now, not at the next tick
                await self._lost.wait()
                self.connected.clear()
                if not self._closing:
                    self._set_status(self._lost_status, self._lost_reason)
                await self._disconnect()
            if self._closing:
                break
            attempt += 1
            if self.status == HostStatus.UNREACHABLE and self.spec.transport == "ssh":
                await self._probe_until_answering(attempt)
            else:
                await self._pause(backoff(attempt, self.settings.backoff_max))

    async def _probe_until_answering(self, attempt: int) -> None:
        """Wait until the host's SSH port accepts a connection (or an operator says retry)."""
        while not self._closing:
            await self._pause(backoff(attempt, self.settings.probe_max))
            if self._wake.is_set() or await _port_answers(
                self.spec.address, self.spec.port, self.settings.probe_max
            ):
                return
            attempt += 1

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def close(self) -> None:
        self._closing = True
        self._lost_reason = "closed"
        self._lost.set()
        self._wake.set()
        for task in (self._poll_task, self._side_task):
            if task is not None and not task.done():
                task.cancel()
        await self._disconnect()
        self.lane.close()

    def _drop(self, reason: str, status: HostStatus = HostStatus.UNREACHABLE) -> None:
        """The connection is gone or wedged (or met an unexpected error): let run() tear it down, show
        `status` with the reason, and reconnect."""
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost_status = status
            self._lost.set()

    def _failed(self, what: str, exc: BaseException) -> None:
        """An unexpected error in a poll or its side work: the host shows it, and reconnects."""
        log.warning("host %s: %s failed", self.spec.name, what, exc_info=exc)
        self._drop(f"{what}: {_unexpected(exc)}", HostStatus.ERROR)

    def _drop_if_current(self, conn: Any, reason: str) -> None:
        if conn is self._conn:
            self._drop(reason)

    async def _connect(self) -> None:
        self._lost.clear()
        uri = self.spec.uri
        if self.spec.transport == "ssh":
            opts = SshOptions(
                connect_timeout=self.settings.connect_timeout,
                keepalive_interval=self.settings.keepalive_interval,
                keepalive_count_max=self.settings.keepalive_count_max,
            )
            self._tunnel = SshTunnel(self.spec, self.runtime_dir, opts)
            uri = await self._tunnel.open()
            tunnel = self._tunnel
            asyncio.get_running_loop().create_task(self._watch_tunnel(tunnel))
        loop = asyncio.get_running_loop()
        try:
            self._conn, info = await self.lane.call(
                self.settings.connect_timeout, self._open_blocking, uri, loop
            )
        except BaseException:
            await self._disconnect()
            raise
        self.state = replace(self.state, info=info)
        self._polls = 0  # the first poll after connecting reads the host's counters too

    async def _watch_tunnel(self, tunnel: SshTunnel) -> None:
        await tunnel.wait_closed()
        if tunnel is self._tunnel:
            self._drop("SSH connection lost")

    def _open_blocking(self, uri: str, loop: asyncio.AbstractEventLoop) -> tuple[Any, HostInfo]:
        conn = libvirt.openReadOnly(uri) if self.spec.read_only else libvirt.open(uri)
        try:
            with contextlib.suppress(libvirt.libvirtError):
                conn.setKeepAlive(int(self.settings.keepalive_interval), self.settings.keepalive_count_max)

            def closed(_conn: Any, reason: int, _opaque: Any) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nothing left to tell
                    loop.call_soon_threadsafe(
                        self._drop_if_current, conn, f"libvirt connection closed ({reason})"
                    )

            conn.registerCloseCallback(closed, None)
            self._register_events(conn, loop)
            info = conn.getInfo()
            lib = conn.getLibVersion()
            hv = conn.getVersion()
            host_info = HostInfo(
                hostname=conn.getHostname(),
                hypervisor=conn.getType(),
                hypervisor_version=_version(hv),
                libvirt_version=_version(lib),
                cpus=int(info[2]),
                cpu_mhz=int(info[3]),
                cpu_model=str(info[0]),
                memory_kib=int(info[1]) * 1024,
                local=self.spec.transport == "direct" and is_local_uri(self.spec.uri),
            )
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
            raise
        return conn, host_info

    def _register_events(self, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Callbacks run on the loop (libvirtaio): they only record, never call libvirt."""

        def lifecycle(_c: Any, dom: Any, event: int, detail: int, _o: Any) -> None:
            self._lifecycle(dom.UUIDString(), dom.name(), event, detail)

        def reboot(_c: Any, dom: Any, _o: Any) -> None:
            self._note_event(dom.UUIDString(), dom.name(), "reboot")

        def job_completed(_c: Any, dom: Any, params: Any, _o: Any) -> None:
            self._note_event(dom.UUIDString(), dom.name(), "job-completed")

        def device(kind: str) -> Callable[..., None]:
            def cb(_c: Any, dom: Any, dev: str, _o: Any) -> None:
                self._dirty.add(dom.UUIDString())
                self._note_event(dom.UUIDString(), dom.name(), kind, dev)

            return cb

        def agent(_c: Any, dom: Any, state: int, _reason: int, _o: Any) -> None:
            up = state == libvirt.VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED
            self._note_event(dom.UUIDString(), dom.name(), "agent-connected" if up else "agent-disconnected")

        for event_id, cb in (
            (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle),
            (libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE, agent),
            (libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, reboot),
            (libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, job_completed),
            (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, device("device-added")),
            (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, device("device-removed")),
        ):
            with contextlib.suppress(libvirt.libvirtError):  # a driver without this event
                conn.domainEventRegisterAny(None, event_id, cb, None)

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # closing may block on a dead peer: do it on a fresh thread, never wait for it
            old = self.lane
            self.lane = Lane(self.spec.name)
            old.close()
            loop = asyncio.get_running_loop()
            loop.run_in_executor(None, _close_quietly, conn)
        tunnel, self._tunnel = self._tunnel, None
        if tunnel is not None:
            await tunnel.close()

    def connection(self) -> Any:
        """The open libvirt connection (for the task lane); NotConnected while there is none."""
        conn = self._conn
        if conn is None:
            raise NotConnected(f"{self.spec.name} is {self.status}")
        return conn

    async def refresh(self, within: float) -> None:
        """Poll once more, starting after this call (a poll already running may predate what the caller
        just did): when it returns, the host's state includes it. Never raises; gives up at `within`."""
        if self._conn is None:
            return
        if self.polling and self._poll_task is not None:
            await asyncio.wait([self._poll_task], timeout=within)
        task = self.start_poll()
        if task is not None:
            await asyncio.wait([task], timeout=within)

    def poll_soon(self) -> None:
        """Poll now rather than at the next tick (after a task, so its effect shows at once)."""
        if self._conn is not None and not self.polling:
            self.start_poll()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on this host's lane with the call deadline (detail screens, tasks)."""
        if self._conn is None:
            raise NotConnected(f"{self.spec.name} is {self.status}")
        conn = self._conn
        return await self.lane.call(self.settings.call_timeout, fn, conn, *args)

    # -- events -----------------------------------------------------------------------------------

    def _lifecycle(self, uuid: str, name: str, event: int, detail: int) -> None:
        kind = EVENT_NAMES[event] if 0 <= event < len(EVENT_NAMES) else f"event-{event}"
        now = self.clock()
        key = f"{self.spec.name}/{uuid}"
        vms = dict(self.vms)  # a new dict, never a change in place: readers (publish) keep the old one
        if event == libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
            vms.pop(key, None)
            self._samples.pop(uuid, None)
            self._forget([uuid])
            self._on_gone([key])
        elif event in _EVENT_STATE:
            self._event_time[uuid] = time.monotonic()
            vm = vms.get(key)
            new_state = state_name(_EVENT_STATE[event])
            if vm is None:  # started outside vimtui: show it now, details follow
                vms[key] = self._placeholder(uuid, name, new_state, detail, now)
            else:
                rates = vm.rates if new_state == "running" else None
                vms[key] = replace(vm, state=new_state, reason=detail, state_since=now, rates=rates)
        elif event == libvirt.VIR_DOMAIN_EVENT_DEFINED and key not in vms:
            self._event_time[uuid] = time.monotonic()
            vms[key] = self._placeholder(uuid, name, "shutoff", 0, now)
        self.vms = vms
        if event == libvirt.VIR_DOMAIN_EVENT_DEFINED or (key in vms and vms[key].details is None):
            self._dirty.add(uuid)
            self._kick_side_work()
        self._note_event(uuid, name, kind, str(detail))

    def _placeholder(self, uuid: str, name: str, state: str, reason: int, now: float) -> VmState:
        return VmState(
            uuid=uuid,
            name=name,
            host=self.spec.name,
            state=state,
            reason=reason,
            vcpus=None,
            mem_max_kib=None,
            mem_current_kib=None,
            sample=None,
            rates=None,
            details=None,
            state_since=now,
        )

    def _note_event(self, uuid: str, name: str, kind: str, detail: str = "") -> None:
        self._on_event(HostEvent(self.clock(), self.spec.name, name, uuid, kind, detail))
        self._on_change()

    # -- polling ----------------------------------------------------------------------------------

    @property
    def polling(self) -> bool:
        return self._poll_task is not None and not self._poll_task.done()

    def start_poll(self) -> asyncio.Task[None] | None:
        """Start this tick's poll unless the last one is still running (ticks never overlap)."""
        if self._conn is None or self.polling:
            return self._poll_task if self.polling else None
        self._poll_task = asyncio.get_running_loop().create_task(self._poll(), name=f"poll-{self.spec.name}")
        return self._poll_task

    def note_late(self) -> None:
        """The tick's deadline passed with this host's poll still running."""
        self.state = replace(self.state, late_ticks=self.state.late_ticks + 1)
        if self.status == HostStatus.UP:
            self._set_status(HostStatus.DEGRADED, "poll is late")

    async def _poll(self) -> None:
        started = time.monotonic()
        try:
            result = await self.lane.call(self.settings.poll_timeout, self._poll_blocking)
        except CallTimeout as exc:
            self._drop(str(exc))
            return
        except libvirt.libvirtError as exc:
            if self._conn is None or not _alive(exc):
                self._drop(f"libvirt: {_err(exc)}")
            else:
                self._set_status(HostStatus.DEGRADED, f"poll failed: {_err(exc)}")
            return
        except Exception as exc:
            self._failed("poll", exc)
            return
        try:
            self._apply(result, started)
        except Exception as exc:
            self._failed("poll", exc)
            return
        if self.status == HostStatus.DEGRADED:
            self._set_status(HostStatus.UP)
        self._on_polled()
        self._kick_side_work()

    def _kick_side_work(self) -> None:
        if self._conn is not None and (self._side_task is None or self._side_task.done()):
            self._side_task = asyncio.get_running_loop().create_task(self._side_work())

    def _poll_blocking(self) -> tuple[NodeSample | None, list[DomainSample], LocalMetrics | None]:
        """One tick on the lane: node CPU and memory, and ONE bulk stats call for every domain."""
        conn = self._conn
        if conn is None:
            raise libvirt.libvirtError("not connected")
        t = time.monotonic()
        info = self.state.info
        node_info = (
            [info.cpu_model, info.memory_kib // 1024, info.cpus, info.cpu_mhz] if info else conn.getInfo()
        )
        # the first two polls after connecting both read them: host CPU % shows as soon as the VMs' do
        node_due = self._polls < 2 or self._polls % self.settings.host_stats_every == 0
        self._polls += 1
        if node_due:
            cpu = _or_empty(conn.getCPUStats, -1)
            mem = _or_empty(conn.getMemoryStats, -1)
        try:
            records = conn.getAllDomainStats(STATS, NOWAIT)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                raise
            records = conn.getAllDomainStats(STATS, 0)  # a driver without NOWAIT
        # Each per-domain call (UUID, name, and freeing the domain) lets go of the GIL and takes it back:
        # with every lane doing so at once, the hand-overs cost several times the calls themselves. One
        # lane at a time does this part (it never waits on a host: the values are in memory already).
        with _PER_DOMAIN:
            samples = [
                parse_domain_stats(self._uuid_text(dom), dom.name(), stats, t) for dom, stats in records
            ]
            del records
        node = parse_node(node_info, cpu, mem, t) if node_due else None
        local = _local_metrics() if info is not None and info.local else None
        return node, samples, local

    def _uuid_text(self, dom: Any) -> str:
        """dom.UUIDString(), from the 16 bytes of dom.UUID() through a cache: libvirt formats the text
        anew at each call, 1.8 µs against 0.6 µs, for every VM at every poll (on the lane only)."""
        raw = dom.UUID()
        text = self._uuid_texts.get(raw)
        if text is None:
            if len(self._uuid_texts) > 4 * len(self._samples) + 1024:
                self._uuid_texts.clear()  # VMs come and go: forget the ones long gone
            text = self._uuid_texts[raw] = str(UUID(bytes=raw))
        return text

    def _apply(
        self, result: tuple[NodeSample | None, list[DomainSample], LocalMetrics | None], started: float
    ) -> None:
        node, samples, local = result
        if node is None:  # not this poll's turn: the host's figures stay as they were
            node, rates = self._node, self.state.rates
        else:
            rates, self._node = host_rates(self._node, node), node
        cpus = (node.cpus if node else 0) or 1
        now = self.clock()
        host = self.spec.name
        prefix = host + "/"
        old_vms, prev_samples, all_details = self.vms, self._samples, self._details
        event_time, dirty, keys = self._event_time, self._dirty, self._keys
        # events newer than this poll's call: only then does any VM need its own look-up below
        events_since = bool(event_time) and max(event_time.values()) > started
        vms: dict[str, VmState] = {}
        polled: dict[str, DomainSample] = {}
        get_key, get_old, get_details, get_prev = keys.get, old_vms.get, all_details.get, prev_samples.get
        fields_of, state_names, builder, vm_state = _APPLY_FIELDS, _STATE_NAMES, _VmStateBuilder, VmState
        for s in samples:
            uuid, name, st, reason, vcpus, mem_max, mem_current = fields_of(s)
            polled[uuid] = s
            key = get_key(uuid)
            if key is None:  # the same key string from one poll to the next (its hash is kept)
                key = keys[uuid] = prefix + uuid
            old = get_old(key)
            state = state_names.get(st, "unknown")  # state_name(st)
            if old is None:
                # first seen: when it entered this state is unknown (0), not "now" (a made-up uptime)
                since = 0.0
                ips: tuple[str, ...] = ()
                ip_source = ""
            else:
                if events_since and event_time.get(uuid, 0.0) > started:
                    state, reason, since = old.state, old.reason, old.state_since  # an event is newer
                else:
                    since = old.state_since if old.state == state else now
                ips, ip_source = old.ips, old.ip_source
            details = get_details(uuid)
            if details is None:
                dirty.add(uuid)
            else:
                if details.name != name:
                    dirty.add(uuid)
                if vcpus is None:
                    vcpus = details.vcpus
                if mem_max is None:
                    mem_max = details.memory_kib
            new = builder()  # a VmState, built quicker than by its __init__ (see _VmStateBuilder)
            new.uuid = uuid
            new.name = name
            new.host = host
            new.state = state
            new.reason = reason
            new.vcpus = vcpus
            new.mem_max_kib = mem_max
            new.mem_current_kib = mem_current
            new.sample = s
            new.rates = vm_rates(get_prev(uuid), s, cpus)
            new.details = details
            new.ips = ips
            new.ip_source = ip_source
            new.stale = False
            new.state_since = since
            new.__class__ = vm_state  # type: ignore[assignment]
            vms[key] = new  # type: ignore[assignment]
        if events_since:
            for key, vm in old_vms.items():  # appeared by event after this poll's call: keep it
                if vm.uuid not in polled and event_time.get(vm.uuid, 0.0) > started:
                    vms[key] = vm
        gone = [key for key in old_vms if key not in vms]
        n = len(vms)
        if len(keys) > len(polled) or max(len(all_details), len(event_time), len(self._ip_time)) > n:
            live = polled.keys() | {vm.uuid for vm in vms.values()} if n > len(polled) else polled.keys()
            self._forget((keys.keys() | all_details.keys() | event_time.keys() | self._ip_time.keys()) - live)
        self._samples = polled
        self.vms = vms
        self.state = replace(
            self.state,
            node=node,
            rates=rates,
            local=local,
            last_poll=now,
            poll_seconds=time.monotonic() - started,
            vm_keys=tuple(vms),
        )
        if gone:
            self._on_gone(gone)

    def remembers(self, uuid: str) -> bool:
        """Whether anything of the VM `uuid` is kept (its state, key, sample, details, event or address
        time): for checking that what is kept of a VM ends with it."""
        return f"{self.spec.name}/{uuid}" in self.vms or any(
            uuid in d for d in (self._keys, self._samples, self._details, self._event_time, self._ip_time)
        )

    def _forget(self, uuids: Iterable[str]) -> None:
        """What is kept of VMs that are gone (their key, details, event and address times)."""
        keys, details, event_time, ip_time = self._keys, self._details, self._event_time, self._ip_time
        for uuid in uuids:
            keys.pop(uuid, None)
            details.pop(uuid, None)
            event_time.pop(uuid, None)
            ip_time.pop(uuid, None)
            self._dirty.discard(uuid)

    # -- details and addresses: off the tick's hot path -------------------------------------------

    async def _side_work(self) -> None:
        """Details of new or changed domains, then addresses that are due; again while events add more."""
        try:
            while True:
                dirty, self._dirty = self._dirty, set()
                if dirty:
                    details = await self.lane.call(
                        self.settings.call_timeout, self._details_blocking, sorted(dirty)
                    )
                    self._details.update(details)
                    self._merge({u: {"details": d} for u, d in details.items()}, "details")
                due = self._ip_due()
                if due:
                    addrs = await self.lane.call(self.settings.call_timeout, self._addresses_blocking, due)
                    mono = time.monotonic()
                    for uuid, _has_agent in due:
                        self._ip_time[uuid] = mono
                    self._merge({u: {"ips": ips, "ip_source": src} for u, (ips, src) in addrs.items()}, "ips")
                if not self._dirty:
                    return
        except CallTimeout as exc:
            self._drop(str(exc))
        except libvirt.libvirtError as exc:
            log.debug("host %s: side work failed: %s", self.spec.name, _err(exc))
        except Exception as exc:
            self._failed("reading VM details", exc)

    def _merge(self, changes: dict[str, dict[str, Any]], probe: str) -> None:
        """Replace fields of VMs by uuid, then publish; nothing when no VM's `probe` field changed (the
        usual answer of an address look-up: the same addresses)."""
        vms = self.vms
        prefix = self.spec.name + "/"
        changed = {}
        for uuid, change in changes.items():
            key = prefix + uuid
            vm = vms.get(key)
            if vm is not None and getattr(vm, probe) != change[probe]:
                changed[key] = replace(vm, **change)
        if changed:
            self.vms = vms | changed
            self._on_change()

    def _ip_due(self) -> list[tuple[str, bool]]:
        mono = time.monotonic()
        due = [
            (vm.uuid, bool(vm.details and vm.details.has_agent))
            for vm in self.vms.values()
            if vm.state == "running"
            and mono - self._ip_time.get(vm.uuid, -IP_REFRESH) >= IP_REFRESH
            and (vm.details is None or vm.details.nics)
        ]
        return due[:IP_BATCH]

    def _details_blocking(self, uuids: list[str]) -> dict[str, DomainDetails]:
        out = {}
        for uuid in uuids:
            try:
                dom = self._conn.lookupByUUIDString(uuid)
                persistent = bool(dom.isPersistent())
                autostart = bool(dom.autostart()) if persistent else False
                out[uuid] = parse_domain_xml(dom.XMLDesc(0), persistent=persistent, autostart=autostart)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        return out

    def _addresses_blocking(self, due: list[tuple[str, bool]]) -> dict[str, tuple[tuple[str, ...], str]]:
        """Guest agent when the VM has one, else the network's DHCP leases, else ARP."""
        sources = (
            ("agent", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT),
            ("lease", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE),
            ("arp", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP),
        )
        out: dict[str, tuple[tuple[str, ...], str]] = {}
        for uuid, has_agent in due:
            try:
                dom = self._conn.lookupByUUIDString(uuid)
            except libvirt.libvirtError:
                continue
            for name, source in sources:
                if name == "agent" and not has_agent:
                    continue
                try:
                    ifaces = dom.interfaceAddresses(source, 0)
                except libvirt.libvirtError:
                    continue
                ips = tuple(
                    a["addr"]
                    for iface in ifaces.values()
                    for a in (iface.get("addrs") or [])
                    if a.get("addr") and not a["addr"].startswith(("127.", "::1", "fe80"))
                )
                if ips:
                    out[uuid] = (ips, name)
                    break
        return out


async def _port_answers(address: str, port: int, within: float) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), within)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


# VmState is a frozen dataclass: its __init__ sets each field with object.__setattr__, ~3 µs a VmState, for
# every VM at every poll. _apply fills in a _VmStateBuilder instead (plain slot stores) and then makes it a
# VmState by assigning its __class__, which Python allows between classes of the same slot layout: the
# result is an ordinary VmState, built ~8x quicker. `_check_builder` makes sure, at import, that the two
# layouts still match.
_VM_FIELDS = (
    "uuid",
    "name",
    "host",
    "state",
    "reason",
    "vcpus",
    "mem_max_kib",
    "mem_current_kib",
    "sample",
    "rates",
    "details",
    "ips",
    "ip_source",
    "stale",
    "state_since",
)


class _VmStateBuilder:
    """A VmState under construction: the same slots, in the same order, and no frozen __setattr__."""

    __slots__ = _VM_FIELDS
    uuid: str
    name: str
    host: str
    state: str
    reason: int
    vcpus: int | None
    mem_max_kib: int | None
    mem_current_kib: int | None
    sample: DomainSample | None
    rates: VmRates | None
    details: DomainDetails | None
    ips: tuple[str, ...]
    ip_source: str
    stale: bool
    state_since: float


def _check_builder() -> None:
    vm_fields = fields(VmState)
    if (
        tuple(f.name for f in vm_fields) != _VM_FIELDS
        or VmState.__dict__.get("__slots__") != _VM_FIELDS
        or not all(f.init for f in vm_fields)
        or hasattr(VmState, "__post_init__")
    ):
        raise RuntimeError("VmState's fields changed: update _VM_FIELDS and HostSession._apply (host.py)")
    values = tuple(range(len(_VM_FIELDS)))
    b = _VmStateBuilder()
    for name, value in zip(_VM_FIELDS, values, strict=True):
        setattr(b, name, value)
    b.__class__ = VmState  # type: ignore[assignment]
    vm: object = b
    if type(vm) is not VmState or vm != VmState(*values):  # type: ignore[arg-type]
        raise RuntimeError("a _VmStateBuilder does not turn into the VmState it stands for")


_check_builder()
_APPLY_FIELDS = itemgetter(
    *(
        DomainSample._fields.index(f)
        for f in ("uuid", "name", "state", "reason", "vcpus", "mem_max_kib", "mem_current_kib")
    )
)
"""The fields of a DomainSample that _apply reads, in one call."""
_STATE_NAMES = dict(enumerate(DOMAIN_STATES))
"""state_name() as a dict: libvirt's state number -> its name (get with "unknown" for any other)."""


def _or_empty(fn: Callable[[int], dict[str, int]], arg: int) -> dict[str, int]:
    try:
        return fn(arg)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
            return {}
        raise


def _alive(exc: libvirt.libvirtError) -> bool:
    """False for errors that mean the connection itself is gone."""
    return exc.get_error_domain() not in (libvirt.VIR_FROM_RPC,) and exc.get_error_code() not in (
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_INTERNAL_ERROR,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_NO_CONNECT,
    )


def _unexpected(exc: BaseException) -> str:
    """An unexpected error in a line: its kind and message (the log has the traceback)."""
    text = _err(exc) if isinstance(exc, libvirt.libvirtError) else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _err(exc: BaseException) -> str:
    if isinstance(exc, libvirt.libvirtError):
        return exc.get_error_message() or str(exc)
    return str(exc) or type(exc).__name__


def _version(v: int) -> str:
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"


def _close_quietly(conn: Any) -> None:
    # Closing drops the close callback with the connection (it then reports a "client" close, which the
    # session ignores: the connection is no longer its own). No unregisterCloseCallback first: from this
    # thread it raced the callback's dispatch in libvirt-python and crashed the process once (SIGSEGV in
    # unregisterCloseCallback, a clean-clone run at the end of session 9).
    with contextlib.suppress(libvirt.libvirtError):
        conn.close()


def _local_metrics() -> LocalMetrics:
    import psutil

    load = psutil.getloadavg()
    return LocalMetrics(
        cpu_pct=psutil.cpu_percent(None),
        mem_pct=psutil.virtual_memory().percent,
        load1=load[0],
        load5=load[1],
        load15=load[2],
        swap_pct=psutil.swap_memory().percent,
    )
