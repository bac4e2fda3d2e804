"""The guest's screen: what its display shows (libvirt's screenshot of it, a PNG or PPM that QEMU writes),
and keys sent to its keyboard, both over the host's libvirt connection (vimtui's SSH tunnel): nothing else
has to reach the host, no VNC port, no viewer.

`grab` and `press` are questions for the host's lane (Fleet.ask): a screenshot is one short stream read
(a 720x400 text screen is ~5 KB, a 1024x768 desktop ~100 KB), a key one call. The `send-keys` action is
the same keys as a task (CLI, palette, `:`), audited with the keys it pressed; typed text is audited by
its length only, since it may be a password typed at a login prompt.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import libvirt

from vimtui.core.actions.base import RUNNING, ActionError, VmAction
from vimtui.core.actions.guest_keys import MAX_CHORD, BadKeys, Chord, chord_name, parse_keys, text_chords
from vimtui.core.actions.params import Param
from vimtui.core.model import FleetState, HostState, VmState
from vimtui.core.profiles import Profile, refusal

if TYPE_CHECKING:
    from vimtui.core.fleet.fleet import Fleet
    from vimtui.core.fleet.tasks import TaskContext

SCREEN_NEEDS: Profile = "operator"
"""Seeing a guest's screen shows what its console shows, and its keys are a keyboard on it: as the
serial console."""
SCREEN_STATES = frozenset({"running", "paused", "blocked"})
"""A paused guest's screen is its last frame (a VM paused on an I/O error shows why)."""
CHUNK = 256 * 1024
MAX_BYTES = 64 * 2**20
"""A screenshot larger than this is refused (an uncompressed 4K frame is 25 MB)."""
HOLD_MS = 30
"""How long each chord is held: short enough to type a line in a second, long enough for any guest."""


@dataclass(frozen=True)
class Shot:
    """One screenshot: its bytes as the host sent them (`mime`: image/png or image/x-portable-pixmap),
    and how long the host took to send it."""

    mime: str
    data: bytes
    seconds: float


def screen_refusal(vm: VmState, host: HostState | None = None) -> str | None:
    """Why `vm`'s screen cannot be shown now (None: it can): the profile on its host, a host that does not
    answer, a VM that is not running (a shut-off VM has no display)."""
    if host is not None and (why := refusal(host.profile, SCREEN_NEEDS, host.name, "The guest's screen")):
        return why
    if vm.stale:
        return f"{vm.name}: its host {vm.host} is not answering; its screen cannot be read"
    if vm.state not in SCREEN_STATES:
        return f"{vm.name} is {vm.state}: only a running (or paused) VM has a screen to show"
    return None


def _domain(conn: Any, uuid: str) -> Any:
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise ActionError("the VM is no longer defined on its host") from exc
        raise


def grab(conn: Any, uuid: str, screen: int = 0) -> Shot:
    """The VM's display `screen` as the host's QEMU draws it (blocking: on the host's lane). ActionError
    when the VM has no display (no video device or graphics) or is not running, with libvirt's words."""
    dom = _domain(conn, uuid)
    started = time.monotonic()
    stream = conn.newStream(0)
    try:
        try:
            mime = dom.screenshot(stream, screen, 0)
        except libvirt.libvirtError as exc:
            msg = (exc.get_error_message() or str(exc)).strip()
            raise ActionError(f"{dom.name()}: no screenshot: {msg}") from exc
        data = bytearray()
        while True:
            got = stream.recv(CHUNK)
            if not isinstance(got, bytes) or not got:
                break
            data += got
            if len(data) > MAX_BYTES:
                raise ActionError(f"{dom.name()}: its screenshot is over {MAX_BYTES // 2**20} MB")
        stream.finish()
    except BaseException:
        try:
            stream.abort()
        except libvirt.libvirtError:
            pass  # already finished or gone with the connection
        raise
    return Shot(str(mime or "image/x-portable-pixmap"), bytes(data), time.monotonic() - started)


def press(conn: Any, uuid: str, chords: list[Chord], hold_ms: int = HOLD_MS) -> int:
    """Press each chord in turn on the VM's keyboard (blocking: on the host's lane); how many were sent.
    QEMU queues them with their hold time, so they reach the guest in order."""
    dom = _domain(conn, uuid)
    for chord in chords:
        if not chord or len(chord) > MAX_CHORD:
            raise ActionError(f"a chord of {len(chord)} keys: 1 to {MAX_CHORD}")
        try:
            dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, hold_ms, list(chord), len(chord), 0)
        except libvirt.libvirtError as exc:
            msg = (exc.get_error_message() or str(exc)).strip()
            raise ActionError(f"{dom.name()}: keys not sent: {msg}") from exc
    return len(chords)


# -- the send-keys action ---------------------------------------------------------------------------


def send_keys(ctx: TaskContext, dom: Any, keys: tuple[str, ...] = (), text: str = "") -> str:
    """Type `text`, then press `keys`, on the guest's keyboard."""
    try:
        chords = text_chords(text) + parse_keys(keys)
    except BadKeys as exc:
        raise ActionError(str(exc)) from exc
    if not chords:
        raise ActionError("nothing to send: give keys (ctrl+alt+del, enter ...) or text")
    press(ctx.conn, dom.UUIDString(), chords)
    said = [f"{len(text)} character(s) typed"] if text else []
    if keys:
        said.append("pressed " + " ".join(chord_name(c) for c in parse_keys(keys)))
    return "; ".join(said)


def _check_keys(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    try:
        chords = text_chords(str(args.get("text") or "")) + parse_keys(args.get("keys") or ())
    except BadKeys as exc:
        return str(exc)
    return None if chords else "nothing to send: give keys (ctrl+alt+del, enter ...) or text"


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "send-keys",
        "Send keys",
        "Type text, then press keys, on the guest's keyboard (its screen: v)",
        send_keys,
        params=(
            Param(
                "keys",
                "list",
                "keys pressed in turn after the text: ctrl+alt+del, enter, esc, f2, alt+f2, ctrl+c ...",
                positional=True,
                metavar="KEYS",
            ),
            Param("text", "text", "text typed first, as a US keyboard types it (audited by its length)"),
        ),
        states=RUNNING,
        not_applicable="only a running guest reads its keyboard",
        check=_check_keys,
        needs=SCREEN_NEEDS,
        bulk=False,
        timeout=60.0,
    ),
)


# -- the screen view's session ----------------------------------------------------------------------


async def screen_record(fleet: Fleet, vm: VmState, outcome: str, detail: str = "", **args: Any) -> str:
    """One step of the screen view on `vm` (started, keys, closed) in the fleet's audit log, off the event
    loop; '' when recorded (or there is no log), else why it could not be."""
    from vimtui.core.fleet.audit import AuditError

    log = fleet.tasks.audit
    if log is None:
        return ""
    try:
        await asyncio.to_thread(
            log.record,
            time=time.time(),
            host=vm.host,
            vm=vm.name,
            action="screen",
            args=args,
            outcome=outcome,
            error=detail,
        )
    except AuditError as exc:
        return str(exc)
    return ""
