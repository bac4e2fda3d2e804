"""What had no test: a disk-only external snapshot, autostart refused for a transient VM, and the agent and
device events libvirt sends, seen in vimtui's event feed as `virsh event` sees them on the host itself
(a device's removal is not tested: the lab guest under TCG on a loaded machine took over 400 s to release a
hot-unplugged NIC, when it did).
Every effect is checked through libvirt directly (lab.connect, virsh on the host), not vimtui's state."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libvirt
import pytest

from tests.lab.lab import Lab
from tests.lab.support import act, booted_times, eventually, seen, started
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import TaskState

pytestmark = pytest.mark.lab

HOST = "kvm02"
IMAGES = "/var/lib/libvirt/images"


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    # patient: a connection dropped by a missed keepalive on a loaded machine loses the events meanwhile
    f = await started(lab, tmp_path / "run", call_timeout=30.0, keepalive_interval=5.0, keepalive_count_max=6)
    yield f
    await f.stop()


@pytest.fixture
def scratch(lab: Lab) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        lab.remove_guest(HOST, name)
        lab.exec(HOST, ["sh", "-c", f"rm -f {IMAGES}/{name}.*"], check=False)  # overlays of snapshots


def guest(lab: Lab, scratch: list[str], prefix: str, **kw: object) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    scratch.append(name)
    lab.add_guest(HOST, name, **kw)  # type: ignore[arg-type]
    return name


async def test_a_disk_only_snapshot_puts_an_overlay_under_the_running_guest(
    lab: Lab, fleet: Fleet, scratch: list[str]
) -> None:
    name = await asyncio.to_thread(guest, lab, scratch, "dsk", disk=True)
    await seen(fleet, HOST, name)
    [task] = await act(fleet, "snapshot", [name], host=HOST, name="ext1", disk_only=True)
    assert task.state == TaskState.DONE, task.error
    assert "disk-only (external)" in task.result

    def check() -> None:
        with lab.connect(HOST) as conn:
            dom = conn.lookupByName(name)
            assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING  # never paused for good, never stopped
            snap = dom.snapshotLookupByName("ext1")
            assert dom.snapshotCurrent().getName() == "ext1"
            sx = ET.fromstring(snap.getXMLDesc())
            assert sx.findtext("state") == "disk-snapshot"
            assert sx.find("memory").get("snapshot") == "no"  # type: ignore[union-attr]
            assert sx.find("disks/disk[@name='vda']").get("snapshot") == "external"  # type: ignore[union-attr]
            # the guest now writes to a new overlay whose backing file is its old volume
            disk = ET.fromstring(dom.XMLDesc()).find("devices/disk[@device='disk']")
            assert disk is not None
            source = disk.find("source")
            assert source is not None
            overlay = source.get("file") or ""
            assert overlay and overlay != f"{IMAGES}/{name}.qcow2", overlay
            backing = disk.find("backingStore/source")
            assert backing is not None
            assert (backing.get("file"), backing.get("volume")) in (
                (f"{IMAGES}/{name}.qcow2", None),
                (None, f"{name}.qcow2"),
            ), ET.tostring(disk, encoding="unicode")
        info = lab.exec(HOST, ["qemu-img", "info", "-U", "--output=json", overlay])
        assert f'"backing-filename": "{IMAGES}/{name}.qcow2"' in info, info

    await asyncio.to_thread(check)


async def test_autostart_is_refused_for_a_transient_vm_and_nothing_changes(
    lab: Lab, fleet: Fleet, scratch: list[str]
) -> None:
    name = await asyncio.to_thread(guest, lab, scratch, "tra", start=False)

    def make_transient() -> None:
        with lab.connect(HOST) as conn:
            dom = conn.lookupByName(name)
            dom.create()
            dom.undefine()  # running, no longer defined: transient
            assert not dom.isPersistent()

    await asyncio.to_thread(make_transient)
    await eventually(f"{name} transient in the fleet", lambda: fleet.state.find_vm(name, HOST), 60)
    [task] = await act(fleet, "autostart", [name], host=HOST, enable=True)
    assert task.state == TaskState.FAILED and "a transient VM cannot start with its host" in task.error

    def unchanged() -> None:
        with lab.connect(HOST) as conn:
            dom = conn.lookupByName(name)
            assert not dom.isPersistent() and not dom.autostart()
        links = lab.exec(HOST, ["ls", "/etc/libvirt/qemu/autostart"], check=False)
        assert name not in links

    await asyncio.to_thread(unchanged)


AGENT_CHANNEL = """<channel type='unix'>
  <target type='virtio' name='org.qemu.guest_agent.0'/>
</channel>"""
OPEN_PORT = "[ -f /tmp/port ] || { for d in /dev/vport*; do exec 7<>$d; done; touch /tmp/port; }"
CLOSE_PORT = "exec 7>&-; rm -f /tmp/port"
# typed on the guest's serial console (a line may be typed twice: the guard); the shell there holds the port


def virsh_kinds(text: str, name: str) -> list[tuple[str, str]]:
    """(kind, detail) of the events `virsh event --loop` printed for the guest, in vimtui's words."""
    out = []
    for line in text.splitlines():
        m = re.match(rf"event '([\w-]+)' for domain '?{re.escape(name)}'?: (.*)", line)
        if not m:
            continue
        kind, rest = m.groups()
        if kind == "agent-lifecycle":
            state = re.search(r"state: '(\w+)'", rest)
            out.append((f"agent-{state.group(1) if state else '?'}", ""))
        elif kind in ("device-added", "device-removed"):
            out.append((kind, rest.strip()))
    return out


class Witness:
    """`virsh event --loop` on the host itself, for the guest: the witness vimtui's feed is held against.

    Made by `watching`, which returns only once virsh is provably listening: it has printed the
    metadata-change event of a description the witness set itself (virsh registers its callbacks after
    it starts, so an event sent before that would be missed and the comparison would wrongly fail)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc, self.lines = proc, list[str]()

    async def read_until(self, pattern: str, seconds: float) -> bool:
        """Read the witness's lines for up to `seconds`; True once one matches `pattern`."""
        assert self.proc.stdout is not None
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), left)
            except TimeoutError:
                return False
            if not raw:
                return False
            self.lines.append(line := raw.decode(errors="replace").rstrip("\n"))
            if re.search(pattern, line):
                return True
        return False

    async def stopped(self) -> str:
        """Stop the witness; all it printed."""
        with contextlib.suppress(ProcessLookupError):  # nsenter and the virsh it forked
            os.killpg(self.proc.pid, signal.SIGTERM)
        out, _ = await asyncio.wait_for(self.proc.communicate(), 30)
        return "\n".join([*self.lines, out.decode(errors="replace")])


async def watching(lab: Lab, name: str) -> Witness:
    h = lab.host(HOST)
    witness = Witness(
        await asyncio.create_subprocess_exec(
            *["nsenter", "-t", str(h.pid), "-m", "-u", "-n", "-p", "--"],
            *["virsh", "event", "--domain", name, "--all", "--loop", "--timeout", "900"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    )
    ready = rf"event 'metadata-change' for domain '?{re.escape(name)}'?"
    for attempt in range(60):  # a mark every 2 s until virsh shows it is listening
        mark = ["virsh", "desc", name, "--live", "--new-desc", f"witness mark {attempt}"]
        await asyncio.to_thread(lab.exec, HOST, mark)
        if await witness.read_until(ready, 2):
            return witness
    await witness.stopped()
    raise AssertionError(f"virsh event never showed the witness's own mark for {name}")


class Feed:
    """The guest's events in the fleet's event log (Fleet.events) since it was made: (kind, detail)."""

    def __init__(self, fleet: Fleet, name: str) -> None:
        self.fleet, self.name = fleet, name
        self.held = list(fleet.events)  # held, so that no later event can take one of their ids
        self.before = {id(e) for e in self.held}

    def __iter__(self) -> Iterator[tuple[str, str]]:
        got = [e for e in self.fleet.events if id(e) not in self.before and e.vm == self.name]
        return iter([(e.kind, e.detail) for e in got])


def feed_of(fleet: Fleet, name: str, prefix: str) -> Feed:
    return Feed(fleet, name)


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_agent_events_reach_the_feed_as_virsh_sees_them(
    lab: Lab, fleet: Fleet, scratch: list[str]
) -> None:
    """The guest opens and closes its agent channel (no agent needed: libvirt reports the channel's state)."""
    name = await asyncio.to_thread(guest, lab, scratch, "agt", start=False)

    def with_agent_channel() -> None:
        with lab.connect(HOST) as conn:
            dom = conn.lookupByName(name)
            root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            devices = root.find("devices")
            assert devices is not None
            devices.append(ET.fromstring(AGENT_CHANNEL))
            conn.defineXML(ET.tostring(root, encoding="unicode")).create()

    await asyncio.to_thread(with_agent_channel)
    await seen(fleet, HOST, name)
    await eventually(f"{name} booted", lambda: booted_times(lab, HOST, name) >= 1, 180)
    feed = feed_of(fleet, name, "agent-")
    witness = await watching(lab, name)
    try:
        assert await asyncio.to_thread(lab.on_console, HOST, name, OPEN_PORT, 120)
        await eventually("agent connected in the feed", lambda: ("agent-connected", "") in feed, 180)
        assert await asyncio.to_thread(lab.on_console, HOST, name, CLOSE_PORT, 120)
        await eventually("agent disconnected in the feed", lambda: ("agent-disconnected", "") in feed, 180)
    finally:
        seen_by_virsh = await witness.stopped()
    ours = [e for e in feed if e[0].startswith("agent-")]
    assert ours == [("agent-connected", ""), ("agent-disconnected", "")], ours
    assert virsh_kinds(seen_by_virsh, name) == ours, seen_by_virsh


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_device_events_reach_the_feed_as_virsh_sees_them(
    lab: Lab, fleet: Fleet, scratch: list[str]
) -> None:
    name = await asyncio.to_thread(guest, lab, scratch, "dev")
    await seen(fleet, HOST, name)
    await eventually(f"{name} booted", lambda: booted_times(lab, HOST, name) >= 1, 180)
    feed = feed_of(fleet, name, "device-")
    witness = await watching(lab, name)
    try:
        attach = ["virsh", "attach-interface", name, "network", "default", "--model", "virtio", "--live"]
        await asyncio.to_thread(lab.exec, HOST, attach)
        await eventually("device added in the feed", lambda: any(k == "device-added" for k, _ in feed), 120)
        [alias] = [d for k, d in feed if k == "device-added"]
        with lab.connect(HOST) as conn:  # the alias is the new NIC's, in libvirt's live XML
            mac = nic_mac(conn.lookupByName(name).XMLDesc(), alias)
        # the booted guest acknowledges the unplug: libvirt then says the device is gone
        detach = ["virsh", "detach-interface", name, "network", "--mac", mac, "--live"]
        await asyncio.to_thread(lab.exec, HOST, detach)
        await eventually("device removed in the feed", lambda: ("device-removed", alias) in feed, 120)
    finally:
        seen_by_virsh = await witness.stopped()
    ours = [e for e in feed if e[0].startswith("device-")]
    assert ours == [("device-added", alias), ("device-removed", alias)], ours
    assert virsh_kinds(seen_by_virsh, name) == ours, seen_by_virsh
    with lab.connect(HOST) as conn:
        assert f"<alias name='{alias}'/>" not in conn.lookupByName(name).XMLDesc()


def nic_mac(xml: str, alias: str) -> str:
    """The MAC address of the interface whose alias is `alias` in a domain's live XML."""
    for nic in ET.fromstring(xml).iterfind("devices/interface"):
        a, m = nic.find("alias"), nic.find("mac")
        if a is not None and a.get("name") == alias and m is not None:
            return str(m.get("address"))
    raise AssertionError(f"no interface with alias {alias} in the live XML")
