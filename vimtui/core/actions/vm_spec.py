"""What a new VM may be: its name, vCPUs and memory, within what its host can give; checks that touch
nothing but the host's capabilities."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError
from vimtui.core.poll.domxml import VIMTUI_NS

GIB = 2**30
MIB = 2**20
MIN_MEMORY_MIB = 32
MAX_DISK_GIB = 64 * 1024
CREATE_TIMEOUT = 3600.0
UPLOAD_CHUNK = 256 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
AGENT_CHANNEL = "org.qemu.guest_agent.0"

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


def int_refusal(what: str, value: object, low: int, high: int | None = None) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{what} must be a whole number, not {value!r}"
    if value < low or (high is not None and value > high):
        top = f" and {high}" if high is not None else ""
        return f"{what} {value} is out of range (between {low}{top})" if top else f"{what} must be >= {low}"
    return None


def size_refusal(vcpus: object, memory_mib: object) -> str | None:
    """Obvious nonsense in vCPUs and memory (the host's own limits are checked when the task runs)."""
    if vcpus is not None and (why := int_refusal("vcpus", vcpus, 1, 4096)):
        return why
    if memory_mib is not None and (why := int_refusal("memory (MiB)", memory_mib, MIN_MEMORY_MIB)):
        return why
    return None


def refuse_clash(conn: Any, name: str, host: str) -> None:
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


def check_limits(limits: HostLimits, host: str, vcpus: int | None, memory_mib: int | None) -> None:
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


# -- a new VM's definition ---------------------------------------------------------------------------------


def domain_skeleton(
    name: str,
    limits: HostLimits,
    vcpus: int,
    memory_mib: int,
    tenant: str | None,
    boot: tuple[str, ...],
    pool: str,
    disk_volume: str,
    disk_dev: str,
    disk_bus: str,
) -> tuple[ET.Element, ET.Element]:
    """A new VM's domain (libvirt's XML) up to its devices: name, memory, vCPUs, the tenant it is made for
    (vimtui's metadata, as the tag action writes it), the boot order, the features and CPU its host gives,
    and its first disk, a qcow2 volume of `pool`. Returns the domain and its <devices> for the rest."""
    dom = ET.Element("domain", type=limits.virt_type)
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(memory_mib)
    ET.SubElement(dom, "vcpu", placement="static").text = str(vcpus)
    if tenant:
        meta = ET.SubElement(ET.SubElement(dom, "metadata"), f"{{{VIMTUI_NS}}}vm")
        ET.SubElement(meta, f"{{{VIMTUI_NS}}}tenant").text = tenant
    os_el = ET.SubElement(dom, "os")
    if limits.arch == "aarch64":
        os_el.set("firmware", "efi")
    ET.SubElement(os_el, "type", arch=limits.arch).text = "hvm"
    for dev_name in boot:
        ET.SubElement(os_el, "boot", dev=dev_name)
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
    ET.SubElement(disk, "target", dev=disk_dev, bus=disk_bus)
    return dom, dev
