"""A VM's display forwarded to a loopback port of this machine through its host's SSH connection
(asyncssh `forward_local_port`, or `forward_local_port_to_path` for a display on a unix socket): the same
connection the host's libvirt socket rides, so nothing but SSH has to reach the host.

`DisplayForwards` keeps the forwards one vimtui has open, at most one per VM (asking again gives the open
one). Each is audited like a console session: "started" before the forward opens (not opened when that
cannot be written), then "failed" or, when it ends, "closed" with why and how many viewer connections it
carried. A forward closes when the operator closes it, when the host's SSH connection goes, and when its VM
stops or leaves the host (a migration): the port it led to may then be another VM's display.

Everything here runs on the event loop that carries the SSH connections (asyncssh); the domain's XML is
read on the host's lane (Fleet.ask), the audit records on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncssh

from vimtui.core.actions.base import ActionError
from vimtui.core.actions.display import DISPLAY_STATES, Display, display_refusal, notes, read_display, url
from vimtui.core.actions.display_probe import Probe, probe_notes, probe_vnc
from vimtui.core.fleet.audit import AuditError
from vimtui.core.model import FleetState, VmState

if TYPE_CHECKING:
    from vimtui.core.fleet.fleet import Fleet

LOCAL_HOST = "127.0.0.1"
"""Where the forward listens on this machine: loopback only, never a wider address."""
AUDIT_ACTION = "display"


@dataclass(eq=False)
class Forward:
    """One open (or closed) display forward."""

    vm: VmState
    display: Display
    local_host: str
    local_port: int
    opened: float
    connections: int = 0
    """Viewer connections it has carried."""
    closed: str = ""
    """Why it closed ("" while open)."""
    probe: Probe | None = None
    """What a VNC display answered through SSH when it was opened (None: not probed, SPICE)."""
    listener: Any = field(default=None, repr=False)
    watch: asyncio.Task[None] | None = field(default=None, repr=False)
    seen: tuple[str, float] = field(init=False)
    """The VM's state and when it entered it, as last published (at first, as when it was opened)."""

    def __post_init__(self) -> None:
        self.seen = (self.vm.state, self.vm.state_since)

    @property
    def address(self) -> str:
        return f"{self.local_host}:{self.local_port}"

    @property
    def url(self) -> str:
        return url(self.display, self.local_host, self.local_port)

    @property
    def notes(self) -> list[str]:
        offered = self.probe.security if self.probe is not None else ()
        said = notes(self.display, self.vm.host, self.vm.name, self.address, offered)
        return said + (probe_notes(self.probe, self.vm.host) if self.probe is not None else [])

    @property
    def answered(self) -> str:
        """What the display answered when probed: 'RFB 003.008, security: none' ('' when not probed)."""
        p = self.probe
        if p is None or p.error:
            return ""
        return f"{p.version}, security: {', '.join(p.security) or '-'}"

    @property
    def summary(self) -> str:
        """One line: 'VNC display of web01 (kvm01) at 127.0.0.1:41234'."""
        return f"{self.display.protocol.upper()} display of {self.vm.name} ({self.vm.host}) at {self.address}"


class DisplayForwards:
    """The display forwards of one fleet. `on_closed(forward)` is told of each one that ends, whoever
    ended it; `on_connect(forward)` of each viewer connection."""

    def __init__(
        self,
        fleet: Fleet,
        on_closed: Callable[[Forward], None] | None = None,
        on_connect: Callable[[Forward], None] | None = None,
    ) -> None:
        self.fleet = fleet
        self.on_closed = on_closed
        self.on_connect = on_connect
        self._open: dict[str, Forward] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._closing: set[asyncio.Task[Any]] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def get(self, key: str) -> Forward | None:
        """The open forward of the VM of `key` (host/uuid), if any."""
        return self._open.get(key)

    def open_ones(self) -> list[Forward]:
        return list(self._open.values())

    async def open(self, vm: VmState, *, port: int = 0) -> Forward:
        """Forward `vm`'s display to a loopback port here (`port`, or any free one); the open forward
        when it has one already. ActionError saying why when it cannot be (refused, no display, no SSH
        connection, the audit record not written, the port taken)."""
        async with self._locks.setdefault(vm.key, asyncio.Lock()):  # a key pressed twice: one forward
            return await self._open_one(vm, port)

    async def _open_one(self, vm: VmState, port: int) -> Forward:
        if (known := self._open.get(vm.key)) is not None:
            return known
        host = self.fleet.state.host(vm.host)
        why = display_refusal(vm, host)
        if why:
            raise ActionError(why)
        session = self.fleet.sessions.get(vm.host)
        if session is None:
            raise ActionError(f"{vm.host}: no such host")
        from vimtui.core.fleet.fleet import QueryFailed

        try:
            display = await self.fleet.ask(vm.host, read_display, vm.uuid)
        except QueryFailed as exc:
            raise ActionError(f"{vm.name}: its display cannot be read: {exc}") from exc
        await self._audit(vm, "started", "", {"protocol": display.protocol, "remote": display.where})
        try:
            forward = await self._forward(vm, display, session, port)
        except ActionError as exc:
            await self._audit(vm, "failed", str(exc), {}, must=False)
            raise
        self._open[vm.key] = forward
        if self._unsubscribe is None:
            self._unsubscribe = self.fleet.subscribe(self._published)
        return forward

    async def _forward(self, vm: VmState, display: Display, session: Any, port: int) -> Forward:
        if session.spec.transport != "ssh":  # this machine's own libvirt: the display is here already
            if display.socket:
                raise ActionError(
                    f"{vm.name}: its display listens on {display.socket} of this machine: give that "
                    f"socket to the viewer ({display.protocol}+unix://{display.socket})"
                )
            assert display.remote_port is not None
            return Forward(vm, display, display.target, display.remote_port, time.time())
        ssh = session.ssh
        if ssh is None:
            raise ActionError(f"{vm.host} is not connected ({session.status}): its display cannot be reached")
        forward = Forward(vm, display, LOCAL_HOST, port, time.time())

        def accepted(_orig_host: str, _orig_port: int) -> bool:
            forward.connections += 1
            if self.on_connect is not None:
                self.on_connect(forward)
            return True

        try:
            if display.socket:
                listener = await ssh.forward_local_port_to_path(LOCAL_HOST, port, display.socket, accepted)
            else:
                remote = display.remote_port
                assert remote is not None
                listener = await ssh.forward_local_port(LOCAL_HOST, port, display.target, remote, accepted)
        except (OSError, asyncssh.Error) as exc:
            text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            where = f"{LOCAL_HOST}:{port or 'any port'}"
            raise ActionError(f"{vm.name}: cannot listen on {where}: {text}") from exc
        forward.listener = listener
        forward.local_port = listener.get_port()
        if display.protocol == "vnc":  # a channel of its own, not through the listener: no viewer's
            forward.probe = await probe_vnc(ssh, display.target, display.remote_port, display.socket)
        forward.watch = asyncio.get_running_loop().create_task(self._watch(forward, ssh))
        return forward

    async def _watch(self, forward: Forward, ssh: asyncssh.SSHClientConnection) -> None:
        """Closes the forward when the SSH connection that carries it goes."""
        await ssh.wait_closed()
        if not forward.closed:
            await self._end(forward, f"the SSH connection to {forward.vm.host} closed")

    def _published(self, state: FleetState) -> None:
        """A forward whose VM stopped, or left its host, leads nowhere, or to another VM's display."""
        for forward in list(self._open.values()):
            vm = state.vms.get(forward.vm.key)
            if vm is None:
                why = f"{forward.vm.name} is no longer on {forward.vm.host}"
            elif vm.state not in DISPLAY_STATES:
                why = f"{forward.vm.name} is {vm.state}"
            elif _ran_again(forward, vm):
                # stopped and started between two publishes (so never published stopped): its display is
                # a new one, perhaps on another port
                why = f"{forward.vm.name} stopped and started again"
            else:
                forward.seen = (vm.state, vm.state_since)
                continue
            task = asyncio.get_running_loop().create_task(self._end(forward, why))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self, key: str, reason: str = "closed by the operator") -> Forward | None:
        """Close the forward of the VM of `key` (None: there was none open)."""
        forward = self._open.get(key)
        if forward is None:
            return None
        await self._end(forward, reason)
        return forward

    async def close_all(self, reason: str) -> None:
        for forward in list(self._open.values()):
            await self._end(forward, reason)
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=5)
        if self._unsubscribe is not None:
            with contextlib.suppress(ValueError):
                self._unsubscribe()
            self._unsubscribe = None

    async def _end(self, forward: Forward, reason: str) -> None:
        if forward.closed:
            return
        forward.closed = reason
        self._open.pop(forward.vm.key, None)
        try:
            if forward.listener is not None:
                forward.listener.close()
            watch = forward.watch
            if watch is not None and watch is not asyncio.current_task():
                watch.cancel()
            detail = f"{reason}; {forward.connections} viewer connection(s) through {forward.address}"
            args = {"protocol": forward.display.protocol}
            await self._audit(forward.vm, "closed", detail, args, must=False)
        finally:  # whatever failed on the way, the one who opened it is told it closed
            if self.on_closed is not None:
                self.on_closed(forward)

    async def _audit(
        self, vm: VmState, outcome: str, detail: str, args: dict[str, Any], *, must: bool = True
    ) -> None:
        """One record of the forward in the audit log (a thread: it fsyncs). The "started" one `must` be
        written, or the forward is not opened."""
        log = self.fleet.tasks.audit
        if log is None:
            return
        try:
            await asyncio.to_thread(
                log.record,
                time=time.time(),
                host=vm.host,
                vm=vm.name,
                action=AUDIT_ACTION,
                args=args,
                outcome=outcome,
                error=detail,
            )
        except AuditError as exc:
            if must:
                raise ActionError(f"display not opened: {exc}") from exc


STARTING_UP = 11
"""libvirt's VIR_DOMAIN_PAUSED_STARTING_UP: a new QEMU process, paused until its CPUs first run."""


def _ran_again(forward: Forward, vm: VmState) -> bool:
    """Whether `vm`, running at the forward's last look (or its opening) and running now, entered that
    state anew meanwhile: it left it and came back unseen. From paused, a new time is only its resume;
    but paused while starting up is a new QEMU (a poll can catch a restart there, the stop unseen), and
    so is what runs after it."""
    state, since = forward.seen
    if vm.state == "paused" and vm.reason == STARTING_UP:
        return vm.state_since != since or state != "paused"
    return state == vm.state == "running" and vm.state_since != since
