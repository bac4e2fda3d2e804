"""Read-only questions asked of a host on demand (detail screens, CLI), run on the host's lane.

Each is a plain blocking function of a libvirt connection; `HostSession.call` runs it with a deadline.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import libvirt


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    name: str
    parent: str | None
    current: bool
    state: str
    """The domain's state when it was taken (running, shutoff, disk-snapshot ...)."""
    created: int
    """Unix time."""
    description: str
    external: bool


@dataclass(frozen=True, slots=True)
class PoolInfo:
    name: str
    type: str
    active: bool
    autostart: bool
    capacity: int
    allocation: int
    available: int
    path: str | None


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    name: str
    active: bool
    autostart: bool
    bridge: str | None
    forward: str
    """nat, route, bridge ... or isolated."""
    address: str | None
    dhcp: bool


@dataclass(frozen=True, slots=True)
class HostInventory:
    pools: tuple[PoolInfo, ...]
    networks: tuple[NetworkInfo, ...]


def domain_xml(conn: Any, uuid: str, secure: bool = False) -> str:
    flags = libvirt.VIR_DOMAIN_XML_SECURE if secure else 0
    return str(conn.lookupByUUIDString(uuid).XMLDesc(flags))


def snapshots(conn: Any, uuid: str) -> list[SnapshotInfo]:
    """The domain's snapshots, parents before children (a tree read top-down)."""
    dom = conn.lookupByUUIDString(uuid)
    out = []
    for snap in dom.listAllSnapshots(0):
        root = ET.fromstring(snap.getXMLDesc(0))
        parent = root.find("parent/name")
        disks = root.findall("disks/disk")
        external = (
            any(d.get("snapshot") == "external" for d in disks)
            or root.find("memory[@snapshot='external']") is not None
        )
        out.append(
            SnapshotInfo(
                name=snap.getName(),
                parent=parent.text if parent is not None else None,
                current=bool(snap.isCurrent(0)),
                state=(root.findtext("state") or "").strip(),
                created=int(root.findtext("creationTime") or 0),
                description=(root.findtext("description") or "").strip(),
                external=external,
            )
        )
    return tree_order(out)


def tree_order(snaps: list[SnapshotInfo]) -> list[SnapshotInfo]:
    by_parent: dict[str | None, list[SnapshotInfo]] = {}
    for s in sorted(snaps, key=lambda s: (s.created, s.name)):
        by_parent.setdefault(s.parent, []).append(s)
    names = {s.name for s in snaps}
    ordered: list[SnapshotInfo] = []

    def walk(parent: str | None) -> None:
        for s in by_parent.get(parent, []):
            ordered.append(s)
            walk(s.name)

    walk(None)
    for parent, children in by_parent.items():  # orphans (parent gone): still listed
        if parent is not None and parent not in names:
            for s in children:
                ordered.append(s)
                walk(s.name)
    return ordered


def host_inventory(conn: Any) -> HostInventory:
    pools = []
    for pool in conn.listAllStoragePools(0):
        root = ET.fromstring(pool.XMLDesc(0))
        active = bool(pool.isActive())
        cap = alloc = avail = 0
        if active:
            _state, cap, alloc, avail = pool.info()
        pools.append(
            PoolInfo(
                name=pool.name(),
                type=root.get("type", ""),
                active=active,
                autostart=bool(pool.autostart()),
                capacity=int(cap),
                allocation=int(alloc),
                available=int(avail),
                path=root.findtext("target/path"),
            )
        )
    networks = []
    for net in conn.listAllNetworks(0):
        root = ET.fromstring(net.XMLDesc(0))
        fwd = root.find("forward")
        ip = root.find("ip")
        networks.append(
            NetworkInfo(
                name=net.name(),
                active=bool(net.isActive()),
                autostart=bool(net.autostart()),
                bridge=root.find("bridge").get("name") if root.find("bridge") is not None else None,  # type: ignore[union-attr]
                forward=fwd.get("mode", "nat") if fwd is not None else "isolated",
                address=f"{ip.get('address')}/{ip.get('prefix') or ip.get('netmask')}"
                if ip is not None
                else None,
                dhcp=ip is not None and ip.find("dhcp") is not None,
            )
        )
    return HostInventory(pools=tuple(pools), networks=tuple(networks))
