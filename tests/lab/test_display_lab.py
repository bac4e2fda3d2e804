"""The graphical console against the lab: a guest with a VNC display on its host's loopback, forwarded
through vimtui's SSH connection to a loopback port here, answers the RFB handshake there (and not on the
host's own address: the display is reached only through SSH); the forward is audited, closes when the VM
stops, and `vimtui vm display` does the same from the command line, printing the address without a
viewer and closing on ctrl+c. A guest without a display is refused, saying so. One scratch guest."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.lab.lab import Lab
from tests.lab.support import seen, started, until
from vimtui.core.actions.base import ActionError
from vimtui.core.actions.display_forward import DisplayForwards, Forward
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.model import VmState

pytestmark = pytest.mark.lab

HOST = "kvm01"
PATIENT = {"interval": 3.0, "call_timeout": 20.0, "keepalive_interval": 5.0, "keepalive_count_max": 4}
"""Deadlines for a loaded 2-core machine: what is tested is the forward, not how fast a slow host is
noticed."""


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await started(lab, tmp_path / "run", audit=AuditLog(tmp_path / "audit.log"), **PATIENT)
    yield f
    await f.stop()


async def rfb(address: str) -> tuple[bytes, bytes]:
    """The RFB server's version line and the security types it offers, read through `address`."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 30)
    try:
        version = await asyncio.wait_for(reader.readexactly(12), 30)
        writer.write(b"RFB 003.008\n")
        await writer.drain()
        count = (await asyncio.wait_for(reader.readexactly(1), 30))[0]
        types = await asyncio.wait_for(reader.readexactly(count), 30) if count else b""
    finally:
        writer.close()
    return version, types


async def refused(host: str, port: int) -> bool:
    """Whether nothing answers on host:port (refused, or nothing within a few seconds)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, TimeoutError):
        return True
    writer.close()
    return False


def live_port(lab: Lab, name: str) -> int:
    """The VNC port libvirt gave the guest, from its live XML over a direct connection."""
    with lab.connect(HOST) as conn:
        root = ET.fromstring(conn.lookupByName(name).XMLDesc(0))
    graphics = root.find("./devices/graphics[@type='vnc']")
    assert graphics is not None
    return int(graphics.get("port", "-1"))


def restart_with(lab: Lab, name: str, change: Callable[[ET.Element], None]) -> None:
    """The guest forced off, its VNC display changed by `change`, and started again (QEMU takes a password,
    or another listener, only when it starts)."""
    with lab.connect(HOST) as conn:
        dom = conn.lookupByName(name)
        dom.destroy()
        root = ET.fromstring(dom.XMLDesc(0))
        graphics = root.find("./devices/graphics[@type='vnc']")
        assert graphics is not None
        change(graphics)
        conn.defineXML(ET.tostring(root, encoding="unicode")).create()


def password(graphics: ET.Element) -> None:
    graphics.set("passwd", "s3cret")


def on_a_socket(graphics: ET.Element) -> None:
    """Listening on a unix socket of the host (libvirt names it), no TCP port at all, no password."""
    for attr in ("port", "autoport", "listen", "passwd"):
        graphics.attrib.pop(attr, None)
    for listen in graphics.findall("listen"):
        graphics.remove(listen)
    ET.SubElement(graphics, "listen", type="socket")


def as_spice(graphics: ET.Element) -> None:
    """A SPICE display instead, on the host's loopback (libvirt picks the port)."""
    graphics.attrib.clear()
    graphics.attrib.update({"type": "spice", "autoport": "yes", "listen": "127.0.0.1"})
    for listen in graphics.findall("listen"):
        graphics.remove(listen)
    ET.SubElement(graphics, "listen", type="address", address="127.0.0.1")


async def spice_link(address: str) -> int:
    """A SPICE link message for the main channel sent through `address`: the server's reply code (0: the
    link may proceed), after checking its reply is SPICE's ("REDQ")."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 30)
    try:
        body = struct.pack("<IBBIII", 0, 1, 0, 0, 0, 18)  # connection 0, main channel, no caps
        writer.write(struct.pack("<4sIII", b"REDQ", 2, 2, len(body)) + body)
        await writer.drain()
        head = await asyncio.wait_for(reader.readexactly(16), 30)
        magic, major, _minor, _size = struct.unpack("<4sIII", head)
        assert (magic, major) == (b"REDQ", 2), (magic, major)
        (error,) = struct.unpack("<I", await asyncio.wait_for(reader.readexactly(4), 30))
    finally:
        writer.close()
    return int(error)


def stopped(reason: str) -> bool:
    """A forward's reason to close that says its VM stopped: published shut off, or seen running again
    since another time (stopped and started between two publishes, as a busy machine can make it)."""
    return "shutoff" in reason or "stopped and started again" in reason


async def closing(ended: asyncio.Event, forward: Forward, closed: list[Forward]) -> None:
    """Wait until `forward` has closed and its closing was told (on_closed); on time out, say what had."""
    try:
        await asyncio.wait_for(ended.wait(), 60)
    except TimeoutError:
        told = [(f.vm.name, f.display.protocol, f.closed) for f in closed]
        said = forward.closed
        pytest.fail(f"not told of the forward's closing within 60 s: it says {said!r}; told of {told}")


async def restarted(fleet: Fleet, lab: Lab, name: str, change: Callable[[ET.Element], None]) -> VmState:
    """The guest restarted with its display changed, once the fleet has seen it stop and run again (a late
    "stopped" would close a forward opened meanwhile)."""
    since = time.time()
    await asyncio.to_thread(restart_with, lab, name, change)
    state = await until(
        fleet,
        f"{name} running again",
        lambda s: any(v.state == "running" and v.state_since >= since for v in s.find_vm(name, HOST)),
    )
    return state.find_vm(name, HOST)[0]


async def cli_display(lab: Lab, data: Path, name: str) -> None:
    """`vimtui vm display NAME --no-viewer --json`: the address printed, the display answering there until
    ctrl+c, which closes it (exit 0), audited in the CLI's own log."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "vimtui"),
        *("--config", str(lab.config_file), "vm", "display", name, "--host", HOST, "--no-viewer", "--json"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "XDG_DATA_HOME": str(data)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        lines: list[str] = []
        while not lines or lines[-1] != "}":
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            assert line, (await proc.stderr.read()).decode()
            lines.append(line.decode().rstrip("\n"))
        doc = json.loads("\n".join(lines))
        assert (doc["vm"], doc["host"], doc["protocol"], doc["viewer"]) == (name, HOST, "vnc", None)
        assert doc["answered"].startswith("RFB 003.00") and doc["answered"].endswith("security: none")
        version, _ = await rfb(doc["address"])
        assert version.startswith(b"RFB 003.00"), version
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
    said = err.decode()
    assert proc.returncode == 0 and "closed (ctrl+c); 1 viewer connection(s)" in said, said
    local_host, _, local_port = doc["address"].rpartition(":")
    assert await refused(local_host, int(local_port))
    # with a viewer (a program of the operator's: given the URL), the forward lasts as long as it runs
    viewer = data / "viewer.py"
    seen_by_viewer = data / "viewer-saw"
    viewer.write_text(
        "#!" + sys.executable + "\nimport socket, sys\n"
        "host, port = sys.argv[-1].removeprefix('vnc://').rsplit(':', 1)\n"
        "s = socket.create_connection((host, int(port)), 30)\n"
        f"open({str(seen_by_viewer)!r}, 'wb').write(s.recv(12))\n"
    )
    viewer.chmod(0o755)
    exe = str(Path(sys.executable).parent / "vimtui")
    done = await asyncio.to_thread(
        subprocess.run,
        [exe, "--config", str(lab.config_file), "vm", "display", name, "--viewer", str(viewer)],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
        env={**os.environ, "XDG_DATA_HOME": str(data)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"started {viewer} vnc://127.0.0.1:" in done.stdout, done.stdout
    assert "closed: the viewer exited; 1 viewer connection(s)" in done.stderr, done.stderr
    assert seen_by_viewer.read_bytes().startswith(b"RFB 003.00")
    log = [json.loads(x) for x in (data / "vimtui" / "audit.log").read_text().splitlines()]
    mine = [(r["vm"], r["outcome"], r["error"].partition(";")[0]) for r in log if r["action"] == "display"]
    closed_as = ["closed by the operator (ctrl+c)", "the viewer exited"]
    assert mine == [x for why in closed_as for x in ((name, "started", ""), (name, "closed", why))], mine


@pytest.mark.timeout(600)
async def test_a_vnc_display_forwarded_over_ssh_answers_rfb_and_closes_with_its_vm(
    lab: Lab, fleet: Fleet, tmp_path: Path
) -> None:
    name = f"disp-{uuid.uuid4().hex[:6]}"
    lab.add_guest(HOST, name, graphics=True)
    try:
        await seen(fleet, HOST, name, within=60)
        state = await until(
            fleet, f"{name} running", lambda s: any(v.state == "running" for v in s.find_vm(name, HOST))
        )
        vm = state.find_vm(name, HOST)[0]
        closed: list[Forward] = []
        ended = asyncio.Event()

        def gone(f: Forward) -> None:
            closed.append(f)
            ended.set()

        forwards = DisplayForwards(fleet, on_closed=gone)
        forward = await forwards.open(vm)
        assert await forwards.open(vm) is forward  # asked again: the one open
        port = await asyncio.to_thread(live_port, lab, name)
        assert (forward.display.protocol, forward.display.remote_port) == ("vnc", port)
        assert forward.local_host == "127.0.0.1" and forward.url == f"vnc://127.0.0.1:{forward.local_port}"
        assert forward.display.password is False and forward.display.loopback_only
        # probed through SSH on a channel of its own: the version and no password (security type none)
        assert forward.probe is not None and forward.probe.version.startswith("RFB 003.00"), forward.probe
        assert forward.probe.security == ("none",) and forward.connections == 0
        assert any(n.startswith("no password") for n in forward.notes)
        # the display answers through the forward, and is not reachable on the host's own address
        version, types = await rfb(forward.address)
        assert version.startswith(b"RFB 003.00"), version
        assert 1 in types, types  # security type None: no password, as the XML says and the notes tell
        assert forward.connections == 1
        assert await refused(lab.host(HOST).address, port)
        # a guest with no display: refused, saying so
        plain = next(v for v in fleet.state.vms_on(HOST) if v.state == "running" and v.name != name)
        with pytest.raises(ActionError, match="has no graphical display"):
            await forwards.open(plain)
        await cli_display(lab, tmp_path, name)
        # the SSH connection goes: the forward closes, saying so
        old = fleet.sessions[HOST].ssh
        old.close()
        await closing(ended, forward, closed)
        assert closed == [forward], closed
        assert forward.closed == f"the SSH connection to {HOST} closed", forward.closed
        assert await refused("127.0.0.1", forward.local_port)
        ended.clear()
        # back, the guest restarted with a password: the probe and the notes say a viewer needs it
        await until(fleet, f"{HOST} back", lambda s: fleet.sessions[HOST].ssh not in (None, old), 120)
        again = await forwards.open(await restarted(fleet, lab, name, password))
        assert again is not forward and again.display.password is True
        assert again.probe is not None and again.probe.security == ("VNC password",), again.probe
        assert "the viewer prompts for it" in again.notes[0] and "s3cret" not in " ".join(again.notes)
        # a display on a unix socket of the host: forwarded to it, answering as well
        on_socket = await forwards.open(await restarted(fleet, lab, name, on_a_socket))
        await closing(ended, again, closed)  # the one before, closed when its guest stopped
        assert closed == [forward, again] and stopped(again.closed), again.closed
        assert await refused("127.0.0.1", again.local_port)
        assert on_socket.display.socket.endswith(".sock") and on_socket.display.remote_port is None
        assert on_socket.probe is not None and on_socket.probe.security == ("none",), on_socket.probe
        version, _ = await rfb(on_socket.address)
        assert version.startswith(b"RFB 003.00") and on_socket.connections == 1
        # a SPICE display: forwarded the same way, its server answering a SPICE link through the forward
        ended.clear()
        assert not on_socket.closed, on_socket.closed  # open until its guest restarts, below
        spice = await forwards.open(await restarted(fleet, lab, name, as_spice))
        await closing(ended, on_socket, closed)
        assert closed == [forward, again, on_socket] and stopped(on_socket.closed), on_socket.closed
        assert (spice.display.protocol, spice.probe) == ("spice", None)
        assert spice.url == f"spice://127.0.0.1:{spice.local_port}"
        assert await spice_link(spice.address) == 0
        # the VM stops: the forward closes by itself, audited
        ended.clear()
        with lab.connect(HOST) as conn:
            conn.lookupByName(name).destroy()
        await closing(ended, spice, closed)
        assert closed == [forward, again, on_socket, spice] and "shutoff" in spice.closed, spice.closed
        assert fleet.tasks.audit is not None
        records = [r for r in fleet.tasks.audit.records() if r.action == "display"]
        assert [(r.vm, r.outcome) for r in records] == [(name, "started"), (name, "closed")] * 4
        assert "1 viewer connection(s)" in records[1].error and "SSH connection" in records[1].error
        assert records[4].args == {"protocol": "vnc", "remote": f"socket {on_socket.display.socket}"}
    finally:
        lab.remove_guest(HOST, name)
