"""Which 10.X.0.0/24 a lab's bridge takes: one that no route or address of this machine touches.

A lab on a subnet this machine already routes (another lab, a VPN, a second network on the same numbers)
would reach hosts that are not its own; so the lab checks before it builds, takes another free subnet when
its usual one is taken, and stops with a message naming what holds them when none is free.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

Network = ipaddress.IPv4Network
CANDIDATES = tuple(range(100, 200))
"""Where a lab looks when its preferred subnet is taken (10.100.0.0/24 to 10.199.0.0/24)."""


class SubnetTaken(RuntimeError):
    """No candidate subnet is free; the message names what holds them."""


def lab_network(octet: int) -> Network:
    return ipaddress.IPv4Network(f"10.{octet}.0.0/24")


def used_networks() -> list[tuple[Network, str]]:
    """Every IPv4 network this machine has an address in or a route to (the default route aside), with
    the device that holds it."""
    out: list[tuple[Network, str]] = []
    addrs = json.loads(_ip("-4", "-j", "addr", "show") or "[]")
    for link in addrs:
        for a in link.get("addr_info", []):
            if a.get("family") == "inet":
                net = ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False)
                out.append((net, str(link.get("ifname", "?"))))
    for r in json.loads(_ip("-4", "-j", "route", "show", "table", "all") or "[]"):
        dst = r.get("dst", "")
        if dst in ("", "default") or r.get("type") == "multicast":
            continue
        with contextlib.suppress(ValueError):
            net = ipaddress.IPv4Network(dst, strict=False)
            if net.prefixlen > 0:
                out.append((net, str(r.get("dev", "a route"))))
    return out


def free_octet(
    preferred: int, used: Iterable[tuple[Network, str]], candidates: Iterable[int] = CANDIDATES
) -> int:
    """`preferred` when 10.preferred.0.0/24 overlaps nothing in `used`, else the first free candidate;
    SubnetTaken when none is."""
    used = list(used)

    def holder(octet: int) -> str | None:
        net = lab_network(octet)
        return next((f"{n} on {dev}" for n, dev in used if n.overlaps(net)), None)

    if holder(preferred) is None:
        return preferred
    for octet in candidates:
        if octet != preferred and holder(octet) is None:
            return octet
    raise SubnetTaken(
        f"no free subnet for the lab: {lab_network(preferred)} is taken ({holder(preferred)}) and so is "
        f"every 10.X.0.0/24 tried ({len(list(candidates))} of them); free one, or bring the lab up elsewhere"
    )


@contextlib.contextmanager
def choosing(root: Path) -> Iterator[None]:
    """Held while a lab checks a subnet and puts its bridge on it: two labs coming up at once must not
    both find the same subnet free."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".subnet.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True, timeout=30).stdout
