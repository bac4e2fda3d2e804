"""What fleet lint knows of one host, and how it is read: `collect(conn)` runs on the host's lane (one
question through `Fleet.ask`) and returns plain frozen data, so the rules (vimtui.core.lint.rules) are
pure functions of recorded facts, tested without a host.

Reads are all read-only: the domain XML (secure, so a display's password shows, falling back to the
ordinary XML on a read-only connection), autostart, snapshots, the leases' addresses of running domains,
pools and their volumes, the daemon's version, the host's size and its CPU as each virtualisation type
sees it (domain capabilities).

The host's own facts are one call on its lane, then each domain one call of its own.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import libvirt


@dataclass(frozen=True, slots=True)
class SnapshotFacts:
    name: str
    parent: str | None
    created: int
    """Unix time."""


@dataclass(frozen=True, slots=True)
class DomainFacts:
    name: str
    uuid: str
    xml: str
    active: bool
    autostart: bool
    secure: bool = True
    """The XML was read with secrets (a display's password shows); False on a read-only connection."""
    snapshots: tuple[SnapshotFacts, ...] = ()
    addresses: tuple[str, ...] = ()
    """IP addresses from the DHCP leases (running domains only)."""
    config_xml: str | None = None
    """A running domain's persistent definition where it differs from what runs (a change made for its
    next start); None when they are the same or it is not running."""


@dataclass(frozen=True, slots=True)
class VolumeFacts:
    name: str
    path: str
    backing: str | None = None
    """The backing file of a qcow2 overlay (it is in use when the overlay is)."""
    kind: str = "file"
    """file, block, dir, network ..."""


@dataclass(frozen=True, slots=True)
class PoolFacts:
    name: str
    type: str
    """dir, fs, netfs, logical, rbd, iscsi ..."""
    path: str | None
    active: bool
    volumes: tuple[VolumeFacts, ...] = ()


@dataclass(frozen=True, slots=True)
class CpuFacts:
    """What one virtualisation type (kvm, qemu) offers on a host (its domain capabilities)."""

    virt_type: str
    host_model: str | None
    """The CPU model host-model expands to."""
    host_model_features: frozenset[str] = frozenset()
    """The features host-model requires on top of its model."""
    custom_models: frozenset[str] = frozenset()
    """The named models a custom CPU may use here (usable='yes')."""


@dataclass(frozen=True, slots=True)
class HostFacts:
    libvirt_version: int
    """major * 1_000_000 + minor * 1000 + release (virConnectGetLibVersion)."""
    cpus: int
    memory_kib: int
    domains: tuple[DomainFacts, ...] = ()
    pools: tuple[PoolFacts, ...] = ()
    cpu: tuple[CpuFacts, ...] = ()


VIRT_TYPES = ("kvm", "qemu")


def host_facts(conn: Any) -> HostFacts:
    """The host's own facts, its domains left for `domain_facts` (blocking: run it on the host's lane)."""
    info = conn.getInfo()
    return HostFacts(
        libvirt_version=int(conn.getLibVersion()),
        cpus=int(info[2]),
        memory_kib=int(info[1]) * 1024,
        pools=tuple(_pools(conn)),
        cpu=tuple(c for t in VIRT_TYPES if (c := _cpu(conn, t)) is not None),
    )


def persistent_domains(conn: Any) -> list[str]:
    """The UUIDs of the domains defined on the host (transient ones have no definition to lint)."""
    return [str(d.UUIDString()) for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT)]


def domain_facts(conn: Any, uuid: str) -> DomainFacts | None:
    """One domain's facts, each its own call on the lane so that a host of many domains never holds its
    lane (and its poll) for long; None when it went meanwhile."""
    try:
        dom = conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise
    return _domain(dom)


def _domain(dom: Any) -> DomainFacts:
    secure = True
    try:
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    except libvirt.libvirtError:  # a read-only connection may not see secrets
        secure, xml = False, dom.XMLDesc(0)
    active = bool(dom.isActive())
    config_xml = None
    if active:
        with contextlib.suppress(libvirt.libvirtError):
            inactive = dom.XMLDesc(
                libvirt.VIR_DOMAIN_XML_INACTIVE | (libvirt.VIR_DOMAIN_XML_SECURE if secure else 0)
            )
            config_xml = inactive if inactive != xml else None
    snaps = []
    with contextlib.suppress(libvirt.libvirtError):
        for s in dom.listAllSnapshots(0):
            root = ET.fromstring(s.getXMLDesc(0))
            snaps.append(
                SnapshotFacts(
                    name=s.getName(),
                    parent=root.findtext("parent/name"),
                    created=int(root.findtext("creationTime") or 0),
                )
            )
    addresses: list[str] = []
    if active:
        with contextlib.suppress(libvirt.libvirtError):
            ifaces = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0) or {}
            for iface in ifaces.values():
                addresses.extend(a["addr"] for a in iface.get("addrs") or () if a.get("addr"))
    return DomainFacts(
        name=dom.name(),
        uuid=dom.UUIDString(),
        xml=xml,
        active=active,
        autostart=bool(dom.autostart()),
        secure=secure,
        snapshots=tuple(snaps),
        addresses=tuple(addresses),
        config_xml=config_xml,
    )


def _pools(conn: Any) -> list[PoolFacts]:
    out = []
    for pool in conn.listAllStoragePools(0):
        root = ET.fromstring(pool.XMLDesc(0))
        active = bool(pool.isActive())
        volumes = []
        if active:
            with contextlib.suppress(libvirt.libvirtError):
                pool.refresh(0)  # files added or removed behind libvirt's back
            for vol in pool.listAllVolumes(0):
                try:
                    vroot = ET.fromstring(vol.XMLDesc(0))
                except libvirt.libvirtError:  # gone meanwhile
                    continue
                volumes.append(
                    VolumeFacts(
                        name=vol.name(),
                        path=vol.path(),
                        backing=vroot.findtext("backingStore/path"),
                        kind=vroot.get("type", "file"),
                    )
                )
        out.append(
            PoolFacts(
                name=pool.name(),
                type=root.get("type", ""),
                path=root.findtext("target/path"),
                active=active,
                volumes=tuple(volumes),
            )
        )
    return out


def _cpu(conn: Any, virt_type: str) -> CpuFacts | None:
    try:
        caps = ET.fromstring(conn.getDomainCapabilities(None, None, None, virt_type, 0))
    except libvirt.libvirtError:  # this type is not offered here (no KVM), or the driver cannot say
        return None
    host_model = caps.find("cpu/mode[@name='host-model']")
    model = None
    features: frozenset[str] = frozenset()
    if host_model is not None and host_model.get("supported") == "yes":
        model = host_model.findtext("model")
        features = frozenset(
            f.get("name", "")
            for f in host_model.iterfind("feature")
            if f.get("policy") in ("require", None) and f.get("name")
        )
    custom = frozenset(
        (m.text or "").strip()
        for m in caps.iterfind("cpu/mode[@name='custom']/model")
        if m.get("usable", "yes") == "yes" and m.text
    )
    return CpuFacts(virt_type, model, features, custom)
