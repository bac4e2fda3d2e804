"""A domain's XML reduced to what the lint rules read: displays, disks, CPU, balloon, NICs, tags and the
files it uses. Parsed once per domain per lint run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from vimtui.core.poll.domxml import AGENT_CHANNEL, parse_domain_xml

LOOPBACK = ("127.", "::1", "localhost", "0:0:0:0:0:0:0:1")


@dataclass(frozen=True, slots=True)
class Display:
    type: str
    """vnc, spice."""
    listen: str | None
    """The address beyond loopback it listens on (None: loopback, a socket or nothing)."""
    password: bool


@dataclass(frozen=True, slots=True)
class Disk:
    target: str
    type: str
    """file, block, volume, network."""
    path: str | None
    """The file or device (None for a network disk or a volume not resolved)."""
    pool: str | None
    volume: str | None
    format: str | None
    cache: str | None
    readonly: bool
    backing: tuple[str, ...] = ()
    """Files of its backing chain, as the live XML lists them."""


@dataclass(frozen=True, slots=True)
class DomainView:
    type: str
    """kvm, qemu ... (the <domain type>)."""
    displays: tuple[Display, ...]
    agent: bool
    disks: tuple[Disk, ...]
    """Writable and read-only disks (device='disk'); CD-ROMs and floppies are not in it."""
    other_files: tuple[str, ...]
    """Other files it uses: CD-ROM images, kernel, initrd, firmware, NVRAM."""
    cpu_mode: str | None
    cpu_model: str | None
    balloon: str | None
    """The memballoon model (None: none declared, "none": switched off)."""
    stats_period: int
    macs: tuple[str, ...]
    tags: tuple[str, ...]
    vcpus: int
    memory_kib: int


def _listen(graphics: ET.Element) -> str | None:
    """The first address beyond loopback the display listens on (a network listen is beyond it)."""
    listens = graphics.findall("listen")
    candidates: list[str] = []
    if graphics.get("listen"):
        candidates.append(graphics.get("listen", ""))
    for el in listens:
        kind = el.get("type", "address")
        if kind == "address" and el.get("address"):
            candidates.append(el.get("address", ""))
        elif kind == "network":
            candidates.append(el.get("address") or f"network {el.get('network', '?')}")
    for address in candidates:
        if not address.startswith(LOOPBACK):
            return address
    return None


def _disk(el: ET.Element) -> Disk:
    src, drv, tgt = el.find("source"), el.find("driver"), el.find("target")
    kind = el.get("type", "file")
    path = pool = volume = None
    if src is not None:
        path = src.get("file") or src.get("dev") or (src.get("dir") if kind == "dir" else None)
        pool, volume = src.get("pool"), src.get("volume")
    backing = tuple(
        f
        for b in el.iter("backingStore")
        if (s := b.find("source")) is not None and (f := s.get("file") or s.get("dev"))
    )
    return Disk(
        target=tgt.get("dev", "?") if tgt is not None else "?",
        type=kind,
        path=path,
        pool=pool,
        volume=volume,
        format=drv.get("type") if drv is not None else None,
        cache=drv.get("cache") if drv is not None else None,
        readonly=el.find("readonly") is not None or el.find("shareable") is not None,
        backing=backing,
    )


def view(xml: str) -> DomainView:
    root = ET.fromstring(xml)
    details = parse_domain_xml(xml)  # tags and MACs as the rest of vimtui reads them
    displays = tuple(
        Display(g.get("type", ""), _listen(g), bool(g.get("passwd")))
        for g in root.iterfind("devices/graphics")
        if g.get("type") in ("vnc", "spice")
    )
    agent = any(
        (t := c.find("target")) is not None and t.get("name") == AGENT_CHANNEL
        for c in root.iterfind("devices/channel")
    )
    disks = []
    files = []
    for el in root.iterfind("devices/disk"):
        if el.get("device", "disk") in ("disk", "lun"):
            disks.append(_disk(el))
        elif (src := el.find("source")) is not None and (f := src.get("file") or src.get("dev")):
            files.append(f)
    for tag in ("os/kernel", "os/initrd", "os/loader", "os/nvram"):
        if text := (root.findtext(tag) or "").strip():
            files.append(text)
    cpu = root.find("cpu")
    balloon = root.find("devices/memballoon")
    stats = balloon.find("stats") if balloon is not None else None
    vcpu = root.find("vcpu")
    vcpus = int((vcpu.get("current") or vcpu.text or "0").strip()) if vcpu is not None else 0
    return DomainView(
        type=root.get("type", ""),
        displays=displays,
        agent=agent,
        disks=tuple(disks),
        other_files=tuple(files),
        cpu_mode=(cpu.get("mode") or ("custom" if cpu.find("model") is not None else None))
        if cpu is not None
        else None,
        cpu_model=(root.findtext("cpu/model") or "").strip() or None,
        balloon=balloon.get("model") if balloon is not None else None,
        stats_period=int(stats.get("period", "0")) if stats is not None else 0,
        macs=tuple(n.mac.lower() for n in details.nics if n.mac),
        tags=details.tags,
        vcpus=vcpus,
        memory_kib=details.memory_kib,
    )
