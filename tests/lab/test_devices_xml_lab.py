"""Edit XML, attach and detach disks and NICs, as tasks on real lab guests; every effect (and every
non-effect of a refused request) checked through libvirt directly (lab.connect), never through vimtui."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.lab.lab import Lab
from tests.lab.support import act, booted_times, eventually, seen, started
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task, TaskState

pytestmark = pytest.mark.lab

INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
RUNNER_HOST = "kvm03"
MAC = re.compile(r"52:54:00(:[0-9a-f]{2}){3}")


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await started(lab, tmp_path / "run", audit=AuditLog(tmp_path / "audit.log"))
    yield f
    await f.stop()


@pytest.fixture
def scratch(lab: Lab) -> Iterator[list[tuple[str, str]]]:
    """(host, name) of guests a test made: removed afterwards (their volumes too) whatever happened."""
    made: list[tuple[str, str]] = []
    try:
        yield made
    finally:
        for host, name in made:
            lab.remove_guest(host, name)


@pytest.fixture(scope="module")
def runner(lab: Lab) -> Iterator[str]:
    """A running scratch guest shared by this module's live tests (a TCG guest takes ~40 s to boot); each
    test leaves it with the devices it had. Removed at the end, with its volumes."""
    name = f"t-{uuid.uuid4().hex[:6]}"
    try:
        lab.add_guest(RUNNER_HOST, name, disk=True)
        yield name
    finally:
        lab.remove_guest(RUNNER_HOST, name)


def new_guest(
    lab: Lab, scratch: list[tuple[str, str]], host: str, *, disk: bool = False, start: bool = True
) -> str:
    name = f"t-{uuid.uuid4().hex[:6]}"
    scratch.append((host, name))
    lab.add_guest(host, name, disk=disk, start=start)
    return name


def new_volume(lab: Lab, host: str, guest: str, suffix: str, fmt: str = "qcow2") -> str:
    """A small volume in the host's default pool, named after the guest (remove_guest deletes it)."""
    name = f"{guest}-{suffix}.{'img' if fmt == 'raw' else fmt}"
    with lab.connect(host) as conn:
        conn.storagePoolLookupByName("default").createXML(
            f"<volume><name>{name}</name><capacity unit='MiB'>16</capacity>"
            f"<target><format type='{fmt}'/></target></volume>",
            0,
        )
    return name


def definition(lab: Lab, host: str, name: str, *, live: bool = False) -> str:
    with lab.connect(host) as conn:
        return str(conn.lookupByName(name).XMLDesc(0 if live else INACTIVE))


def disks(lab: Lab, host: str, name: str, *, live: bool = False) -> dict[str, str]:
    """target -> 'type driver source' of the domain's disks, as libvirt has them."""
    out = {}
    for d in ET.fromstring(definition(lab, host, name, live=live)).iterfind("devices/disk"):
        src = d.find("source")
        drv = d.find("driver")
        where = ""
        if src is not None:
            where = src.get("file") or src.get("dev") or f"{src.get('pool')}/{src.get('volume')}"
        tgt = d.find("target")
        assert tgt is not None
        out[tgt.get("dev", "")] = f"{d.get('type')} {drv.get('type') if drv is not None else ''} {where}"
    return out


def macs(lab: Lab, host: str, name: str, *, live: bool = False) -> dict[str, str]:
    """MAC -> network of the domain's NICs, as libvirt has them."""
    out = {}
    for n in ET.fromstring(definition(lab, host, name, live=live)).iterfind("devices/interface"):
        src, mac = n.find("source"), n.find("mac")
        assert mac is not None
        out[mac.get("address", "")] = (
            (src.get("network") or src.get("bridge") or "") if src is not None else ""
        )
    return out


def done(tasks: list[Task]) -> Task:
    assert len(tasks) == 1
    assert tasks[0].state == TaskState.DONE, tasks[0].as_dict()
    return tasks[0]


def failed(tasks: list[Task], *needles: str) -> str:
    assert len(tasks) == 1
    t = tasks[0]
    assert t.state == TaskState.FAILED, t.as_dict()
    for needle in needles:
        assert needle in t.error, t.error
    return t.error


async def booted(lab: Lab, host: str, name: str) -> None:
    """Until the guest has finished its start-up (ACPI up: it can acknowledge an unplug)."""
    await eventually(f"{name} to boot", lambda: booted_times(lab, host, name) >= 1, 240)


# -- edit XML -----------------------------------------------------------------------------------------


async def test_edit_redefines_and_a_rejected_xml_changes_nothing(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]
) -> None:
    name = new_guest(lab, scratch, "kvm01", start=False)
    await seen(fleet, "kvm01", name)
    before = definition(lab, "kvm01", name)
    assert "<description>" not in before

    edited = before.replace(
        f"<name>{name}</name>", f"<name>{name}</name>\n  <description>edited</description>"
    )
    t = done(await act(fleet, "edit", [name], host="kvm01", xml=edited))
    assert t.result == "redefined: 1 line changed", t.result
    now = definition(lab, "kvm01", name)
    assert "<description>edited</description>" in now

    # what libvirt's schema rejects: its own message, and the definition is byte-identical
    for bad, needle in (
        (now.replace("<devices>", "<devices>\n    <bogus/>"), "Extra element devices"),
        (now.replace("<memory unit='KiB'>", "<memory unit='parsecs'>"), "Invalid attribute unit"),
    ):
        failed(
            await act(fleet, "edit", [name], xml=bad),
            "libvirt rejected the XML, nothing changed",
            "failed to validate against schema",
            needle,
        )
        assert definition(lab, "kvm01", name) == now

    # what never reaches libvirt
    cases = (
        (now.replace("</description>", "</descr>"), ("not well-formed", "mismatched tag", "line ")),
        (now.replace(f"<name>{name}</name>", "<name>other</name>"), ("rename is not supported here",)),
        (
            re.sub(r"<uuid>[^<]+</uuid>", f"<uuid>{uuid.uuid4()}</uuid>", now),
            ("the UUID must stay",),
        ),
    )
    for bad, needles in cases:
        failed(await act(fleet, "edit", [name], xml=bad), *needles)
        assert definition(lab, "kvm01", name) == now


async def test_edit_of_a_running_guest_takes_effect_at_the_next_boot(
    lab: Lab, fleet: Fleet, runner: str
) -> None:
    await seen(fleet, RUNNER_HOST, runner)
    before = definition(lab, RUNNER_HOST, runner)
    live = definition(lab, RUNNER_HOST, runner, live=True)
    assert "<memory unit='KiB'>114688</memory>" in before
    edited = before.replace("<memory unit='KiB'>114688</memory>", "<memory unit='KiB'>131072</memory>")
    t = done(await act(fleet, "edit", [runner], host=RUNNER_HOST, xml=edited))
    assert t.result == "redefined: 1 line changed; takes effect at the next boot", t.result
    assert "<memory unit='KiB'>131072</memory>" in definition(lab, RUNNER_HOST, runner)
    assert definition(lab, RUNNER_HOST, runner, live=True) == live
    # back as it was (the next tests share this guest)
    done(await act(fleet, "edit", [runner], host=RUNNER_HOST, xml=before))
    assert definition(lab, RUNNER_HOST, runner) == before


# -- disks --------------------------------------------------------------------------------------------


async def test_attach_and_detach_disks_of_a_shut_off_guest(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]
) -> None:
    name = new_guest(lab, scratch, "kvm01", disk=True, start=False)
    await seen(fleet, "kvm01", name)
    vol = new_volume(lab, "kvm01", name, "d1")
    raw = new_volume(lab, "kvm01", name, "d2", fmt="raw")
    assert set(disks(lab, "kvm01", name)) == {"vda"}

    # by POOL/VOLUME: the next free target, the volume's format
    t = done(await act(fleet, "attach-disk", [name], host="kvm01", source=f"default/{vol}"))
    assert "as vdb" in t.result and "in its config" in t.result, t.result
    assert disks(lab, "kvm01", name)["vdb"] == f"volume qcow2 default/{vol}"

    # by its path on the host, a target of our choosing, raw, read-only
    path = f"/var/lib/libvirt/images/{raw}"
    t = done(await act(fleet, "attach-disk", [name], source=path, target="vdd", readonly=True))
    assert "as vdd" in t.result and "raw, read-only" in t.result, t.result
    assert disks(lab, "kvm01", name)["vdd"] == f"file raw {path}"
    assert "<readonly/>" in definition(lab, "kvm01", name)

    t = done(await act(fleet, "detach-disk", [name], target="vdb"))
    assert t.result.startswith("detached disk vdb from its config"), t.result
    t = done(await act(fleet, "detach-disk", [name], target="vdd"))
    assert set(disks(lab, "kvm01", name)) == {"vda"}
    with lab.connect("kvm01") as conn:  # the volumes stay
        pool = conn.storagePoolLookupByName("default")
        assert {vol, raw} <= set(pool.listVolumes())


async def test_attach_and_detach_a_disk_of_a_running_guest(lab: Lab, fleet: Fleet, runner: str) -> None:
    await seen(fleet, RUNNER_HOST, runner)
    vol = new_volume(lab, RUNNER_HOST, runner, f"live{uuid.uuid4().hex[:4]}")
    t = done(await act(fleet, "attach-disk", [runner], host=RUNNER_HOST, source=f"default/{vol}"))
    assert "as vdb" in t.result and "live and in its config" in t.result, t.result
    assert disks(lab, RUNNER_HOST, runner, live=True)["vdb"] == f"volume qcow2 default/{vol}"
    assert disks(lab, RUNNER_HOST, runner)["vdb"] == f"volume qcow2 default/{vol}"

    # the unplug needs the guest's ACPI: it acknowledges it once it has booted
    await booted(lab, RUNNER_HOST, runner)
    t = done(await act(fleet, "detach-disk", [runner], host=RUNNER_HOST, target="vdb"))
    assert t.result == "detached disk vdb from the running guest and from its config", t.result
    assert "vdb" not in disks(lab, RUNNER_HOST, runner, live=True)
    assert "vdb" not in disks(lab, RUNNER_HOST, runner)


async def test_a_detach_the_guest_does_not_acknowledge_says_it_is_still_attached(
    lab: Lab, fleet: Fleet, runner: str
) -> None:
    """A paused guest cannot acknowledge an unplug: the task fails saying the disk is still attached (and
    gone from the config); once the guest runs again it lets go."""
    await seen(fleet, RUNNER_HOST, runner)
    await booted(lab, RUNNER_HOST, runner)
    vol = new_volume(lab, RUNNER_HOST, runner, f"ack{uuid.uuid4().hex[:4]}")
    done(await act(fleet, "attach-disk", [runner], host=RUNNER_HOST, source=f"default/{vol}", target="vdc"))
    done(await act(fleet, "suspend", [runner], host=RUNNER_HOST))
    try:
        failed(
            await act(fleet, "detach-disk", [runner], host=RUNNER_HOST, target="vdc", timeout=5.0),
            "disk vdc is still attached to the running guest after 5 s",
            "has not acknowledged the unplug",
            "gone from its config",
        )
        assert "vdc" in disks(lab, RUNNER_HOST, runner, live=True)
        assert "vdc" not in disks(lab, RUNNER_HOST, runner)
    finally:
        with lab.connect(RUNNER_HOST) as conn:
            dom = conn.lookupByName(runner)
            if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()
    await eventually(
        "the resumed guest to let go of vdc",
        lambda: "vdc" not in disks(lab, RUNNER_HOST, runner, live=True),
        60,
    )


# -- NICs ---------------------------------------------------------------------------------------------


async def test_attach_and_detach_a_nic_of_a_running_guest(lab: Lab, fleet: Fleet, runner: str) -> None:
    await seen(fleet, RUNNER_HOST, runner)
    original = macs(lab, RUNNER_HOST, runner, live=True)
    assert len(original) == 1

    t = done(await act(fleet, "attach-nic", [runner], host=RUNNER_HOST, network="default"))
    found = MAC.search(t.result)
    assert found and "on network default: live and in its config" in t.result, t.result
    mac = found.group(0)
    assert macs(lab, RUNNER_HOST, runner, live=True) == {**original, mac: "default"}
    assert macs(lab, RUNNER_HOST, runner) == {**original, mac: "default"}

    # one of our choosing, written in capitals
    chosen = "52:54:00:AB:CD:EF"
    t = done(await act(fleet, "attach-nic", [runner], network="default", mac=chosen, model="e1000"))
    assert "e1000 NIC 52:54:00:ab:cd:ef" in t.result, t.result
    assert "52:54:00:ab:cd:ef" in macs(lab, RUNNER_HOST, runner, live=True)

    await booted(lab, RUNNER_HOST, runner)
    for m in (mac, chosen):
        t = done(await act(fleet, "detach-nic", [runner], mac=m))
        assert t.result == f"detached NIC {m.lower()} from the running guest and from its config", t.result
    assert macs(lab, RUNNER_HOST, runner, live=True) == original
    assert macs(lab, RUNNER_HOST, runner) == original


# -- refusals -----------------------------------------------------------------------------------------


async def test_bad_input_is_refused_and_changes_nothing(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]], runner: str
) -> None:
    name = new_guest(lab, scratch, "kvm01", disk=True, start=False)
    await seen(fleet, "kvm01", name)
    vol = new_volume(lab, "kvm01", name, "d1")
    before = definition(lab, "kvm01", name)
    cases: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
        (
            "attach-disk",
            {"source": "default/nope.qcow2"},
            ("no volume 'nope.qcow2' in storage pool 'default'",),
        ),
        (
            "attach-disk",
            {"source": "nopool/x.qcow2"},
            ("no storage pool 'nopool' on kvm01", "pools: default"),
        ),
        ("attach-disk", {"source": "/tmp/nothing.img"}, ("/tmp/nothing.img is not a volume of any",)),
        ("attach-disk", {"source": "nothing"}, ("say POOL/VOLUME or an absolute path",)),
        ("attach-disk", {"source": f"default/{vol}", "target": "vda"}, ("target vda is already used",)),
        ("attach-disk", {"source": f"default/{name}.qcow2"}, ("is already attached", "as vda")),
        ("attach-disk", {"source": f"default/{vol}", "bus": "floppy"}, ("bus 'floppy'",)),
        ("attach-disk", {}, ("needs source=",)),
        ("detach-disk", {"target": "vdz"}, ("no disk 'vdz'", "disks: vda")),
        ("detach-nic", {"mac": "52:54:00:00:00:01"}, ("no NIC with MAC 52:54:00:00:00:01",)),
        ("attach-nic", {"network": "nonet"}, ("no network 'nonet' on kvm01", "networks: default")),
        ("attach-nic", {"mac": "zz"}, ("MAC 'zz'",)),
        ("attach-nic", {"network": "default", "bridge": "br0"}, ("not both",)),
    ]
    for action, args, needles in cases:
        failed(await act(fleet, action, [name], host="kvm01", **args), *needles)
        assert definition(lab, "kvm01", name) == before, (action, args)

    # the same on a running guest: neither its config nor the live guest changes
    await seen(fleet, RUNNER_HOST, runner)
    config, live = definition(lab, RUNNER_HOST, runner), definition(lab, RUNNER_HOST, runner, live=True)
    (nic,) = macs(lab, RUNNER_HOST, runner)
    live_cases: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
        ("attach-nic", {"network": "nonet"}, ("no network 'nonet'",)),
        ("attach-nic", {"mac": nic}, (f"MAC {nic} is already used",)),
        ("detach-nic", {"mac": "52:54:00:00:00:01"}, ("no NIC with MAC",)),
        ("detach-disk", {"target": "vdz"}, ("no disk 'vdz'",)),
        ("attach-disk", {"source": "default/nope.qcow2"}, ("no volume 'nope.qcow2'",)),
    ]
    for action, args, needles in live_cases:
        failed(await act(fleet, action, [runner], host=RUNNER_HOST, **args), *needles)
        assert definition(lab, RUNNER_HOST, runner) == config, (action, args)
        assert definition(lab, RUNNER_HOST, runner, live=True) == live, (action, args)
