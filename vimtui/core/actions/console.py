"""The serial console of a VM, in the terminal: over the host's libvirt connection (which runs through
vimtui's SSH tunnel), so nothing else has to reach the host, no extra SSH login and no virsh.

`relay` copies bytes both ways between a console stream and two file descriptors until the escape byte
(ctrl+], as virsh) comes in or the console goes away (the guest shut down); `attach_terminal` wraps it for
a real terminal (raw mode, a banner, the terminal restored whatever happens). The CLI and the screen run it
on a thread of their own (the screen inside `App.suspend()`), never on the event loop, which keeps running
meanwhile: it polls the hosts, and it is what brings the console's output in.

Why the stream is non-blocking, read when libvirt's event loop says it is readable, rather than read with a
blocking recv on a thread: the connection is the one the host's polls use. A blocking recv holds the
connection's I/O (libvirt's "buck") while it waits for the guest to print something, and libvirt's client
can miss the wake-up another thread's call sends it (libvirt 9.0: a g_main_loop_quit that comes before the
holder's g_main_loop_run is lost), so the polls then wait for the next console output or keepalive: seen in
the lab as polls of 5-9 s and the host's connection dropped for a late poll. Not a task: it belongs to the
operator's terminal, not to a host's task lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import libvirt

from vimtui.core.actions.base import ActionError, VmAction
from vimtui.core.fleet.audit import AuditError, AuditLog
from vimtui.core.model import HostState, VmState
from vimtui.core.profiles import Profile, refusal

if TYPE_CHECKING:
    from vimtui.core.fleet.fleet import Fleet

ConsoleAudit = Callable[[str, str], object]
"""Records one step of a console session: (outcome, detail); raises AuditError when it cannot."""

ESCAPE = b"\x1d"
"""ctrl+]: detaches, as in virsh console and telnet."""
CHUNK = 4096
CONSOLE_STATES = frozenset({"running", "blocked", "paused"})
"""A paused guest's console attaches too: it shows nothing until the guest is resumed."""

CONSOLE_NEEDS: Profile = "operator"
"""A guest's console is a keyboard on it: as much as lifecycle (libvirt refuses it read-only anyway)."""
ACTIONS: tuple[VmAction, ...] = ()
"""The console is not a task: `vimtui vm console NAME` and the screen call attach_terminal themselves."""


def escape_name(escape: bytes = ESCAPE) -> str:
    """How the escape reads on a keyboard: b'\\x1d' -> '^]'."""
    if len(escape) == 1 and escape[0] < 0x20:
        return "^" + chr(escape[0] + 0x40)
    return escape.decode("latin-1")


def console_devices(xml: str) -> list[str]:
    """The character devices of a domain's XML a console can attach to ('serial0', 'console0' ...)."""
    root = ET.fromstring(xml)
    found = []
    for kind in ("console", "serial"):
        for n, dev in enumerate(root.findall(f"./devices/{kind}")):
            if dev.get("type", "pty") == "pty":
                found.append(f"{kind}{n}")
    return found


def console_refusal(vm: VmState, xml: str | None = None, *, host: HostState | None = None) -> str | None:
    """Why the console of `vm` cannot be attached to now (None: it can). With its host's state, also
    whether the profile there allows it; with the domain's XML, whether it has a serial console at all
    (without it that shows when attaching)."""
    if host is not None and (why := refusal(host.profile, CONSOLE_NEEDS, host.name, "The console")):
        return why
    if vm.stale:
        return f"{vm.name}: its host {vm.host} is not answering; its console cannot be reached"
    if vm.state not in CONSOLE_STATES:
        return f"{vm.name} is {vm.state}: only a running VM has a console to attach to (start it first)"
    if xml is not None and not console_devices(xml):
        return f"{vm.name} has no serial console (no <serial> or <console> device of type pty)"
    return None


def open_console(conn: Any, uuid: str) -> tuple[Any, str, bool]:
    """A non-blocking stream attached to the VM's serial console, the VM's name, and whether a console
    session someone else had open (another vimtui, virsh console) was taken over to get it: libvirt allows
    one at a time, so the other one is closed, as virsh console --force does; the caller says so."""
    try:
        dom = conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise ActionError("the VM is no longer defined on its host") from exc
        raise
    name = str(dom.name())
    if not dom.isActive():
        raise ActionError(f"{name} is not running: no console to attach to")
    took_over = False
    for flags in (0, libvirt.VIR_DOMAIN_CONSOLE_FORCE):
        stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        try:
            dom.openConsole(None, stream, flags)
        except libvirt.libvirtError as exc:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            msg = (exc.get_error_message() or str(exc)).strip()
            if flags == 0 and "active console session" in msg.lower():
                took_over = True
                continue
            raise ActionError(f"{name}: cannot attach to its serial console: {msg}") from exc
        break
    return stream, name, took_over


TAKEOVER = "took over the console session another client had open (it was closed)"


STREAM_EVENTS = (
    libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP
)
IDLE_CHECK = 1.0
"""Seconds between looks at the stream without a word from the event loop (a safety net only)."""


def relay(stream: Any, in_fd: int, out_fd: int, escape: bytes = ESCAPE) -> str:
    """Copy the console to `out_fd` and `in_fd` to the console, until the escape byte comes in on `in_fd`
    (it is not sent; what precedes it in the same read is), `in_fd` ends, or the console closes (the guest
    shut down, the connection went). Returns which, in a few words. The stream (from open_console: non-
    blocking) is always finished (closed by the guest) or aborted (left by us) when it returns.

    Blocks: call it on a thread of its own, never on the event loop's, which must keep running (libvirt's
    event loop tells when the console has output)."""
    if len(escape) != 1:
        raise ValueError("the escape must be one byte")
    _refuse_on_event_loop()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)

    def readable(_stream: Any, _events: int, _opaque: object) -> None:  # on the event loop: only signal
        with contextlib.suppress(OSError):  # a full pipe has signalled already
            os.write(wake_w, b"!")
        with contextlib.suppress(libvirt.libvirtError):
            stream.eventUpdateCallback(0)  # quiet until the relay has read what is there

    registered = False
    closed = ""
    outcome = ""
    try:
        try:
            stream.eventAddCallback(STREAM_EVENTS, readable, None)
            registered = True
        except libvirt.libvirtError as exc:
            raise ActionError(
                f"cannot follow the console: {(exc.get_error_message() or str(exc)).strip()} "
                "(libvirt's event loop must run)"
            ) from exc
        while not outcome and not closed:
            ready, _, _ = select.select([in_fd, wake_r], [], [], IDLE_CHECK)
            if wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
            closed = _drain(stream, out_fd)
            if closed:
                break
            with contextlib.suppress(libvirt.libvirtError):
                stream.eventUpdateCallback(STREAM_EVENTS)
            if in_fd not in ready:
                continue
            data = os.read(in_fd, CHUNK)
            if not data:
                outcome = "input closed"
                break
            cut = data.find(escape)
            if cut >= 0:
                data = data[:cut]
                outcome = f"detached ({escape_name(escape)})"
            if data:
                closed = _send_all(stream, data, wake_r)
    finally:
        if registered:
            with contextlib.suppress(libvirt.libvirtError):
                stream.eventRemoveCallback()
        ended = False
        if closed == "eof":
            with contextlib.suppress(libvirt.libvirtError):
                stream.finish()
                ended = True
        if not ended:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
        os.close(wake_r)
        os.close(wake_w)
    if outcome:
        return outcome
    if closed == "eof":
        return "the console closed (the guest shut down)"
    return f"the console closed: {closed}"


def _drain(stream: Any, out_fd: int) -> str:
    """Write what the stream has to `out_fd`, without waiting for more: '' while it stays open, 'eof' when
    the guest's side closed it, else what went wrong."""
    while True:
        try:
            data = stream.recv(CHUNK)
        except libvirt.libvirtError as exc:
            return (exc.get_error_message() or str(exc)).strip() or "error"
        if isinstance(data, int):  # -2: nothing more for now
            return ""
        if not data:
            return "eof"
        try:
            _write_all(out_fd, data)
        except OSError as exc:
            return f"cannot write the console's output: {exc.strerror or exc}"


def _refuse_on_event_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # not the loop's thread: good
    raise RuntimeError("the console blocks: run it on a thread of its own, not on the event loop")


def attach_terminal(
    conn: Any,
    uuid: str,
    escape: bytes = ESCAPE,
    in_fd: int | None = None,
    out_fd: int | None = None,
    *,
    audit: ConsoleAudit | None = None,
) -> str:
    """Attach this terminal (stdin/stdout unless given) to the VM's serial console until the escape
    (ctrl+]) or the console closes; returns what ended it, e.g. 'web01: detached (^])'. The terminal is
    put in raw mode (every key goes to the guest, ctrl+c included) and restored on every path. With
    `audit`, the session is recorded (started before it opens: not opened when that cannot be written;
    a takeover of another session; how it ended)."""
    _refuse_on_event_loop()
    in_fd = sys.stdin.fileno() if in_fd is None else in_fd
    out_fd = sys.stdout.fileno() if out_fd is None else out_fd
    if audit is not None:
        try:
            audit("started", "")
        except AuditError as exc:
            raise ActionError(f"console not opened: {exc}") from exc
    try:
        stream, name, took_over = open_console(conn, uuid)
    except Exception as exc:
        if audit is not None:
            with contextlib.suppress(AuditError):
                audit("failed", str(exc))
        raise
    saved: list[Any] | None = None
    reason = "ended"
    try:
        if took_over and audit is not None:
            with contextlib.suppress(AuditError):  # the session is open now: say so on screen too
                audit("took-over", TAKEOVER)
        sys.stdout.flush()
        if os.isatty(in_fd):
            import termios
            import tty

            saved = termios.tcgetattr(in_fd)
            tty.setraw(in_fd, termios.TCSANOW)
        note = f"; {TAKEOVER}" if took_over else ""
        _write_all(out_fd, f"Connected to {name} (escape: {escape_name(escape)}){note}\r\n".encode())
        reason = relay(stream, in_fd, out_fd, escape)
    except BaseException as exc:
        reason = f"ended: {exc or type(exc).__name__}"
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()  # relay never started, or was interrupted: the stream must not stay open
        raise
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
        if audit is not None:
            with contextlib.suppress(AuditError):
                audit("closed", reason)
    with contextlib.suppress(OSError):
        _write_all(out_fd, b"\r\n")
    return f"{name}: {reason}" + (f" ({TAKEOVER})" if took_over else "")


def attach_vm(fleet: Fleet, vm: VmState) -> str:
    """Attach this terminal to `vm`'s serial console over its host's connection, the session recorded in
    the fleet's audit: what both faces run (blocking: call it from a thread). ActionError when there is no
    connection, the console would not open, or the session could not be recorded (then it is not opened)."""
    from vimtui.core.poll.session import NotConnected

    why = console_refusal(vm, host=fleet.state.host(vm.host))
    if why:
        raise ActionError(why)
    session = fleet.sessions.get(vm.host)
    if session is None:
        raise ActionError(f"{vm.host}: no such host")
    try:
        conn = session.connection()
    except NotConnected as exc:
        raise ActionError(str(exc)) from exc
    log = fleet.tasks.audit
    try:
        return attach_terminal(conn, vm.uuid, audit=console_audit(log, vm) if log is not None else None)
    except libvirt.libvirtError as exc:
        raise ActionError(str(exc)) from exc


def console_audit(audit: AuditLog, vm: VmState) -> ConsoleAudit:
    """A ConsoleAudit writing to `audit` for `vm` (action "console"; blocking: the console's thread)."""
    import time

    def record(outcome: str, detail: str) -> object:
        return audit.record(
            time=time.time(),
            host=vm.host,
            vm=vm.name,
            action="console",
            args={},
            outcome=outcome,
            error=detail,
        )

    return record


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _send_all(stream: Any, data: bytes, wake_r: int) -> str:
    """Send all of `data`: '' when sent, else why the console is gone."""
    view = memoryview(data)
    while view:
        try:
            n = stream.send(bytes(view))
        except libvirt.libvirtError as exc:
            return (exc.get_error_message() or str(exc)).strip() or "error"
        if n < 0:  # -2: the outgoing buffers are full for now
            select.select([wake_r], [], [], 0.05)
            continue
        view = view[n:]
    return ""
