"""What a host's storage holds and who uses it, asked of the host on its lane: pools, their volumes with
the domains that use each (directly or through a backing chain) and the volumes backed by it, and the
orphans (volumes no domain defined on the host uses).

One pass over the domains' XML (persistent and live) finds every disk source; a volume is in use when a
domain's disk is it, or when it is in the backing chain of a volume a domain uses.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import libvirt

from vimtui.core.fleet.tasks import ActionError


@dataclass(frozen=True, slots=True)
class PoolRow:
    name: str
    type: str
    active: bool
    autostart: bool
    persistent: bool
    capacity: int
    allocation: int
    available: int
    path: str
    volumes: int | None
    """How many volumes (None: an inactive pool does not say)."""


@dataclass(frozen=True, slots=True)
class VolumeRow:
    pool: str
    name: str
    path: str
    format: str
    capacity: int
    allocation: int
    backing: str = ""
    """The path of the volume it is an overlay of ('' when none)."""
    used_by: tuple[str, ...] = ()
    """Domains that use it: directly, or through a volume backed by it."""
    backs: tuple[str, ...] = ()
    """Volumes (by path) whose backing it is."""

    @property
    def orphan(self) -> bool:
        return not self.used_by and not self.backs


@dataclass
class Usage:
    """Who uses which path, read once from every domain defined on the host."""

    direct: dict[str, set[str]] = field(default_factory=dict)
    """path -> the domains whose disk source it is."""
    running: set[str] = field(default_factory=set)
    """Domains running (or paused) now."""

    def users(self, path: str) -> set[str]:
        return self.direct.get(path, set())


def _pool_path(conn: Any, pool: str, volume: str, cache: dict[tuple[str, str], str]) -> str:
    key = (pool, volume)
    if key not in cache:
        try:
            cache[key] = str(conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).path())
        except libvirt.libvirtError:
            cache[key] = f"{pool}/{volume}"
    return cache[key]


def disk_paths(conn: Any, xml: str, cache: dict[tuple[str, str], str]) -> Iterable[str]:
    """Every source path of a domain's disks, their backing chains (the live XML has them) included."""
    root = ET.fromstring(xml)
    for disk in root.iter("disk"):
        for src in disk.iter("source"):
            path = src.get("file") or src.get("dev")
            if path:
                yield path
            elif src.get("pool") and src.get("volume"):
                yield _pool_path(conn, src.get("pool", ""), src.get("volume", ""), cache)


def usage(conn: Any) -> Usage:
    out = Usage()
    cache: dict[tuple[str, str], str] = {}
    for dom in conn.listAllDomains(0):
        name = dom.name()
        try:
            xmls = [dom.XMLDesc(0)]
            if dom.isActive():
                out.running.add(name)
                if dom.isPersistent():
                    xmls.append(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:  # undefined between the list and the look: it uses nothing now
            continue
        for xml in xmls:
            for path in disk_paths(conn, xml, cache):
                out.direct.setdefault(path, set()).add(name)
    return out


def pool_rows(conn: Any) -> list[PoolRow]:
    rows = []
    for pool in conn.listAllStoragePools(0):
        root = ET.fromstring(pool.XMLDesc(0))
        active = bool(pool.isActive())
        cap = alloc = avail = 0
        count = None
        if active:
            _state, cap, alloc, avail = pool.info()
            try:
                count = int(pool.numOfVolumes())
            except libvirt.libvirtError:
                count = None
        rows.append(
            PoolRow(
                name=pool.name(),
                type=root.get("type", ""),
                active=active,
                autostart=bool(pool.autostart()),
                persistent=bool(pool.isPersistent()),
                capacity=int(cap),
                allocation=int(alloc),
                available=int(avail),
                path=root.findtext("target/path") or "",
                volumes=count,
            )
        )
    return sorted(rows, key=lambda r: r.name)


def _raw_volumes(pool: Any) -> list[tuple[str, str, str, int, int, str]]:
    """(name, path, format, capacity, allocation, backing path) of each volume of an active pool."""
    out = []
    for vol in pool.listAllVolumes(0):
        try:
            root = ET.fromstring(vol.XMLDesc(0))
            _type, cap, alloc = vol.info()
        except libvirt.libvirtError:  # gone between the list and the look
            continue
        fmt = root.find("target/format")
        out.append(
            (
                vol.name(),
                vol.path(),
                fmt.get("type", "") if fmt is not None else "",
                int(cap),
                int(alloc),
                (root.findtext("backingStore/path") or "").strip(),
            )
        )
    return out


def volume_rows(conn: Any, pools: Iterable[str] | None = None) -> list[VolumeRow]:
    """The volumes of the active pools named (None: of all active pools), with who uses each."""
    use = usage(conn)
    raw: list[tuple[str, tuple[str, str, str, int, int, str]]] = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        raw += [(pool.name(), v) for v in _raw_volumes(pool)]
    backing_of: dict[str, str] = {v[1]: v[5] for _p, v in raw if v[5]}
    backs: dict[str, list[str]] = {}
    for path, base in backing_of.items():
        backs.setdefault(base, []).append(path)
    users: dict[str, set[str]] = {path: set(doms) for path, doms in use.direct.items()}
    for path, doms in use.direct.items():  # a domain's disk uses its whole chain, even one not in its XML
        seen = {path}
        base = backing_of.get(path, "")
        while base and base not in seen:
            seen.add(base)
            users.setdefault(base, set()).update(doms)
            base = backing_of.get(base, "")
    wanted = None if pools is None else set(pools)
    rows = [
        VolumeRow(
            pool=p,
            name=name,
            path=path,
            format=fmt,
            capacity=cap,
            allocation=alloc,
            backing=backing,
            used_by=tuple(sorted(users.get(path, ()))),
            backs=tuple(sorted(backs.get(path, ()))),
        )
        for p, (name, path, fmt, cap, alloc, backing) in raw
        if wanted is None or p in wanted
    ]
    return sorted(rows, key=lambda r: (r.pool, r.name))


def orphans(conn: Any) -> list[VolumeRow]:
    """Volumes of the active pools no domain defined on the host uses, nor any other volume backs on."""
    return [r for r in volume_rows(conn) if r.orphan]


def volume_row(conn: Any, pool: str, name: str) -> VolumeRow:
    """One volume with its users (ActionError when the pool or the volume is not there)."""
    p = lookup_pool(conn, pool)
    if not p.isActive():
        raise ActionError(f"pool {pool} is not active: start it first")
    lookup_volume(p, name)
    found = [r for r in volume_rows(conn, [pool]) if r.name == name]
    if not found:
        raise ActionError(f"no volume {name!r} in pool {pool}")
    return found[0]


def lookup_pool(conn: Any, name: str) -> Any:
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            known = ", ".join(sorted(p.name() for p in conn.listAllStoragePools(0))) or "none"
            raise ActionError(f"no storage pool {name!r} (pools: {known})") from exc
        raise


def lookup_volume(pool: Any, name: str) -> Any:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise ActionError(f"no volume {name!r} in pool {pool.name()}") from exc
        raise


def in_use_text(row: VolumeRow, running: set[str] | None = None) -> str:
    """`used by web01 (running), db02; backing of /p/a.qcow2`: why a volume may not go ('' when free)."""
    parts = []
    if row.used_by:
        names = [f"{d} (running)" if running and d in running else d for d in row.used_by]
        parts.append("used by " + ", ".join(names))
    if row.backs:
        parts.append("the backing of " + ", ".join(row.backs))
    return "; ".join(parts)
