"""A new virtual network, from what an operator gives (mode, subnet, DHCP range, bridge) to libvirt's XML,
checked before anything is touched: the subnet and range parsed, the range inside the subnet, and the
subnet against the other networks of the same host (an overlap is refused, naming the network).

Pure functions: the define action asks the host for its networks on its lane and calls these.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from vimtui.core.poll.host_networks import ParsedNetwork

MODE_CHOICES = (
    ("NAT: guests reach out through the host's address", "nat"),
    ("isolated: guests and the host only", "isolated"),
    ("routed: the subnet routed by the host, no NAT", "routed"),
    ("open: a bridge with an address, no firewall rules", "open"),
    ("bridge: an existing bridge of the host (no address, no DHCP)", "bridge"),
)
FORWARD = {"nat": "nat", "routed": "route", "open": "open", "bridge": "bridge"}
"""Mode -> libvirt's forward mode (isolated has no <forward>)."""
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


class SpecError(ValueError):
    """What is wrong with the definition, said for the operator."""


@dataclass(frozen=True, slots=True)
class NetSpec:
    name: str
    mode: str
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None
    """The host's address on the network, with the prefix (None: bridge mode)."""
    dhcp: tuple[str, str] | None
    bridge: str
    dev: str

    @property
    def subnet(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        return self.address.network if self.address is not None else None

    def describe(self) -> str:
        if self.mode == "bridge":
            return f"{self.name}: bridge mode on the host's bridge {self.bridge}"
        dhcp = f", DHCP {self.dhcp[0]}-{self.dhcp[1]}" if self.dhcp else ", no DHCP"
        via = f" via {self.dev}" if self.dev else ""
        br = f", bridge {self.bridge}" if self.bridge else ""
        return f"{self.name}: {self.mode}{via}, {self.address}{dhcp}{br}"


def spec(
    name: str,
    mode: str = "nat",
    subnet: str | None = None,
    dhcp: bool = True,
    dhcp_range: str | None = None,
    bridge: str | None = None,
    dev: str | None = None,
) -> NetSpec:
    """The checked definition (SpecError says what is wrong). `subnet` is a network (192.168.50.0/24: the
    host takes the first address) or the host's address with its prefix (192.168.50.254/24)."""
    if not NAME.match(name):
        raise SpecError(f"{name!r} is not a network name (letters, digits, . _ + -; up to 64)")
    if mode not in FORWARD and mode != "isolated":
        raise SpecError(f"mode {mode!r}: one of nat, isolated, routed, open, bridge")
    for what, value in (("bridge", bridge), ("dev", dev)):
        if value and not IFNAME.match(value):
            raise SpecError(f"{what} {value!r} is not an interface name (up to 15 letters, digits, . _ : -)")
    if mode == "bridge":
        if not bridge:
            raise SpecError("bridge mode needs the host's bridge (--bridge br0): guests join it directly")
        if subnet or dhcp_range:
            raise SpecError("bridge mode takes no subnet or DHCP range: the host's bridge has its own")
        if dev:
            raise SpecError("bridge mode takes no --dev: the bridge is the host's")
        return NetSpec(name, mode, None, None, bridge, "")
    if dev and mode not in ("nat", "routed"):
        raise SpecError(f"--dev (the host's outgoing interface) is for nat and routed, not {mode}")
    if not subnet:
        raise SpecError(f"{mode} needs a subnet, such as 192.168.100.0/24")
    address = host_address(subnet)
    return NetSpec(
        name,
        mode,
        address,
        dhcp_pool(address, dhcp_range) if dhcp or dhcp_range else None,
        bridge or "",
        dev or "",
    )


def host_address(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if "/" not in text:
        raise SpecError(f"subnet {text!r} has no prefix: write it as {text.strip()}/24")
    try:
        iface = ipaddress.ip_interface(text.strip())
    except ValueError:
        raise SpecError(f"subnet {text!r}: write it as 192.168.100.0/24") from None
    net = iface.network
    usable = net.num_addresses - (2 if net.version == 4 else 1)
    if usable < 2:
        raise SpecError(f"subnet {net} is too small: the host and at least one guest need an address")
    if iface.ip == net.network_address:  # a network given: the host takes the first address
        return ipaddress.ip_interface(f"{net.network_address + 1}/{net.prefixlen}")
    if net.version == 4 and iface.ip == net.broadcast_address:
        raise SpecError(f"{iface.ip} is the broadcast address of {net}")
    return iface


def dhcp_pool(
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface, text: str | None
) -> tuple[str, str]:
    """The DHCP range: given as START-END (checked inside the subnet, without the host's address), or by
    default every address of the subnet after the host's (libvirt's default network: .2 to .254)."""
    net = address.network
    ip = ipaddress.ip_address  # addresses as ints: one arithmetic for IPv4 and IPv6
    me, first = int(address.ip), int(net.network_address) + 1
    last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
    if not text:
        return (str(ip(me + 1)), str(ip(last))) if me < last else (str(ip(first)), str(ip(me - 1)))
    bad = f"DHCP range {text!r}: write it as START-END (192.168.100.10-192.168.100.99)"
    parts = [p.strip() for p in text.replace(",", "-").split("-")]
    if len(parts) != 2:
        raise SpecError(bad)
    try:
        a, b = (ipaddress.ip_address(p) for p in parts)
    except ValueError:
        raise SpecError(bad) from None
    for x in (a, b):
        if x.version != net.version or not first <= int(x) <= last:
            raise SpecError(f"DHCP range {text}: {x} is not a usable address of {net}")
    if int(a) > int(b):
        raise SpecError(f"DHCP range {text}: its start is after its end")
    if int(a) <= me <= int(b):
        raise SpecError(f"DHCP range {text} holds the host's own address {address.ip}")
    return str(a), str(b)


def overlaps(new: NetSpec, others: Iterable[ParsedNetwork]) -> str | None:
    """Why `new` cannot sit beside the host's other networks (its name taken, its subnet overlapping one),
    naming the network; None when it can."""
    for other in others:
        if other.name == new.name:
            return f"a network named {new.name!r} already exists"
        if new.bridge and new.mode != "bridge" and other.bridge == new.bridge:
            return f"bridge {new.bridge} is network {other.name!r}'s"
    if new.subnet is None:
        return None
    for other in others:
        for s in other.subnets:
            try:
                theirs = ipaddress.ip_interface(s).network
            except ValueError:
                continue
            if theirs.version == new.subnet.version and theirs.overlaps(new.subnet):
                return f"subnet {new.subnet} overlaps network {other.name!r} ({theirs})"
    return None


def xml(new: NetSpec) -> str:
    root = ET.Element("network")
    ET.SubElement(root, "name").text = new.name
    if new.mode != "isolated":
        fwd = ET.SubElement(root, "forward", mode=FORWARD[new.mode])
        if new.dev:
            fwd.set("dev", new.dev)
            ET.SubElement(fwd, "interface", dev=new.dev)
    if new.mode == "bridge":
        ET.SubElement(root, "bridge", name=new.bridge)
        return ET.tostring(root, encoding="unicode")
    br = ET.SubElement(root, "bridge", stp="on", delay="0")
    if new.bridge:
        br.set("name", new.bridge)
    assert new.address is not None
    ip = ET.SubElement(root, "ip", address=str(new.address.ip), prefix=str(new.address.network.prefixlen))
    if new.address.version == 6:
        ip.set("family", "ipv6")
    if new.dhcp is not None:
        ET.SubElement(ET.SubElement(ip, "dhcp"), "range", start=new.dhcp[0], end=new.dhcp[1])
    return ET.tostring(root, encoding="unicode")
