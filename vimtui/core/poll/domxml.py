"""Domain XML to DomainDetails: disks, NICs, MACs, metadata. Fetched when a domain appears or changes, never
every tick."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

VIMTUI_NS = "https://vimtui.dev/xmlns/vm/1"
AGENT_CHANNEL = "org.qemu.guest_agent.0"


@dataclass(frozen=True, slots=True)
class DiskInfo:
    target: str
    """Device name in the guest (vda, sdb)."""
    device: str
    """disk, cdrom, floppy, lun."""
    source: str | None
    """File, block device, or pool/volume."""
    driver_type: str | None
    """qcow2, raw ..."""
    bus: str | None


@dataclass(frozen=True, slots=True)
class NicInfo:
    mac: str | None
    source: str | None
    """Network, bridge or device it plugs into."""
    model: str | None
    target: str | None
    """Host-side device (vnet0): the key of its stats."""


@dataclass(frozen=True, slots=True)
class DomainDetails:
    """What the domain XML says, reduced to what the screen and the actions need."""

    uuid: str
    name: str
    title: str
    description: str
    memory_kib: int
    vcpus: int
    os_type: str
    arch: str | None
    machine: str | None
    cpu_model: str | None
    firmware: str | None
    disks: tuple[DiskInfo, ...]
    nics: tuple[NicInfo, ...]
    tags: tuple[str, ...]
    tenant: str | None
    has_agent: bool
    persistent: bool = True
    autostart: bool = False
    template: bool = False
    """Marked as a template in vimtui's metadata (`<vimtui:template/>`): a source to create from, not a
    VM to run."""


def _text(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _kib(el: ET.Element | None) -> int:
    if el is None or not el.text:
        return 0
    unit = el.get("unit", "KiB").lower()
    factor = {
        "b": 1 / 1024,
        "bytes": 1 / 1024,
        "k": 1,
        "kib": 1,
        "kb": 1000 / 1024,
        "m": 1024,
        "mib": 1024,
        "mb": 1e6 / 1024,
        "g": 1024**2,
        "gib": 1024**2,
        "gb": 1e9 / 1024,
    }.get(unit, 1)
    return int(int(el.text) * factor)


def parse_domain_xml(xml: str, *, persistent: bool = True, autostart: bool = False) -> DomainDetails:
    root = ET.fromstring(xml)
    os_el = root.find("os")
    type_el = os_el.find("type") if os_el is not None else None
    disks = []
    for d in root.iterfind("devices/disk"):
        src = d.find("source")
        source = None
        if src is not None:
            source = src.get("file") or src.get("dev") or src.get("name")
            if src.get("pool"):
                source = f"{src.get('pool')}/{src.get('volume')}"
        tgt, drv = d.find("target"), d.find("driver")
        disks.append(
            DiskInfo(
                target=tgt.get("dev", "") if tgt is not None else "",
                device=d.get("device", "disk"),
                source=source,
                driver_type=drv.get("type") if drv is not None else None,
                bus=tgt.get("bus") if tgt is not None else None,
            )
        )
    nics = []
    for n in root.iterfind("devices/interface"):
        src, mac, model, tgt = n.find("source"), n.find("mac"), n.find("model"), n.find("target")
        source = None
        if src is not None:
            source = src.get("network") or src.get("bridge") or src.get("dev")
        nics.append(
            NicInfo(
                mac=mac.get("address") if mac is not None else None,
                source=source,
                model=model.get("type") if model is not None else None,
                target=tgt.get("dev") if tgt is not None else None,
            )
        )
    meta = root.find(f"metadata/{{{VIMTUI_NS}}}vm")
    tags: tuple[str, ...] = ()
    tenant = None
    template = False
    if meta is not None:
        template = meta.find(f"{{{VIMTUI_NS}}}template") is not None
        tags = tuple(t.strip() for t in _text(meta.find(f"{{{VIMTUI_NS}}}tags")).split(",") if t.strip())
        tenant = _text(meta.find(f"{{{VIMTUI_NS}}}tenant")) or None
    cpu = root.find("cpu")
    cpu_model = _text(root.find("cpu/model")) or (cpu.get("mode") if cpu is not None else None)
    has_agent = any(
        (t := c.find("target")) is not None and t.get("name") == AGENT_CHANNEL
        for c in root.iterfind("devices/channel")
    )
    return DomainDetails(
        uuid=_text(root.find("uuid")),
        name=_text(root.find("name")),
        title=_text(root.find("title")),
        description=_text(root.find("description")),
        memory_kib=_kib(root.find("memory")),
        vcpus=int(_text(root.find("vcpu")) or 0),
        os_type=_text(type_el) or "hvm",
        arch=type_el.get("arch") if type_el is not None else None,
        machine=type_el.get("machine") if type_el is not None else None,
        cpu_model=cpu_model or None,
        firmware=os_el.get("firmware") if os_el is not None else None,
        disks=tuple(disks),
        nics=tuple(nics),
        tags=tags,
        tenant=tenant,
        has_agent=has_agent,
        persistent=persistent,
        autostart=autostart,
        template=template,
    )
