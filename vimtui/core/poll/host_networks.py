"""A host's virtual networks as an operator reads them: mode, bridge, subnets, DHCP ranges, autostart, the
DHCP leases with the VM that holds each address, and the VMs plugged into each network.

Plain blocking functions of a libvirt connection, asked on the host's lane (`Fleet.ask`). The XML parsing
is apart (`parse_network`) so it is checked on recorded XML too.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import libvirt

MODES = {"nat": "nat", "route": "routed", "open": "open", "bridge": "bridge"}
"""libvirt's forward mode -> the word shown (no <forward>: isolated; others shown as libvirt says)."""

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Lease:
    ip: str
    """Address with its prefix (192.168.122.57/24)."""
    mac: str
    hostname: str
    """What the guest's DHCP client said ('' when it said nothing)."""
    vm: str
    """The VM whose interface has this MAC on this host ('' when none does)."""
    expires: int
    """Unix time."""


STATES = {1: "running", 2: "blocked", 3: "paused", 4: "shutting down", 7: "suspended"}
"""libvirt's active domain states as shown (any other: shut off)."""


@dataclass(frozen=True, slots=True)
class NetUser:
    """A VM with an interface on the network."""

    vm: str
    running: bool
    """Active (running, paused ...): it holds the network; deleting the network cuts it off."""
    mac: str
    state: str = "running"


@dataclass(frozen=True, slots=True)
class NetworkView:
    name: str
    uuid: str
    active: bool
    persistent: bool
    autostart: bool
    mode: str
    """nat, routed, isolated, open, bridge (or libvirt's word for other modes: passthrough, hostdev ...)."""
    bridge: str
    forward_dev: str
    subnets: tuple[str, ...]
    """CIDR of each <ip> (the host's address on it: 192.168.122.1/24)."""
    dhcp: tuple[str, ...]
    """Each DHCP range, start-end."""
    leases: tuple[Lease, ...] | None = None
    """None: not known (an inactive network, or a driver that cannot say)."""
    users: tuple[NetUser, ...] = field(default=())

    @property
    def running_users(self) -> tuple[str, ...]:
        return tuple(u.vm for u in self.users if u.running)

    def networks(self) -> list[Subnet]:
        return [ipaddress.ip_interface(s).network for s in self.subnets]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "active": self.active,
            "persistent": self.persistent,
            "autostart": self.autostart,
            "mode": self.mode,
            "bridge": self.bridge or None,
            "forward_dev": self.forward_dev or None,
            "subnets": list(self.subnets),
            "dhcp": list(self.dhcp),
            "leases": None
            if self.leases is None
            else [
                {
                    "ip": x.ip,
                    "mac": x.mac,
                    "hostname": x.hostname or None,
                    "vm": x.vm or None,
                    "expires": x.expires,
                }
                for x in self.leases
            ],
            "vms": [{"vm": u.vm, "running": u.running, "state": u.state, "mac": u.mac} for u in self.users],
        }


@dataclass(frozen=True, slots=True)
class ParsedNetwork:
    name: str
    uuid: str
    mode: str
    bridge: str
    forward_dev: str
    subnets: tuple[str, ...]
    dhcp: tuple[str, ...]


def parse_network(xml: str) -> ParsedNetwork:
    root = ET.fromstring(xml)
    fwd = root.find("forward")
    mode = "isolated" if fwd is None else MODES.get(fwd.get("mode", "nat"), fwd.get("mode", "nat"))
    bridge = root.find("bridge")
    subnets, ranges = [], []
    for ip in root.iterfind("ip"):
        address = ip.get("address")
        if not address:
            continue
        prefix = ip.get("prefix") or ip.get("netmask") or ("64" if ":" in address else "24")
        try:
            subnets.append(str(ipaddress.ip_interface(f"{address}/{prefix}")))
        except ValueError:
            subnets.append(f"{address}/{prefix}")
        for r in ip.iterfind("dhcp/range"):
            ranges.append(f"{r.get('start')}-{r.get('end')}")
    return ParsedNetwork(
        name=root.findtext("name") or "",
        uuid=root.findtext("uuid") or "",
        mode=mode,
        bridge=(bridge.get("name") or "") if bridge is not None else "",
        forward_dev=(fwd.get("dev") or "") if fwd is not None else "",
        subnets=tuple(subnets),
        dhcp=tuple(ranges),
    )


def interfaces_by_network(conn: Any) -> dict[str, list[NetUser]]:
    """Network name -> the VMs with an interface on it (each interface once: a VM with two NICs on it
    shows twice, with each MAC)."""
    out: dict[str, list[NetUser]] = {}
    # every domain's state in one call (not one call per domain); the XML is one call each
    states = {
        dom.UUIDString(): STATES.get(int(stats.get("state.state", 5)), "shut off")
        for dom, stats in conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
    }
    for dom in conn.listAllDomains(0):
        try:
            root = ET.fromstring(dom.XMLDesc(0))
        except libvirt.libvirtError:  # gone meanwhile
            continue
        state = states.get(dom.UUIDString(), "shut off")
        name = root.findtext("name") or ""
        for iface in root.iterfind("devices/interface"):
            src = iface.find("source")
            net = src.get("network") if src is not None and iface.get("type") == "network" else None
            if not net:
                continue
            mac = iface.find("mac")
            address = mac.get("address", "") if mac is not None else ""
            out.setdefault(net, []).append(NetUser(name, state != "shut off", address, state))
    return out


def _leases(net: Any, macs: dict[str, str]) -> tuple[Lease, ...] | None:
    try:
        raw = net.DHCPLeases(None, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return None
        raise
    leases = []
    for x in raw:
        mac = str(x.get("mac") or "").lower()
        ip = str(x.get("ipaddr") or "")
        prefix = x.get("prefix")
        leases.append(
            Lease(
                ip=f"{ip}/{prefix}" if prefix is not None else ip,
                mac=mac,
                hostname=str(x.get("hostname") or ""),
                vm=macs.get(mac, ""),
                expires=int(x.get("expirytime") or 0),
            )
        )
    return tuple(sorted(leases, key=lambda lease: _ip_key(lease.ip)))


def _ip_key(ip: str) -> tuple[int, int | str]:
    try:
        a = ipaddress.ip_interface(ip).ip
    except ValueError:
        return (9, ip)
    return (a.version, int(a))


def _view(net: Any, users: dict[str, list[NetUser]]) -> NetworkView:
    p = parse_network(net.XMLDesc(0))
    active = bool(net.isActive())
    mine = tuple(sorted(users.get(p.name, ()), key=lambda u: (u.vm, u.mac)))
    macs = {u.mac.lower(): u.vm for u in mine}
    return NetworkView(
        name=p.name,
        uuid=p.uuid,
        active=active,
        persistent=bool(net.isPersistent()),
        autostart=bool(net.autostart()),
        mode=p.mode,
        bridge=p.bridge,
        forward_dev=p.forward_dev,
        subnets=p.subnets,
        dhcp=p.dhcp,
        leases=_leases(net, macs) if active else None,
        users=mine,
    )


def networks(conn: Any) -> list[NetworkView]:
    """Every network of the host, by name, with its leases and the VMs on it."""
    users = interfaces_by_network(conn)
    out = []
    for net in conn.listAllNetworks(0):
        try:
            out.append(_view(net, users))
        except libvirt.libvirtError as exc:  # undefined meanwhile
            if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                raise
    return sorted(out, key=lambda n: n.name)


def network(conn: Any, name: str) -> NetworkView:
    """One network by name (libvirtError VIR_ERR_NO_NETWORK when there is none)."""
    return _view(conn.networkLookupByName(name), interfaces_by_network(conn))
