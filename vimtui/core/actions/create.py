"""Create VMs: from a template (a shut-off VM whose disks are copied, or overlaid when linked) and from a
cloud image (a disk volume copied for the new VM, plus a cloud-init NoCloud seed ISO uploaded beside it).

Everything goes through libvirt (storage pools, streams), nothing through a shell on the host. Bad input is
refused before anything is made; a failure (or a cancel) part way removes what was made: a VM that could not
be created leaves nothing behind.

Shared with the clone action: `plan_disks` (which disks, which new volume names; refuses what cannot be
copied), `copy_disks` (full copies through the pool, or qcow2 overlays), `delete_volumes`, `clone_xml` (new
name, no UUID/MACs/NVRAM path, renamed log files, disks pointed at the copies, vCPUs/memory), and `Rollback`
with `undo_volume`/`undo_domain` (undo by name/UUID, over a fresh connection if the old one broke).
"""

from __future__ import annotations

import inspect
import re
import threading
import time
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import libvirt

from vimtui.core.actions import cloudinit
from vimtui.core.actions.base import ActionError, VmAction, dom_state
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.model import FleetState, VmState, state_name
from vimtui.core.poll.domxml import VIMTUI_NS

if TYPE_CHECKING:
    from vimtui.core.fleet.fleet import Fleet
    from vimtui.core.fleet.tasks import Task

SHUTOFF = libvirt.VIR_DOMAIN_SHUTOFF
# keep the usual prefixes when a domain's XML is rewritten (libvirt reads them by URI, people by prefix)
ET.register_namespace("qemu", "http://libvirt.org/schemas/domain/qemu/1.0")
ET.register_namespace("vimtui", VIMTUI_NS)
GIB = 2**30
MIB = 2**20
MIN_MEMORY_MIB = 32
MAX_DISK_GIB = 64 * 1024
CREATE_TIMEOUT = 3600.0
UPLOAD_CHUNK = 256 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
AGENT_CHANNEL = "org.qemu.guest_agent.0"
UNDEFINE_ALL = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
)


# -- checks that touch nothing ---------------------------------------------------------------------------


def name_refusal(name: object) -> str | None:
    """Why `name` cannot name a new VM (None: it can). Its volumes are named after it, so: a safe set."""
    if not isinstance(name, str) or not name:
        return "a name for the new VM is needed"
    if not NAME_RE.match(name):
        return (
            f"{name!r} is not a usable VM name (letters, digits, '.', '_' and '-', starting with a letter "
            "or digit, at most 64)"
        )
    return None


def _int_refusal(what: str, value: object, low: int, high: int | None = None) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{what} must be a whole number, not {value!r}"
    if value < low or (high is not None and value > high):
        top = f" and {high}" if high is not None else ""
        return f"{what} {value} is out of range (between {low}{top})" if top else f"{what} must be >= {low}"
    return None


def size_refusal(vcpus: object, memory_mib: object) -> str | None:
    """Obvious nonsense in vCPUs and memory (the host's own limits are checked when the task runs)."""
    if vcpus is not None and (why := _int_refusal("vcpus", vcpus, 1, 4096)):
        return why
    if memory_mib is not None and (why := _int_refusal("memory (MiB)", memory_mib, MIN_MEMORY_MIB)):
        return why
    return None


def _refuse_clash(conn: Any, name: str, host: str) -> None:
    try:
        conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return
        raise
    raise ActionError(f"a VM named {name!r} already exists on {host}")


@dataclass(frozen=True)
class HostLimits:
    virt_type: str
    arch: str
    max_vcpus: int | None
    memory_mib: int
    disk_buses: frozenset[str]
    cpu_modes: frozenset[str] = frozenset()
    """The CPU modes its domain capabilities say it supports (host-model, maximum ...)."""


def host_limits(conn: Any, virt_type: str | None = None, arch: str | None = None) -> HostLimits:
    """What the host offers for new VMs: kvm when its capabilities list it (else plain qemu), the vCPU limit
    and disk buses of its domain capabilities, and its memory."""
    caps = ET.fromstring(conn.getCapabilities())
    host_arch = arch or caps.findtext("host/cpu/arch") or "x86_64"
    offered: set[str] = set()
    for guest in caps.iterfind("guest"):
        arch_el = guest.find("arch")
        if guest.findtext("os_type") == "hvm" and arch_el is not None and arch_el.get("name") == host_arch:
            offered |= {d.get("type", "") for d in arch_el.iterfind("domain")}
    if virt_type is None:
        virt_type = "kvm" if "kvm" in offered else "qemu"
    elif offered and virt_type not in offered:
        raise ActionError(
            f"the host offers no {virt_type} domains for {host_arch} "
            f"(it offers: {', '.join(sorted(offered)) or 'none'})"
        )
    max_vcpus: int | None = None
    buses: frozenset[str] = frozenset()
    cpu_modes: frozenset[str] = frozenset()
    try:
        dcaps = ET.fromstring(conn.getDomainCapabilities(None, host_arch, None, virt_type, 0))
    except libvirt.libvirtError:
        pass
    else:
        vcpu = dcaps.find("vcpu")
        if vcpu is not None and vcpu.get("max", "").isdigit():
            max_vcpus = int(vcpu.get("max", "0"))
        buses = frozenset(
            v.text or "" for v in dcaps.iterfind("devices/disk/enum[@name='bus']/value") if v.text
        )
        cpu_modes = frozenset(
            m.get("name", "") for m in dcaps.iterfind("cpu/mode") if m.get("supported") == "yes"
        )
    memory_mib = int(conn.getInfo()[1])
    return HostLimits(virt_type, host_arch, max_vcpus, memory_mib, buses, cpu_modes)


def _check_limits(limits: HostLimits, host: str, vcpus: int | None, memory_mib: int | None) -> None:
    why = size_refusal(vcpus, memory_mib)
    if why is None and vcpus is not None and limits.max_vcpus is not None and vcpus > limits.max_vcpus:
        why = (
            f"vcpus {vcpus} is out of range: {host} allows at most {limits.max_vcpus} "
            f"for a {limits.virt_type} VM"
        )
    if why is None and memory_mib is not None and memory_mib > limits.memory_mib:
        why = f"memory {memory_mib} MiB is out of range: {host} has {limits.memory_mib} MiB"
    if why is not None:
        raise ActionError(why)


# -- volumes ---------------------------------------------------------------------------------------------


def _pool(conn: Any, name: str, host: str) -> Any:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise ActionError(f"no storage pool {name!r} on {host}") from exc
        raise
    if not pool.isActive():
        raise ActionError(f"storage pool {name!r} on {host} is not active")
    return pool


def _volume(pool: Any, name: str, host: str) -> Any:
    for attempt in (0, 1):
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise
            if attempt == 0:  # made outside libvirt since the pool's last refresh?
                with suppress(libvirt.libvirtError):
                    pool.refresh(0)
    raise ActionError(f"no volume {name!r} in storage pool {pool.name()!r} on {host}")


def _volume_exists(pool: Any, name: str) -> bool:
    try:
        pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return False
        raise
    return True


def _volume_format(vol: Any) -> str:
    fmt = ET.fromstring(vol.XMLDesc(0)).find("target/format")
    return fmt.get("type", "") if fmt is not None else ""


def _volume_xml(
    name: str, capacity: int, fmt: str, backing: tuple[str, str] | None = None, allocation: int | None = None
) -> str:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(capacity)
    if allocation is not None:
        ET.SubElement(vol, "allocation", unit="bytes").text = str(allocation)
    if fmt:
        ET.SubElement(ET.SubElement(vol, "target"), "format", type=fmt)
    if backing is not None:
        store = ET.SubElement(vol, "backingStore")
        ET.SubElement(store, "path").text = backing[0]
        if backing[1]:
            ET.SubElement(store, "format", type=backing[1])
    return ET.tostring(vol, encoding="unicode")


@dataclass
class DiskCopy:
    """One disk of a new VM: the volume it comes from and the one it becomes (`volume`, once made)."""

    target: str
    """Its device in the guest (vda)."""
    pool: Any
    """The pool the new volume goes in (the source's own, for a template)."""
    source: Any
    source_path: str
    source_format: str
    capacity: int
    allocation: int
    name: str
    """The new volume's name."""
    format: str
    """The new volume's format (qcow2 for an overlay)."""
    linked: bool = False
    """An overlay on the source (qcow2 with the source as backing file) rather than a full copy."""
    volume: Any = None

    @property
    def pool_name(self) -> str:
        return str(self.pool.name())


def _new_volume_name(old: str, old_vm: str, new_vm: str, target: str) -> str:
    if old.startswith(old_vm):
        return new_vm + old[len(old_vm) :]
    ext = ""
    for suffix in (".qcow2", ".img", ".raw", ".qed", ".vmdk"):
        if old.endswith(suffix):
            ext = suffix
    return f"{new_vm}-{target}{ext}"


def _disk_volume(conn: Any, disk: ET.Element, host: str) -> Any:
    kind = disk.get("type", "file")
    src = disk.find("source")
    target = disk.find("target")
    dev = target.get("dev", "?") if target is not None else "?"
    if src is None:
        raise ActionError(f"disk {dev} has no source: nothing to copy")
    if kind == "volume":
        pool = _pool(conn, src.get("pool", ""), host)
        return _volume(pool, src.get("volume", ""), host)
    if kind in ("file", "block"):
        path = src.get("file" if kind == "file" else "dev", "")
        for attempt in (0, 1):
            try:
                return conn.storageVolLookupByPath(path)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
                if attempt == 0:
                    for p in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
                        with suppress(libvirt.libvirtError):
                            p.refresh(0)
        raise ActionError(
            f"disk {dev} ({path}) is in no storage pool of {host}: libvirt cannot copy it "
            "(define a pool for its directory)"
        )
    raise ActionError(f"disk {dev} is a {kind} disk: only disks in storage pools can be copied")


def _copied(disk: ET.Element) -> bool:
    """The disks a new VM gets its own copy of: writable hard disks (a CD-ROM, a read-only or a shareable
    disk stays shared)."""
    return (
        disk.get("device", "disk") in ("disk", "lun")
        and disk.find("readonly") is None
        and disk.find("shareable") is None
    )


def plan_disks(conn: Any, xml: str, new_name: str, *, host: str, linked: bool = False) -> list[DiskCopy]:
    """The disks of domain `xml` to copy for a VM named `new_name`, each with its new volume's name in the
    source's pool. Refuses (ActionError) a disk that is not a pool volume or a new name that is taken.
    Touches nothing."""
    root = ET.fromstring(xml)
    old_name = root.findtext("name") or ""
    plan: list[DiskCopy] = []
    taken: set[tuple[str, str]] = set()
    for disk in root.iterfind("devices/disk"):
        if not _copied(disk):
            continue
        target_el = disk.find("target")
        target = target_el.get("dev", "") if target_el is not None else ""
        vol = _disk_volume(conn, disk, host)
        pool = vol.storagePoolLookupByVolume()
        _kind, capacity, allocation = vol.info()
        fmt = _volume_format(vol)
        name = _new_volume_name(vol.name(), old_name, new_name, target)
        key = (pool.name(), name)
        if key in taken or _volume_exists(pool, name):
            raise ActionError(f"volume {name!r} already exists in storage pool {pool.name()!r} on {host}")
        taken.add(key)
        if linked and fmt not in ("qcow2", "raw", ""):
            raise ActionError(f"disk {target} is {fmt}: a linked copy needs a qcow2 or raw template disk")
        plan.append(
            DiskCopy(
                target=target,
                pool=pool,
                source=vol,
                source_path=vol.path(),
                source_format=fmt,
                capacity=int(capacity),
                allocation=int(allocation),
                name=name,
                format="qcow2" if linked else fmt,
                linked=linked,
            )
        )
    return plan


@contextmanager
def _watch_volume(
    ctx: TaskContext, disk: DiskCopy, span: tuple[float, float], label: str, interval: float = 0.5
) -> Iterator[None]:
    """While a volume is copied, report its growth (its allocation against the source's) from a thread of
    its own (a libvirt connection takes calls from several threads)."""
    stop = threading.Event()
    total = max(disk.allocation, 1)
    low, high = span

    def watch() -> None:
        while not stop.wait(interval):
            try:
                done = int(disk.pool.storageVolLookupByName(disk.name).info()[2])
            except libvirt.libvirtError:
                continue
            frac = min(done / total, 0.99)
            ctx.progress(low + (high - low) * frac, f"{label}: {done / MIB:,.0f} of {total / MIB:,.0f} MiB")

    thread = threading.Thread(target=watch, name=f"copy-{ctx.host}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def copy_disks(
    ctx: TaskContext,
    disks: Sequence[DiskCopy],
    span: tuple[float, float] = (0.0, 90.0),
    rollback: Rollback | None = None,
) -> None:
    """Make each disk's new volume: a full copy through its pool (createXMLFrom), or a qcow2 overlay when
    linked. Progress over `span`; cancellation between disks.

    With a `rollback`, each new volume is put on it (by name, before it is made: a volume whose creation
    lost its reply still goes) and the caller runs it on failure; without one, the volumes made so far are
    deleted here on failure. Either way the error goes on."""
    low, high = span
    total = sum(max(d.allocation, 1) for d in disks if not d.linked) or 1
    done = 0
    try:
        for d in disks:
            ctx.check_cancelled()
            if rollback is not None:
                rollback.add(f"volume {d.pool_name}/{d.name}", undo_volume(d.pool_name, d.name))
            start = low + (high - low) * done / total
            if d.linked:
                ctx.progress(start, f"{d.target}: overlay {d.name} on {d.source_path}")
                xml = _volume_xml(d.name, d.capacity, "qcow2", backing=(d.source_path, d.source_format))
                d.volume = d.pool.createXML(xml, 0)
                continue
            end = low + (high - low) * (done + max(d.allocation, 1)) / total
            label = f"{d.target}: copying to {d.pool_name}/{d.name}"
            ctx.progress(start, label)
            with _watch_volume(ctx, d, (start, end), label):
                d.volume = d.pool.createXMLFrom(_volume_xml(d.name, d.capacity, d.format), d.source, 0)
            done += max(d.allocation, 1)
        ctx.check_cancelled()
    except BaseException:
        if rollback is None:
            delete_volumes(disks)
        raise


def delete_volumes(disks: Sequence[DiskCopy]) -> list[str]:
    """Delete the volumes made for `disks`; the ones that could not be deleted, as pool/name."""
    left = []
    for d in disks:
        if d.volume is None:
            continue
        try:
            d.volume.delete(0)
        except libvirt.libvirtError:
            left.append(f"{d.pool_name}/{d.name}")
        else:
            d.volume = None
    return left


# -- domain XML ------------------------------------------------------------------------------------------


def _set_vcpus(root: ET.Element, vcpus: int) -> None:
    vcpu = root.find("vcpu")
    if vcpu is None:
        vcpu = ET.SubElement(root, "vcpu")
    vcpu.text = str(vcpus)
    vcpu.attrib.pop("current", None)
    vcpus_el = root.find("vcpus")
    if vcpus_el is not None:
        root.remove(vcpus_el)
    topology = root.find("cpu/topology")
    if topology is not None:
        dies = int(topology.get("dies", "1") or 1)
        cores, threads = int(topology.get("cores", "1")), int(topology.get("threads", "1"))
        per_socket = dies * cores * threads
        if vcpus % per_socket == 0:
            topology.set("sockets", str(vcpus // per_socket))
        else:
            topology.attrib.update({"sockets": str(vcpus), "dies": "1", "cores": "1", "threads": "1"})
            topology.attrib.pop("clusters", None)
    cputune = root.find("cputune")
    if cputune is not None:
        for el in list(cputune):
            if el.tag in ("vcpupin", "vcpusched") and el.get("vcpu", "0").isdigit():
                if int(el.get("vcpu", "0")) >= vcpus:
                    cputune.remove(el)


def _set_memory(root: ET.Element, memory_mib: int) -> None:
    for tag in ("memory", "currentMemory"):
        el = root.find(tag)
        if el is None:
            el = ET.SubElement(root, tag)
        el.set("unit", "KiB")
        el.text = str(memory_mib * 1024)


def clone_xml(
    xml: str,
    new_name: str,
    disks: Sequence[DiskCopy] = (),
    *,
    vcpus: int | None = None,
    memory_mib: int | None = None,
) -> str:
    """A domain's inactive XML made into a new VM's: the new name, no UUID and no MACs (libvirt makes new
    ones), no NVRAM path (a fresh one from the template), serial/console log files and file chardevs named
    after the old VM renamed, the disks in `disks` pointed at their new volumes; vCPUs and memory as given."""
    root = ET.fromstring(xml)
    old_name = root.findtext("name") or ""
    old_uuid = (root.findtext("uuid") or "").strip()
    name_el = root.find("name")
    if name_el is None:
        name_el = ET.SubElement(root, "name")
    name_el.text = new_name
    for el in root.findall("uuid"):
        root.remove(el)
    # SMBIOS may repeat the UUID: libvirt refuses a mismatch
    for system in root.iterfind("sysinfo/system"):
        for entry in list(system):
            if entry.get("name") == "uuid" and (entry.text or "").strip().lower() == old_uuid.lower():
                system.remove(entry)
    os_el = root.find("os")
    if os_el is not None:
        nvram = os_el.find("nvram")
        if nvram is not None:
            if nvram.get("template") or nvram.get("templateFormat"):
                nvram.text = None
                for child in list(nvram):
                    nvram.remove(child)
                nvram.attrib.pop("format", None)
            else:
                os_el.remove(nvram)
    devices = root.find("devices")
    if devices is not None:
        for iface in devices.iterfind("interface"):
            for el in iface.findall("mac"):
                iface.remove(el)
            for el in iface.findall("target"):
                iface.remove(el)
        if old_name:
            for chardev in devices:
                if chardev.tag not in ("serial", "console", "channel", "parallel"):
                    continue
                log = chardev.find("log")
                if log is not None and old_name in log.get("file", ""):
                    log.set("file", log.get("file", "").replace(old_name, new_name))
                src = chardev.find("source")
                if chardev.get("type") == "file" and src is not None and old_name in src.get("path", ""):
                    src.set("path", src.get("path", "").replace(old_name, new_name))
        by_target = {d.target: d for d in disks}
        for disk in devices.iterfind("disk"):
            target = disk.find("target")
            copy = by_target.get(target.get("dev", "") if target is not None else "")
            if copy is None:
                continue
            _point_disk(disk, copy)
    if vcpus is not None:
        _set_vcpus(root, vcpus)
    if memory_mib is not None:
        _set_memory(root, memory_mib)
    return ET.tostring(root, encoding="unicode")


def _point_disk(disk: ET.Element, copy: DiskCopy) -> None:
    src = disk.find("source")
    if src is None:
        src = ET.SubElement(disk, "source")
    kind = disk.get("type", "file")
    path = str(copy.volume.path()) if copy.volume is not None else copy.source_path
    for attr in ("file", "dev", "pool", "volume"):
        src.attrib.pop(attr, None)
    if kind == "volume":
        src.set("pool", copy.pool_name)
        src.set("volume", copy.name)
    elif kind == "block":
        src.set("dev", path)
    else:
        disk.set("type", "file")
        src.set("file", path)
    for el in disk.findall("backingStore"):
        disk.remove(el)
    driver = disk.find("driver")
    if driver is None:
        driver = ET.Element("driver", name="qemu")
        disk.insert(0, driver)
    if copy.format:
        driver.set("type", copy.format)


# -- rollback --------------------------------------------------------------------------------------------

RECONNECT_WAIT = 60.0
"""Seconds a rollback waits for its host's connection to come back when it broke mid-creation."""

Undo = Callable[[Any], object]
"""Undoes one step, given a libvirt connection to the host (by name or UUID, never by a stale object)."""


def undo_volume(pool: str, name: str) -> Undo:
    """Deletes volume `name` of `pool` if it is there."""

    def undo(conn: Any) -> None:
        try:
            vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return
            raise
        vol.delete(0)

    return undo


def undo_domain(uuid: str) -> Undo:
    """Stops and undefines the domain with this UUID if it is there."""

    def undo(conn: Any) -> None:
        try:
            dom = conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            raise
        with suppress(libvirt.libvirtError):
            if dom.isActive():
                dom.destroy()
        dom.undefineFlags(UNDEFINE_ALL)

    return undo


def _alive(conn: Any) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


class Rollback:
    """What to undo if creation fails, run in reverse order. When the host's connection broke (which may be
    why creation failed), it waits for the session to reconnect and undoes the rest over the new one; what
    could still not be undone is reported."""

    def __init__(self, ctx: TaskContext, reconnect_wait: float = RECONNECT_WAIT) -> None:
        self._ctx = ctx
        self._reconnect_wait = reconnect_wait
        self._steps: list[tuple[str, Undo]] = []

    def add(self, what: str, undo: Undo) -> None:
        self._steps.append((what, undo))

    def run(self) -> list[str]:
        steps, self._steps = list(reversed(self._steps)), []
        conn = self._ctx.conn
        left = self._attempt(conn, steps)
        if left and not _alive(conn):
            fresh = self._reconnected(conn)
            if fresh is not None:
                left = self._attempt(fresh, left)
        return [what for what, _undo in left]

    @staticmethod
    def _attempt(conn: Any, steps: list[tuple[str, Undo]]) -> list[tuple[str, Undo]]:
        left = []
        for what, undo in steps:
            try:
                undo(conn)
            except Exception:
                left.append((what, undo))
        return left

    def _reconnected(self, old: Any) -> Any:
        """The host's connection once the session has a new, working one; None at the deadline. (Not
        ctx.wait: a cancelled task rolls back too.)"""
        deadline = time.monotonic() + self._reconnect_wait
        pause = threading.Event()
        while time.monotonic() < deadline:
            try:
                conn = self._ctx.peer(self._ctx.host)
            except Exception:  # NotConnected while the session reconnects
                conn = None
            if conn is not None and conn is not old and _alive(conn):
                return conn
            pause.wait(0.5)
        return None


def _undone(exc: BaseException, rollback: Rollback) -> None:
    left = rollback.run()
    if left:
        raise ActionError(f"{exc}; and it could not remove: {', '.join(left)}") from exc


def _with_uuid(xml: str) -> tuple[str, str]:
    """The XML with a fresh UUID of our own: the rollback can name the VM before libvirt answers."""
    root = ET.fromstring(xml)
    for el in root.findall("uuid"):
        root.remove(el)
    new = str(uuid_module.uuid4())
    name_el = root.find("name")
    index = list(root).index(name_el) + 1 if name_el is not None else 0
    uuid_el = ET.Element("uuid")
    uuid_el.text = new
    root.insert(index, uuid_el)
    return ET.tostring(root, encoding="unicode"), new


# -- create from a template ------------------------------------------------------------------------------


def create_from_template(
    ctx: TaskContext,
    dom: Any,
    name: str,
    vcpus: int | None = None,
    memory_mib: int | None = None,
    start: bool = False,
    linked: bool = False,
) -> str:
    """A new VM like `dom` (shut off): its disks copied (or overlaid on the template's when linked), a new
    name, UUID and MACs, vCPUs and memory as given. Started when asked. On failure nothing is left."""
    conn = ctx.conn
    tpl = dom.name()
    why = name_refusal(name) or size_refusal(vcpus, memory_mib)
    if why is not None:
        raise ActionError(why)
    state = dom_state(dom)
    if state != SHUTOFF:
        raise ActionError(f"{tpl} is {state_name(state)}: a template must be shut off (its disks are copied)")
    if dom.hasManagedSaveImage(0):
        raise ActionError(
            f"{tpl} has a managed save (its disks are mid-run): start it and shut it down, "
            "or remove the saved state, first"
        )
    _refuse_clash(conn, name, ctx.host)
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    if vcpus is not None or memory_mib is not None:
        root = ET.fromstring(xml)
        type_el = root.find("os/type")
        arch = type_el.get("arch") if type_el is not None else None
        _check_limits(host_limits(conn, root.get("type"), arch), ctx.host, vcpus, memory_mib)
    disks = plan_disks(conn, xml, name, host=ctx.host, linked=linked)
    ctx.progress(0.0, f"{'overlaying' if linked else 'copying'} {len(disks)} disk(s) of {tpl}")
    rollback = Rollback(ctx)
    try:
        copy_disks(ctx, disks, (0.0, 90.0), rollback)
        new_xml, new_uuid = _with_uuid(clone_xml(xml, name, disks, vcpus=vcpus, memory_mib=memory_mib))
        ctx.check_cancelled()
        ctx.progress(92.0, f"defining {name}")
        rollback.add(f"VM {name}", undo_domain(new_uuid))
        new = conn.defineXML(new_xml)
        if start:
            ctx.check_cancelled()
            ctx.progress(95.0, f"starting {name}")
            new.create()
    except BaseException as exc:
        _undone(exc, rollback)
        raise
    how = "linked to" if linked else "copied from"
    vols = ", ".join(f"{d.pool_name}/{d.name}" for d in disks) or "no disks"
    return f"created {name} from {tpl} ({vols} {how} its disks){'; started' if start else ''}"


def _template_check(vm: VmState, args: dict[str, Any], state: FleetState) -> str | None:
    name = args.get("name")
    why = name_refusal(name) or size_refusal(args.get("vcpus"), args.get("memory_mib"))
    if why is not None:
        return why
    if state.find_vm(str(name), vm.host):
        return f"a VM named {name!r} already exists on {vm.host}"
    return None


def _no_abort(_conn: Any, _uuid: str) -> None:
    """Creation stops at its next step once cancelled (the copy under way finishes), removing what it made."""


# -- create from a cloud image ---------------------------------------------------------------------------


def _upload(conn: Any, pool: Any, name: str, data: bytes) -> Any:
    """A new raw volume holding `data`, sent through a libvirt stream."""
    vol = pool.createXML(_volume_xml(name, len(data), "raw", allocation=len(data)), 0)
    try:
        stream = conn.newStream(0)
        try:
            vol.upload(stream, 0, len(data), 0)
            view = memoryview(data)
            sent = 0
            while sent < len(data):
                n = stream.send(bytes(view[sent : sent + UPLOAD_CHUNK]))
                if n <= 0:
                    raise ActionError(f"upload of {name} stalled at {sent} of {len(data)} bytes")
                sent += n
            stream.finish()
        except BaseException:
            with suppress(libvirt.libvirtError):
                stream.abort()
            raise
    except BaseException:
        with suppress(libvirt.libvirtError):
            vol.delete(0)
        raise
    return vol


def image_domain_xml(
    *,
    name: str,
    limits: HostLimits,
    vcpus: int,
    memory_mib: int,
    pool: str,
    disk_volume: str,
    seed_volume: str,
    network: str,
) -> str:
    """A new cloud VM: virtio disk, the seed as a read-only CD-ROM, a virtio NIC on `network` (or a bridge,
    as 'bridge:NAME'), a serial console, the guest agent channel, a balloon and an RNG."""
    dom = ET.Element("domain", type=limits.virt_type)
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "vcpu", placement="static").text = str(vcpus)
    os_el = ET.SubElement(dom, "os")
    if limits.arch == "aarch64":
        os_el.set("firmware", "efi")
    ET.SubElement(os_el, "type", arch=limits.arch).text = "hvm"
    ET.SubElement(os_el, "boot", dev="hd")
    if limits.arch in ("x86_64", "i686"):
        features = ET.SubElement(dom, "features")
        ET.SubElement(features, "acpi")
        ET.SubElement(features, "apic")
    # kvm: the host's CPU model (still migratable); qemu (TCG): every feature it emulates, or today's cloud
    # images (x86-64-v2 and up) do not boot on its default qemu64
    cpu_mode = "host-model" if limits.virt_type == "kvm" else "maximum"
    if cpu_mode in limits.cpu_modes:
        ET.SubElement(dom, "cpu", mode=cpu_mode)
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    dev = ET.SubElement(dom, "devices")
    disk = ET.SubElement(dev, "disk", type="volume", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    ET.SubElement(disk, "source", pool=pool, volume=disk_volume)
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    bus = next((b for b in ("sata", "ide", "scsi") if b in limits.disk_buses), "sata")
    cdrom = ET.SubElement(dev, "disk", type="volume", device="cdrom")
    ET.SubElement(cdrom, "driver", name="qemu", type="raw")
    ET.SubElement(cdrom, "source", pool=pool, volume=seed_volume)
    ET.SubElement(cdrom, "target", dev="hda" if bus == "ide" else "sda", bus=bus)
    ET.SubElement(cdrom, "readonly")
    if network.startswith("bridge:"):
        iface = ET.SubElement(dev, "interface", type="bridge")
        ET.SubElement(iface, "source", bridge=network.removeprefix("bridge:"))
    else:
        iface = ET.SubElement(dev, "interface", type="network")
        ET.SubElement(iface, "source", network=network)
    ET.SubElement(iface, "model", type="virtio")
    serial = ET.SubElement(dev, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(dev, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    channel = ET.SubElement(dev, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name=AGENT_CHANNEL)
    balloon = ET.SubElement(dev, "memballoon", model="virtio")
    ET.SubElement(balloon, "stats", period="5")
    rng = ET.SubElement(dev, "rng", model="virtio")
    ET.SubElement(rng, "backend", model="random").text = "/dev/urandom"
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def seed_volume_name(name: str) -> str:
    return f"{name}-seed.iso"


def disk_volume_name(name: str) -> str:
    return f"{name}.qcow2"


def _split_image(image: str, pool: str) -> tuple[str, str]:
    if "/" in image:
        p, _, v = image.partition("/")
        return p, v
    return pool, image


def image_refusal(
    *,
    name: object,
    image: object,
    pool: object = "default",
    vcpus: object = 1,
    memory_mib: object = 512,
    disk_gib: object = None,
    network: object = "default",
    hostname: object = None,
    user: object = None,
    ssh_keys: object = (),
    user_data: object = None,
    start: object = True,
    domain_type: object = None,
) -> str | None:
    """Why these arguments cannot make a VM, read without the host (None: they may). Touches nothing."""
    why = name_refusal(name) or size_refusal(vcpus, memory_mib)
    if why is not None:
        return why
    if not isinstance(image, str) or not image.strip("/") or image.count("/") > 1:
        return f"image {image!r}: give a volume name, or POOL/VOLUME"
    if not isinstance(pool, str) or not pool:
        return "a storage pool name is needed"
    if disk_gib is not None and (why := _int_refusal("disk (GiB)", disk_gib, 1, MAX_DISK_GIB)):
        return why
    if not isinstance(network, str) or not network or network == "bridge:":
        return "a network is needed (a libvirt network name, or bridge:NAME)"
    if domain_type not in (None, "kvm", "qemu"):
        return f"domain type {domain_type!r}: kvm or qemu"
    if not isinstance(start, bool):
        return f"start must be true or false, not {start!r}"
    if isinstance(ssh_keys, str):
        return "ssh_keys is a list of public keys"
    try:
        _seed(str(name), hostname, user, ssh_keys, user_data)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _seed(name: str, hostname: object, user: object, ssh_keys: object, user_data: object) -> bytes:
    if hostname is None:
        try:
            cloudinit.check_hostname(name)
        except ValueError:
            raise ValueError(
                f"the VM name {name!r} is not a valid host name for the guest: give a hostname"
            ) from None
        hostname = name
    if not isinstance(hostname, str):
        raise ValueError(f"hostname {hostname!r}: a host name is text")
    if user is not None and not isinstance(user, str):
        raise ValueError(f"user {user!r}: a user name is text")
    if user_data is not None and not isinstance(user_data, str):
        raise ValueError("user-data is text")
    keys = list(ssh_keys) if isinstance(ssh_keys, (list, tuple)) else None
    if keys is None or not all(isinstance(k, str) for k in keys):
        raise ValueError("ssh_keys is a list of public keys")
    return cloudinit.build_seed(hostname=hostname, user=user, ssh_keys=keys, user_data=user_data)


def create_from_image(
    ctx: TaskContext,
    *,
    name: str,
    image: str,
    pool: str = "default",
    vcpus: int = 1,
    memory_mib: int = 512,
    disk_gib: int | None = None,
    network: str = "default",
    hostname: str | None = None,
    user: str | None = None,
    ssh_keys: Sequence[str] = (),
    user_data: str | None = None,
    start: bool = True,
    domain_type: str | None = None,
) -> str:
    """A new VM from a cloud image: the image ("POOL/VOLUME", or a volume of `pool`) copied to a qcow2 volume
    `<name>.qcow2` in `pool` (grown to `disk_gib` when bigger), a cloud-init NoCloud seed `<name>-seed.iso`
    beside it (host name, default the VM's name; user; SSH keys; or a user-data of your own), the VM defined
    (kvm when the host offers it, else qemu; or `domain_type`) and started when asked. Refuses before making
    anything; removes what it made when a later step fails."""
    conn, host = ctx.conn, ctx.host
    why = image_refusal(
        name=name,
        image=image,
        pool=pool,
        vcpus=vcpus,
        memory_mib=memory_mib,
        disk_gib=disk_gib,
        network=network,
        hostname=hostname,
        user=user,
        ssh_keys=ssh_keys,
        user_data=user_data,
        start=start,
        domain_type=domain_type,
    )
    if why is not None:
        raise ActionError(why)
    seed = _seed(name, hostname, user, list(ssh_keys), user_data)
    _refuse_clash(conn, name, host)
    target_pool = _pool(conn, pool, host)
    image_pool_name, image_name = _split_image(image, pool)
    image_pool = target_pool if image_pool_name == pool else _pool(conn, image_pool_name, host)
    source = _volume(image_pool, image_name, host)
    fmt = _volume_format(source)
    if fmt == "iso":
        raise ActionError(f"{image_pool_name}/{image_name} is an ISO image: give a disk image (qcow2)")
    _kind, capacity, allocation = (int(x) for x in source.info())
    size = capacity
    if disk_gib is not None:
        size = disk_gib * GIB
        if size < capacity:
            raise ActionError(
                f"disk {disk_gib} GiB is smaller than the image ({capacity / GIB:.1f} GiB): "
                "give at least its size, or none"
            )
    disk_name, seed_name = disk_volume_name(name), seed_volume_name(name)
    for vol_name in (disk_name, seed_name):
        if _volume_exists(target_pool, vol_name):
            raise ActionError(f"volume {vol_name!r} already exists in storage pool {pool!r} on {host}")
    if not network.startswith("bridge:"):
        try:
            net = conn.networkLookupByName(network)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                raise ActionError(f"no network {network!r} on {host}") from exc
            raise
        if start and not net.isActive():
            raise ActionError(f"network {network!r} on {host} is not active: the VM could not start")
    limits = host_limits(conn, domain_type)
    _check_limits(limits, host, vcpus, memory_mib)

    disk = DiskCopy(
        target="vda",
        pool=target_pool,
        source=source,
        source_path=source.path(),
        source_format=fmt,
        capacity=capacity,
        allocation=allocation,
        name=disk_name,
        format="qcow2",
    )
    rollback = Rollback(ctx)
    try:
        copy_disks(ctx, [disk], (0.0, 80.0), rollback)
        if size > capacity:
            ctx.check_cancelled()
            ctx.progress(82.0, f"growing {disk_name} to {size / GIB:.0f} GiB")
            disk.volume.resize(size, 0)
        ctx.check_cancelled()
        ctx.progress(85.0, f"uploading the cloud-init seed {seed_name} ({len(seed) // 1024} KiB)")
        rollback.add(f"volume {pool}/{seed_name}", undo_volume(pool, seed_name))
        _upload(conn, target_pool, seed_name, seed)
        xml, new_uuid = _with_uuid(
            image_domain_xml(
                name=name,
                limits=limits,
                vcpus=vcpus,
                memory_mib=memory_mib,
                pool=pool,
                disk_volume=disk_name,
                seed_volume=seed_name,
                network=network,
            )
        )
        ctx.check_cancelled()
        ctx.progress(90.0, f"defining {name} ({limits.virt_type})")
        rollback.add(f"VM {name}", undo_domain(new_uuid))
        dom = conn.defineXML(xml)
        if start:
            ctx.check_cancelled()
            ctx.progress(95.0, f"starting {name}")
            dom.create()
    except BaseException as exc:
        _undone(exc, rollback)
        raise
    return (
        f"created {name} from {image_pool_name}/{image_name}: {vcpus} vCPU, {memory_mib} MiB, "
        f"{size / GIB:.1f} GiB disk {pool}/{disk_name}, seed {pool}/{seed_name}"
        f"{'; started' if start else ''}"
    )


_IMAGE_PARAMS = frozenset(inspect.signature(create_from_image).parameters) - {"ctx"}


def image_task_args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as the task log and the audit log keep them: the user-data's size, not its text (it
    may hold secrets); the SSH keys by their comment."""
    args = {k: v for k, v in kwargs.items() if k not in ("user_data", "ssh_keys")}
    if kwargs.get("user_data") is not None:
        args["user_data"] = f"{len(str(kwargs['user_data']).encode())} bytes"
    keys = kwargs.get("ssh_keys") or ()
    if keys and not isinstance(keys, str):
        with suppress(ValueError, TypeError, AttributeError):
            lines = cloudinit.ssh_key_lines(keys)
            args["ssh_keys"] = [" ".join(k.split()[2:]) or k.split()[0] for k in lines]
    return args


def submit_create_from_image(fleet: Fleet, host: str, **kwargs: Any) -> Task:
    """Create a VM from a cloud image on `host` as a task (see create_from_image for the arguments): refused
    at once (a failed task saying why, nothing touched) for an unknown, unhealthy or read-only host, a name
    already on the host, or arguments that cannot work."""
    name = str(kwargs.get("name") or "")
    args = image_task_args(kwargs)
    unknown = sorted(set(kwargs) - _IMAGE_PARAMS)
    missing = sorted(p for p in ("name", "image") if p not in kwargs)
    hs = fleet.state.host(host)
    why: str | None = None
    if unknown:
        why = f"unknown argument(s) for create: {', '.join(unknown)}"
    elif missing:
        why = f"create from an image needs {' and '.join(missing)}"
    elif hs is None:
        why = f"no host {host!r} in the inventory"
    elif not hs.status.healthy:
        why = f"host {host} is {hs.status}"
    elif hs.read_only:
        why = f"host {host} is connected read-only"
    else:
        why = image_refusal(**kwargs)
        if why is None and fleet.state.find_vm(name, host):
            why = f"a VM named {name!r} already exists on {host}"
    if why is not None:
        return fleet.tasks.refuse(host, "create", why, vm=name, args=args)

    def run(ctx: TaskContext) -> str:
        return create_from_image(ctx, **kwargs)

    def abort(_conn: Any) -> None:
        _no_abort(_conn, "")

    return fleet.tasks.submit(host, "create", run, vm=name, args=args, abort=abort, timeout=CREATE_TIMEOUT)


ACTIONS: tuple[VmAction, ...] = (
    VmAction(
        "create",
        "Create from template",
        "A new VM from this shut-off one: its disks copied (--linked: qcow2 overlays on them), "
        "new name, UUID and MACs; --vcpus, --memory-mib, --start",
        create_from_template,
        states=frozenset({"shutoff"}),
        not_applicable="only a shut off VM is a template (its disks are copied)",
        check=_template_check,
        abort=_no_abort,
        timeout=CREATE_TIMEOUT,
        bulk=False,
    ),
)

__all__ = [
    "ACTIONS",
    "DiskCopy",
    "HostLimits",
    "Rollback",
    "undo_domain",
    "undo_volume",
    "clone_xml",
    "copy_disks",
    "create_from_image",
    "create_from_template",
    "delete_volumes",
    "host_limits",
    "image_domain_xml",
    "image_refusal",
    "name_refusal",
    "plan_disks",
    "submit_create_from_image",
]
