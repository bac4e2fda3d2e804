"""Networks on a lab host through `vimtui net`, each effect read back with virsh inside the host: a network
defined and started, an overlapping subnet refused with nothing defined, a new guest on the network getting
a DHCP lease that `vimtui net leases` shows as `virsh net-dhcp-leases` lists it (the VM named), a delete
refused while the guest runs on it and done when forced.

One scratch guest on kvm03 (the host with the fewest guests), removed at the end with the network.
What breaks it: an overlap not refused (or a network defined anyway), a lease missing or not matched to its
VM, a delete that goes ahead while the guest runs, a forced one that leaves the network.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest

from tests.lab.lab import Lab, LabError, wait_for

pytestmark = pytest.mark.lab

HOST = "kvm03"
NET = "vtlabnet"
GUEST = "netguest"
SUBNET = "192.168.150.0/24"


def vimtui(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "vimtui"
    return subprocess.run(
        [str(exe), "--config", str(lab.config_file), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def virsh(lab: Lab, *args: str, check: bool = True) -> str:
    return lab.exec(HOST, ["virsh", "-c", "qemu:///system", *args], check=check)


def fields(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def net_names(lab: Lab) -> set[str]:
    return set(virsh(lab, "net-list", "--all", "--name").split())


def virsh_leases(lab: Lab) -> list[tuple[str, str]]:
    """(mac, ip/prefix) of each lease `virsh net-dhcp-leases` lists."""
    out = []
    for line in virsh(lab, "net-dhcp-leases", NET).splitlines():
        words = line.split()  # expiry date, expiry time, MAC, protocol, address/prefix, hostname, client id
        if len(words) >= 5 and words[2].count(":") == 5:
            out.append((words[2].lower(), words[4]))
    return out


def _cleanup(lab: Lab) -> None:
    lab.remove_guest(HOST, GUEST)
    with lab.connect(HOST) as conn, contextlib.suppress(libvirt.libvirtError):
        net = conn.networkLookupByName(NET)
        with contextlib.suppress(libvirt.libvirtError):
            net.destroy()
        net.undefine()


def test_network_defined_used_leased_and_deleted(lab: Lab) -> None:
    _cleanup(lab)
    try:
        before = net_names(lab)
        overlap = vimtui(lab, "net", "define", f"{HOST}/{NET}", "--subnet", "192.168.122.128/25")
        assert overlap.returncode == 1, overlap.stdout + overlap.stderr
        assert "overlaps network 'default' (192.168.122.0/24)" in overlap.stdout
        assert net_names(lab) == before  # nothing defined

        made = vimtui(lab, "net", "define", f"{HOST}/{NET}", "--subnet", SUBNET, "--mode", "nat")
        assert made.returncode == 0, made.stdout + made.stderr
        info = fields(virsh(lab, "net-info", NET))
        assert info["Active"] == "yes" and info["Autostart"] == "yes" and info["Persistent"] == "yes"
        assert "address='192.168.150.1'" in virsh(lab, "net-dumpxml", NET)

        # a new guest with its NIC on the network: it asks for an address by DHCP as it boots
        lab.add_guest(HOST, GUEST, start=False)
        with lab.connect(HOST) as conn:
            xml = conn.lookupByName(GUEST).XMLDesc(0).replace("network='default'", f"network='{NET}'")
            conn.defineXML(xml).create()
        try:
            leases = wait_for(
                "a lease on the new network", lambda: virsh_leases(lab), timeout=150, interval=1
            )
        except LabError:
            print(virsh(lab, "net-dhcp-leases", NET), lab.serial_log(HOST, GUEST)[-2000:])
            raise
        listed = vimtui(lab, "net", "leases", f"{HOST}/{NET}", "--json")
        assert listed.returncode == 0, listed.stderr
        shown = [(x["mac"], x["ip"], x["vm"]) for x in json.loads(listed.stdout)]
        assert shown == [(mac, ip, GUEST) for mac, ip in leases]
        assert all(ip.startswith("192.168.150.") for _mac, ip in leases)
        table = vimtui(lab, "net", "list", HOST)
        row = next(line for line in table.stdout.splitlines() if f" {NET} " in line)
        assert "active" in row and "nat" in row and "192.168.150.1/24" in row and "1 running" in row

        refused = vimtui(lab, "net", "delete", f"{HOST}/{NET}")
        assert refused.returncode == 1 and f"running VMs use network {NET}: {GUEST}" in refused.stdout
        assert fields(virsh(lab, "net-info", NET))["Active"] == "yes"

        forced = vimtui(lab, "net", "delete", f"{HOST}/{NET}", "--force", "--yes")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert NET not in net_names(lab)
    finally:
        _cleanup(lab)
