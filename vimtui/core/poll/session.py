"""HostSession: one host's connection, state machine, lane, polls and events.

States: connecting -> up; up -> degraded (a poll missed its tick) -> up again, or -> unreachable (a call
missed its deadline, the SSH link or libvirt connection dropped); connect failures end in unreachable,
auth-failed or hostkey-mismatch; an unexpected error (a setting libvirt or SSH will not take, a bug) in
error, with its message. From any failure the session reconnects on its own, with exponential
backoff and jitter. Every libvirt call runs on the host's lane (host_calls.py), never on the event loop;
what the polls and events show of the host's VMs is kept in its HostVms (host_vms.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import libvirt

from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.model import HostInfo, HostState, HostStatus, LocalMetrics, VmState
from vimtui.core.poll.domain_events import HostEvent, event_name, register_events
from vimtui.core.poll.host_calls import (
    INACTIVE_STATES,
    PollResult,
    Unchanged,
    UuidTexts,
    close_quietly,
    connection_alive,
    error_text,
    open_host,
    poll_domains,
    read_addresses,
    read_details,
)
from vimtui.core.poll.host_vms import HostVms
from vimtui.core.poll.lane import CallTimeout, Lane
from vimtui.core.poll.stats import DomainSample, NodeSample, host_rates
from vimtui.core.poll.transport import SshOptions, SshTunnel, TransportError

__all__ = ["HostEvent", "HostSession", "NotConnected", "SessionSettings", "backoff", "is_local_uri"]

log = logging.getLogger(__name__)
T = TypeVar("T")

EVERY_VM_POLLS = 10
"""Every so many polls read every VM; the others read only the active ones (with libvirt's events, a
shut-off VM that starts, stops, is defined or undefined is read at once; this catches what no event said:
a host whose events are lost, a VM changed by hand)."""


class NotConnected(Exception):
    """The host has no libvirt connection right now (its status says why)."""


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
            status=HostStatus.CONNECTING,
            message="",
            status_since=self.clock(),
            profile=spec.profile,
        )
        self.book = HostVms(spec.name, clock, on_gone)
        """The host's VMs and what is kept of each between polls."""
        self._uuid_texts = UuidTexts()
        self._idle = Unchanged()
        self._node: NodeSample | None = None
        self._polls = 0
        self._active: int | None = None
        """VMs active at the last poll (None: unknown, every VM is read next)."""
        self._filter_works = True
        """The driver takes libvirt's ACTIVE filter (host_calls.poll_domains)."""
        self.connected = asyncio.Event()

    @property
    def vms(self) -> dict[str, VmState]:
        """The host's VMs by key (a new dict at each change, never changed in place)."""
        return self.book.vms

    @property
    def roster(self) -> object:
        """Replaced when the host's VMs, their names or details change (see HostVms.roster)."""
        return self.book.roster

    def remembers(self, uuid: str) -> bool:
        """Whether anything of the VM `uuid` is kept (see HostVms.remembers)."""
        return self.book.remembers(uuid)

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
            self.book.mark_stale()
        log.info("host %s: %s %s", self.spec.name, status, message)
        self._on_change()

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
                self._set_status(HostStatus.UNREACHABLE, f"libvirt: {error_text(exc)}")
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

    def retry_now(self) -> None:
        """Connect again now, not at the end of the backoff (a host key was just trusted)."""
        self._wake.set()

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
        self._active = None  # and every VM

    async def _watch_tunnel(self, tunnel: SshTunnel) -> None:
        await tunnel.wait_closed()
        if tunnel is self._tunnel:
            self._drop("SSH connection lost")

    def _open_blocking(self, uri: str, loop: asyncio.AbstractEventLoop) -> tuple[Any, HostInfo]:
        def setup(conn: Any) -> None:
            def closed(_conn: Any, reason: int, _opaque: Any) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nothing left to tell
                    loop.call_soon_threadsafe(
                        self._drop_if_current, conn, f"libvirt connection closed ({reason})"
                    )

            conn.registerCloseCallback(closed, None)
            register_events(conn, self)

        keepalive = (int(self.settings.keepalive_interval), self.settings.keepalive_count_max)
        local = self.spec.transport == "direct" and is_local_uri(self.spec.uri)
        return open_host(uri, self.spec.read_only, keepalive, local, setup)

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # closing may block on a dead peer: do it on a fresh thread, never wait for it
            old = self.lane
            self.lane = Lane(self.spec.name)
            old.close()
            loop = asyncio.get_running_loop()
            loop.run_in_executor(None, close_quietly, conn)
        tunnel, self._tunnel = self._tunnel, None
        if tunnel is not None:
            await tunnel.close()

    @property
    def ssh(self) -> Any:
        """The host's SSH connection while the host is up (None when it is not, or is reached without SSH)."""
        tunnel = self._tunnel
        return tunnel.ssh if tunnel is not None and self._conn is not None else None

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
        self.book.every_vm_due = True  # what the caller did may have stopped or defined a VM
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

    # -- events (register_events calls these, on the loop) ------------------------------------------

    def lifecycle(self, uuid: str, name: str, event: int, detail: int) -> None:
        self.book.every_vm_due = True  # a VM started, stopped, was defined or undefined: read them all
        if self.book.event(uuid, name, event, detail):
            self._kick_side_work()
        self.note(uuid, name, event_name(event), str(detail))

    def device_changed(self, uuid: str) -> None:
        self.book.dirty.add(uuid)

    def note(self, uuid: str, name: str, kind: str, detail: str = "") -> None:
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
        book = self.book
        # every VM at the first poll, after a failed one, an event or a task, every EVERY_VM_POLLS, and
        # where the driver has no ACTIVE filter; else the active ones (a shut-off VM's record does not
        # move). _apply sets _active again: a poll that fails leaves it None, so the next reads them all.
        active, self._active = self._active, None
        every_vm = (
            active is None or book.every_vm_due or not self._filter_works or self._polls % EVERY_VM_POLLS == 0
        )
        book.every_vm_due = False
        try:
            result = await self.lane.call(
                self.settings.poll_timeout, self._poll_blocking, None if every_vm else active
            )
        except CallTimeout as exc:
            self._drop(str(exc))
            return
        except libvirt.libvirtError as exc:
            if self._conn is None or not connection_alive(exc):
                self._drop(f"libvirt: {error_text(exc)}")
            else:
                self._set_status(HostStatus.DEGRADED, f"poll failed: {error_text(exc)}")
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
        if not self.book.side_work_due():
            return  # nothing to read (most polls): no task
        if self._conn is not None and (self._side_task is None or self._side_task.done()):
            self._side_task = asyncio.get_running_loop().create_task(self._side_work())

    def _poll_blocking(self, active: int | None = None) -> PollResult:
        """One tick on the lane (see host_calls.poll_domains: `active`)."""
        conn = self._conn
        if conn is None:
            raise libvirt.libvirtError("not connected")
        info = self.state.info
        node_info = (
            [info.cpu_model, info.memory_kib // 1024, info.cpus, info.cpu_mhz] if info else conn.getInfo()
        )
        # the first two polls after connecting both read them: host CPU % shows as soon as the VMs' do
        node_due = self._polls < 2 or self._polls % self.settings.host_stats_every == 0
        self._polls += 1
        local = info is not None and info.local
        return poll_domains(conn, node_info, node_due, local, active)

    def _apply(self, result: PollResult, started: float) -> None:
        node, records, t, local, every_vm, refused = result
        if refused:
            self._filter_works = False
        vms = len(self.book.samples)
        samples = self._idle.samples(records, self._uuid_texts, vms, t, every_vm)
        del records, result  # the domains were freed by Unchanged.samples (domain_refs.py)
        self._apply_samples(node, samples, local, started, every_vm)
        inactive = INACTIVE_STATES
        self._active = len(samples) if not every_vm else sum(s.state not in inactive for s in samples)

    def _apply_samples(
        self,
        node: NodeSample | None,
        samples: list[DomainSample],
        local: LocalMetrics | None,
        started: float,
        every_vm: bool = True,
    ) -> None:
        if node is None:  # not this poll's turn: the host's figures stay as they were
            node, rates = self._node, self.state.rates
        else:
            rates, self._node = host_rates(self._node, node), node
        self.book.apply(samples, (node.cpus if node else 0) or 1, started, every_vm)
        self.state = replace(
            self.state,
            node=node,
            rates=rates,
            local=local,
            last_poll=self.clock(),
            poll_seconds=time.monotonic() - started,
            vm_keys=tuple(self.book.vms),
        )

    # -- details and addresses: off the tick's hot path -------------------------------------------

    async def _side_work(self) -> None:
        """Details of new or changed domains, then addresses that are due; again while events add more."""
        book = self.book
        try:
            while True:
                dirty, book.dirty = book.dirty, set()
                if dirty:
                    details = await self.lane.call(
                        self.settings.call_timeout, read_details, self._conn, sorted(dirty)
                    )
                    book.details.update(details)
                    if book.merge({u: {"details": d} for u, d in details.items()}):
                        self._on_change()
                due = book.ip_due()
                if due:
                    addrs = await self.lane.call(self.settings.call_timeout, read_addresses, self._conn, due)
                    mono = time.monotonic()
                    for uuid, _has_agent in due:
                        book.ip_time[uuid] = mono
                    if book.merge({u: {"ips": ips, "ip_source": src} for u, (ips, src) in addrs.items()}):
                        self._on_change()
                if not book.dirty:
                    return
        except CallTimeout as exc:
            self._drop(str(exc))
        except libvirt.libvirtError as exc:
            log.debug("host %s: side work failed: %s", self.spec.name, error_text(exc))
        except Exception as exc:
            self._failed("reading VM details", exc)


def _unexpected(exc: BaseException) -> str:
    """An unexpected error in a line: its kind and message (the log has the traceback)."""
    text = error_text(exc) if isinstance(exc, libvirt.libvirtError) else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _port_answers(address: str, port: int, within: float) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), within)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
