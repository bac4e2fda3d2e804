"""Creating VMs on a lab host, through the real task path (a fleet over SSH): from a template (full copy and
linked), from a cloud image with a cloud-init seed, and bad input that must leave the host as it was. Every
check of the outcome goes to libvirt directly (lab.connect), never through vimtui's own state.

The fleet's connections live on the event loop (libvirt keepalives, SSH): everything blocking here (libvirt
calls of the checks, qemu-io on the host) runs in a thread, never on the loop, or a loaded machine sees the
lab host drop the fleet's connection mid-test."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from typing import Any

import libvirt
import pytest

from tests.lab.gates import Gate, copy_gate, wait_held
from tests.lab.lab import Lab, hardware_virt
from tests.lab.support import dom_state, seen, started, until
from vimtui.core.actions import cloudinit, operations
from vimtui.core.actions.create_image import submit_create_from_image
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task, TaskState

pytestmark = pytest.mark.lab

HOST = "kvm03"
IMAGES = "/var/lib/libvirt/images"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxhYmtleWZvcnZpbXR1aXRlc3RzMDAwMDAwMDAwMDAw ops@lab"
PATTERN = "0x5a"


off = asyncio.to_thread


def virt() -> str:
    """The domain type the lab's own guests use on this machine (kvm needs vmx/svm, not just /dev/kvm)."""
    return "kvm" if hardware_virt() else "qemu"


@pytest.fixture(scope="module")
async def fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    # Not the fast fault-detection settings: these tests are about creating VMs, and a lab host that misses
    # two 1 s keepalives on a loaded machine would refuse the action as unreachable.
    f = await started(
        lab,
        tmp_path_factory.mktemp("create") / "run",
        call_timeout=20.0,
        connect_timeout=20.0,
        keepalive_interval=3.0,
        keepalive_count_max=5,
    )
    try:
        yield f
    finally:
        await f.stop()


@pytest.fixture
async def scratch(lab: Lab) -> AsyncIterator[Callable[[str], str]]:
    """Fresh names for what a test makes on HOST; every guest and volume named after them is removed after
    the test, whatever happened."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(f"{prefix}-{uuid.uuid4().hex[:6]}")
        return names[-1]

    yield make
    for n in reversed(names):  # what was made from a template before the template
        await off(lab.remove_guest, HOST, n)


def inventory(lab: Lab) -> tuple[set[str], set[str]]:
    """Domains and volumes of the default pool on HOST, as libvirt says (pool refreshed: files made behind
    libvirt's back count too)."""
    with lab.connect(HOST) as conn:
        pool = conn.storagePoolLookupByName("default")
        pool.refresh(0)
        return {d.name() for d in conn.listAllDomains()}, {v.name() for v in pool.listAllVolumes()}


def make_image(lab: Lab, name: str, mib: int = 64) -> str:
    """A small qcow2 'cloud image' volume in HOST's default pool, with a pattern at its start."""
    vol_name = f"{name}.qcow2"
    with lab.connect(HOST) as conn:
        conn.storagePoolLookupByName("default").createXML(
            f"<volume><name>{vol_name}</name><capacity unit='MiB'>{mib}</capacity>"
            "<target><format type='qcow2'/></target></volume>",
            0,
        )
    write_pattern(lab, f"{IMAGES}/{vol_name}")
    return vol_name


def write_pattern(lab: Lab, path: str) -> None:
    lab.exec(HOST, ["qemu-io", "-f", "qcow2", "-c", f"write -P {PATTERN} 0 64k", path])


def has_pattern(lab: Lab, path: str) -> bool:
    """The guest-visible first 64 KiB of a qcow2 image hold the pattern (read-only, shared with a running
    guest; an overlay reads through to its backing file)."""
    out = lab.exec(
        HOST, ["qemu-io", "-r", "-U", "-f", "qcow2", "-c", f"read -P {PATTERN} 0 64k", path], check=False
    )
    return "read 65536/65536 bytes" in out and "Pattern verification failed" not in out


def download(conn: Any, vol: Any) -> bytes:
    size = int(vol.info()[1])
    stream = conn.newStream(0)
    vol.download(stream, 0, size, 0)
    chunks = []
    while True:
        data = stream.recv(256 * 1024)
        if not data:
            break
        chunks.append(data)
    stream.finish()
    return b"".join(chunks)


def macs(root: ET.Element) -> list[str]:
    return [m.get("address", "") for m in root.iterfind("devices/interface/mac")]


def disk_volume(root: ET.Element, device: str = "disk") -> str:
    src = root.find(f"devices/disk[@device='{device}']/source")
    assert src is not None, ET.tostring(root, encoding="unicode")
    return src.get("volume") or src.get("file") or ""


async def until_libvirt(what: str, pred: Callable[[], object], within: float = 60) -> None:
    """Ask libvirt directly (blocking, in a thread: the fleet under test keeps polling) until `pred`."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(pred):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.2)


async def host_up(fleet: Fleet) -> None:
    await until(fleet, f"{HOST} up", lambda s: (h := s.host(HOST)) is not None and h.status.healthy, 60)


async def create_from(fleet: Fleet, template: str, within: float = 300, **args: Any) -> Task:
    """The "create" action on a template, through the same path as the screen and the CLI (not
    support.act: its own `name` parameter would take the new VM's name)."""
    await host_up(fleet)
    found, errors = operations.resolve(fleet.state, [template], HOST)
    assert not errors, errors
    [task] = operations.submit(fleet, operations.plan(fleet.state, "create", found, args))
    return await finished(fleet, task, within)


async def finished(fleet: Fleet, task: Task, within: float = 300) -> Task:
    if not await fleet.tasks.wait([task], within=within):
        pytest.fail(f"task not done after {within} s: {task.as_dict()}")
    return task


# -- from a template ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("linked", [False, True], ids=["copy", "linked"])
async def test_create_from_a_template(
    lab: Lab, fleet: Fleet, scratch: Callable[[str], str], linked: bool
) -> None:
    tpl, new = scratch("tpl"), scratch("new")
    await off(lab.add_guest, HOST, tpl, disk=True, start=False)
    await off(write_pattern, lab, f"{IMAGES}/{tpl}.qcow2")

    def template() -> tuple[str, list[str], str]:
        with lab.connect(HOST) as conn:
            tdom = conn.lookupByName(tpl)
            tpl_vol = conn.storagePoolLookupByName("default").storageVolLookupByName(f"{tpl}.qcow2")
            return tdom.UUIDString(), macs(ET.fromstring(tdom.XMLDesc(0))), tpl_vol.path()

    tpl_uuid, tpl_macs, tpl_path = await off(template)
    await seen(fleet, HOST, tpl)
    t0 = time.monotonic()
    task = await create_from(
        fleet,
        tpl,
        name=new,
        vcpus=2,
        memory_mib=128,
        start=True,
        linked=linked,
    )
    took = time.monotonic() - t0
    assert task.state == TaskState.DONE, task.error
    assert task.progress == 100.0 and new in task.result, task.as_dict()

    def check() -> None:
        with lab.connect(HOST) as conn:
            dom = conn.lookupByName(new)
            root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            assert dom.UUIDString() != tpl_uuid
            new_macs = macs(root)
            assert len(new_macs) == len(tpl_macs) == 1 and not set(new_macs) & set(tpl_macs)
            assert root.findtext("vcpu") == "2"
            assert root.findtext("memory") == str(128 * 1024)
            assert disk_volume(root) == f"{new}.qcow2"
            pool = conn.storagePoolLookupByName("default")
            vol = pool.storageVolLookupByName(f"{new}.qcow2")
            assert vol.path() != tpl_path
            backing = ET.fromstring(vol.XMLDesc(0)).findtext("backingStore/path")
            assert backing == (tpl_path if linked else None)
            logs = {e.get("file") for e in root.iter("log")}
            assert logs == {f"/var/log/libvirt/qemu/{new}-serial.log"}
            # the template is untouched
            tdom = conn.lookupByName(tpl)
            assert tdom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
            assert disk_volume(ET.fromstring(tdom.XMLDesc(0))) == f"{tpl}.qcow2"
        # the new disk holds the template's data (copied, or read through the overlay)
        assert has_pattern(lab, f"{IMAGES}/{new}.qcow2")

    await off(check)
    await until_libvirt(f"{new} running", lambda: dom_state(lab, HOST, new) == "running")
    print(f"create from template ({'linked' if linked else 'copy'}): {took:.1f} s")


async def test_template_refusals_touch_nothing(lab: Lab, fleet: Fleet, scratch: Callable[[str], str]) -> None:
    tpl, other = scratch("tpl"), scratch("oth")
    await off(lab.add_guest, HOST, tpl, disk=True, start=False)
    await off(lab.add_guest, HOST, other, disk=False, start=True)
    await seen(fleet, HOST, tpl)
    await until(
        fleet, f"{other} running", lambda s: any(v.state == "running" for v in s.find_vm(other, HOST))
    )
    before = await off(inventory, lab)
    cases: list[tuple[str, dict[str, Any], str]] = [
        (tpl, {"name": other}, f"a VM named '{other}' already exists on {HOST}"),
        (tpl, {"name": "bad/name"}, "not a usable VM name"),
        (tpl, {"name": scratch("new"), "vcpus": 0}, "vcpus 0 is out of range"),
        (tpl, {"name": scratch("new"), "vcpus": 4000}, "allows at most"),
        (tpl, {"name": scratch("new"), "memory_mib": 10**8}, "MiB is out of range"),
        (other, {"name": scratch("new")}, "is running: only a shut off VM is a template"),
    ]
    for vm, args, message in cases:
        task = await create_from(fleet, vm, **args)
        assert task.state == TaskState.FAILED and message in task.error, (
            f"{args}: {task.state} {task.error!r}"
        )
    assert await off(inventory, lab) == before


# -- from a cloud image ------------------------------------------------------------------------------------


async def test_create_from_an_image_with_a_cloud_init_seed(
    lab: Lab, fleet: Fleet, scratch: Callable[[str], str]
) -> None:
    image, name = await off(make_image, lab, scratch("img")), scratch("ci")
    await host_up(fleet)
    t0 = time.monotonic()
    task = submit_create_from_image(
        fleet,
        HOST,
        name=name,
        image=f"default/{image}",
        vcpus=1,
        memory_mib=128,
        disk_gib=1,
        hostname="ci-host.lab",
        user="ops",
        ssh_keys=[KEY],
        domain_type=virt(),
    )
    await finished(fleet, task)
    took = time.monotonic() - t0
    assert task.state == TaskState.DONE, task.error
    assert task.args["ssh_keys"] == ["ops@lab"] and task.vm == name

    def check() -> bytes:
        with lab.connect(HOST) as conn:
            dom = conn.lookupByName(name)
            root = ET.fromstring(dom.XMLDesc(0))
            assert root.get("type") == virt()
            assert root.findtext("vcpu") == "1" and root.findtext("memory") == str(128 * 1024)
            nic = root.find("devices/interface[@type='network']/source")
            assert nic is not None and nic.get("network") == "default"
            assert root.find("devices/serial[@type='pty']") is not None
            assert disk_volume(root) == f"{name}.qcow2"
            assert disk_volume(root, "cdrom") == f"{name}-seed.iso"
            assert root.find("devices/disk[@device='cdrom']/readonly") is not None
            pool = conn.storagePoolLookupByName("default")
            disk = ET.fromstring(pool.storageVolLookupByName(f"{name}.qcow2").XMLDesc(0))
            assert disk.findtext("capacity") == str(2**30)
            assert disk.find("target/format[@type='qcow2']") is not None
            assert disk.find("backingStore/path") is None  # a full copy
            seed = download(conn, pool.storageVolLookupByName(f"{name}-seed.iso"))
        assert has_pattern(lab, f"{IMAGES}/{name}.qcow2")
        return seed

    seed = await off(check)
    assert cloudinit.volume_id(seed) == "cidata"
    files = cloudinit.read_seed(seed)
    assert set(files) == {"meta-data", "user-data"}
    assert 'local-hostname: "ci-host.lab"' in files["meta-data"]
    assert "instance-id: " in files["meta-data"]
    ud = files["user-data"]
    assert ud.startswith("#cloud-config\n")
    assert 'hostname: "ci-host"' in ud and 'fqdn: "ci-host.lab"' in ud
    assert '- name: "ops"' in ud and f'- "{KEY}"' in ud and "NOPASSWD:ALL" in ud
    await until_libvirt(f"{name} running", lambda: dom_state(lab, HOST, name) == "running")
    print(f"create from image: {took:.1f} s")


async def test_create_from_an_image_with_own_user_data_not_started(
    lab: Lab, fleet: Fleet, scratch: Callable[[str], str]
) -> None:
    image, name = await off(make_image, lab, scratch("img")), scratch("ud")
    user_data = "#cloud-config\npackages: [htop]\n"
    await host_up(fleet)
    task = submit_create_from_image(
        fleet,
        HOST,
        name=name,
        image=image,
        memory_mib=128,
        user_data=user_data,
        start=False,
        domain_type=virt(),
    )
    await finished(fleet, task)
    assert task.state == TaskState.DONE, task.error
    assert task.args["user_data"] == f"{len(user_data)} bytes"  # the text stays out of the logs

    def check() -> dict[str, str]:
        with lab.connect(HOST) as conn:
            assert conn.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
            pool = conn.storagePoolLookupByName("default")
            # no disk size asked: the image's
            assert int(pool.storageVolLookupByName(f"{name}.qcow2").info()[1]) == 64 * 2**20
            return cloudinit.read_seed(download(conn, pool.storageVolLookupByName(f"{name}-seed.iso")))

    files = await off(check)
    assert files["user-data"] == user_data
    assert f'local-hostname: "{name}"' in files["meta-data"]


async def test_image_refusals_and_failures_leave_nothing(
    lab: Lab, fleet: Fleet, scratch: Callable[[str], str]
) -> None:
    small = await off(make_image, lab, scratch("img"))
    big = await off(make_image, lab, scratch("big"), mib=3 * 1024)
    existing = scratch("old")
    await off(lab.add_guest, HOST, existing, disk=False, start=False)
    await seen(fleet, HOST, existing)
    before = await off(inventory, lab)
    base: dict[str, Any] = {"image": small, "memory_mib": 128, "domain_type": virt()}
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"name": scratch("ci"), "image": "no-such.qcow2"},
            f"no volume 'no-such.qcow2' in storage pool 'default' on {HOST}",
        ),
        ({"name": scratch("ci"), "image": f"nopool/{small}"}, f"no storage pool 'nopool' on {HOST}"),
        ({"name": scratch("ci"), "pool": "nopool"}, f"no storage pool 'nopool' on {HOST}"),
        ({"name": existing}, f"a VM named '{existing}' already exists on {HOST}"),
        ({"name": scratch("ci"), "vcpus": 0}, "vcpus 0 is out of range"),
        ({"name": scratch("ci"), "vcpus": 4000}, "allows at most"),
        ({"name": scratch("ci"), "memory_mib": 10**8}, "MiB is out of range"),
        ({"name": scratch("ci"), "image": big, "disk_gib": 1}, "smaller than the image"),
        ({"name": scratch("ci"), "network": "no-such-net"}, f"no network 'no-such-net' on {HOST}"),
        ({"name": scratch("ci"), "user_data": "runcmd: []\n"}, "must start with '#cloud-config' or '#!'"),
        ({"name": scratch("ci"), "ssh_keys": ["hello"]}, "not an SSH public key"),
        ({"name": scratch("ci"), "colour": "red"}, "unknown argument(s) for create: colour"),
        # made the volumes and the VM, then could not start it (no such bridge): all of it removed again
        ({"name": scratch("ci"), "network": "bridge:vtnobr0"}, "vtnobr0"),
    ]
    for args, message in cases:
        await host_up(fleet)
        task = await finished(fleet, submit_create_from_image(fleet, HOST, **{**base, **args}))
        assert task.state == TaskState.FAILED and message in task.error, (
            f"{args}: {task.state} {task.error!r}"
        )
        assert await off(inventory, lab) == before, args
    # a host that is not there
    task = submit_create_from_image(fleet, "kvm99", name=scratch("ci"), image=small)
    assert task.state == TaskState.FAILED and "no host 'kvm99'" in task.error
    assert await off(inventory, lab) == before
    # the bridge case really got as far as making things (else it proves nothing about the rollback)
    audit = [t for t in fleet.tasks.tasks.values() if t.args.get("network") == "bridge:vtnobr0"]
    assert audit and audit[-1].started is not None and (audit[-1].progress or 0) >= 90.0, audit[-1].as_dict()


def volume_there(lab: Lab, name: str) -> bool:
    """libvirt has a volume of that name in HOST's default pool (no refresh: libvirt refuses one while a
    volume is being made)."""
    with lab.connect(HOST) as conn:
        try:
            conn.storagePoolLookupByName("default").storageVolLookupByName(name)
        except libvirt.libvirtError:
            return False
        return True


async def held_copy(lab: Lab, stack: contextlib.ExitStack) -> Gate:
    """From here on, the host's next image copy waits at a gate until the test releases it."""
    return await off(stack.enter_context, copy_gate(lab, HOST))


async def copy_under_way(fleet: Fleet, task: Task, gate: Gate) -> None:
    """Until the task's copy has reached the gate (libvirt started it: the copy program waits there)."""
    await off(wait_held, gate, "the image copy", 180)
    assert not task.state.finished, task.as_dict()


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_cancel_while_copying_leaves_nothing(
    lab: Lab, fleet: Fleet, scratch: Callable[[str], str]
) -> None:
    image = await off(make_image, lab, scratch("img"))
    before = await off(inventory, lab)
    await host_up(fleet)
    name = scratch("ci")
    with contextlib.ExitStack() as stack:
        try:
            gate = await held_copy(lab, stack)
            task = submit_create_from_image(
                fleet, HOST, name=name, image=image, memory_mib=128, domain_type=virt()
            )
            await copy_under_way(fleet, task, gate)
            assert await off(volume_there, lab, f"{name}.qcow2")  # made, and half-copied: to be removed
            assert task.cancellable
            assert fleet.tasks.cancel(task.id) is None
            assert not task.state.finished  # the copy under way is not interrupted: it ends first
            assert await off(gate.release)
            await finished(fleet, task)
        finally:
            await off(stack.close)
    assert task.state == TaskState.CANCELLED, task.as_dict()
    assert await off(inventory, lab) == before


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_a_connection_lost_mid_copy_still_leaves_nothing(
    lab: Lab, fleet: Fleet, scratch: Callable[[str], str]
) -> None:
    """libvirtd restarts while the image is being copied: the task fails, and once the host's session has
    reconnected the rollback removes the half-made volume over the new connection."""
    image = await off(make_image, lab, scratch("img"))
    before = await off(inventory, lab)
    await host_up(fleet)
    name = scratch("ci")
    with contextlib.ExitStack() as stack:
        try:
            gate = await held_copy(lab, stack)
            task = submit_create_from_image(
                fleet, HOST, name=name, image=image, memory_mib=128, domain_type=virt()
            )
            await copy_under_way(fleet, task, gate)
            await off(lab.stop_libvirtd, HOST)  # its socket goes at once; the daemon waits for the copy
            try:
                assert await off(gate.release)
                await until_libvirt("the old libvirtd to exit", lambda: lab.libvirtd_pid(HOST) is None, 180)
            finally:
                await off(lab.start_libvirtd, HOST)
        finally:
            await off(stack.close)
    await finished(fleet, task)
    assert task.state == TaskState.FAILED, task.as_dict()
    assert "could not remove" not in task.error, task.error
    assert await off(inventory, lab) == before
