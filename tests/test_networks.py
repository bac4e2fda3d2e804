"""Virtual networks: the definition's checks and XML (pure), and the network actions end to end on libvirt's
test:/// driver (a fleet of one host), each effect read back through a libvirt connection of the test's own.

What breaks each: a DHCP range outside its subnet or holding the host's address accepted, an overlapping
subnet defined (or refused without naming the network it overlaps), a delete going ahead while a running VM
uses the network (or a forced one refused), the network's name missing from the task's audit arguments, a
lease or a VM left out of the list.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import libvirt
import pytest

from vimtui.core.actions import networks, operations, targets
from vimtui.core.actions.net_spec import SpecError, overlaps, spec, xml
from vimtui.core.actions.targets import Ref
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.fleet.tasks import Task
from vimtui.core.poll import host_networks
from vimtui.core.poll.host_networks import parse_network
from vimtui.core.poll.session import SessionSettings

HOST = "test-default"


def test_a_subnet_gives_the_host_the_first_address_and_dhcp_the_rest() -> None:
    s = spec("lab", "nat", "192.168.100.0/24")
    assert str(s.address) == "192.168.100.1/24" and s.dhcp == ("192.168.100.2", "192.168.100.254")
    s = spec("lab", "isolated", "10.1.2.254/24")  # the host's own address given: the range is before it
    assert s.dhcp == ("10.1.2.1", "10.1.2.253")
    assert spec("lab", "routed", "10.1.2.0/24", dhcp=False).dhcp is None
    assert spec("lab", "nat", "10.1.2.0/24", dhcp_range="10.1.2.10-10.1.2.20").dhcp == (
        "10.1.2.10",
        "10.1.2.20",
    )
    v6 = spec("lab6", "nat", "fd00:1::/64")
    assert str(v6.address) == "fd00:1::1/64" and v6.dhcp is not None and v6.dhcp[0] == "fd00:1::2"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"subnet": "10.1.2.0"}, "no prefix"),
        ({"subnet": "10.1.2.300/24"}, "write it as"),
        ({"subnet": "10.1.2.0/31"}, "too small"),
        ({"subnet": "10.1.2.0/24", "dhcp_range": "10.1.3.5-10.1.3.9"}, "not a usable address"),
        ({"subnet": "10.1.2.0/24", "dhcp_range": "10.1.2.1-10.1.2.9"}, "host's own address"),
        ({"subnet": "10.1.2.0/24", "dhcp_range": "10.1.2.9-10.1.2.5"}, "start is after its end"),
        ({"mode": "bridge"}, "needs the host's bridge"),
        ({"mode": "bridge", "bridge": "br0", "subnet": "10.1.2.0/24"}, "takes no subnet"),
        ({"mode": "isolated", "subnet": "10.1.2.0/24", "dev": "eth0"}, "nat and routed"),
        ({"mode": "nat"}, "needs a subnet"),
        ({"mode": "bogus", "subnet": "10.1.2.0/24"}, "one of nat"),
        ({"subnet": "10.1.2.0/24", "bridge": "a bridge;rm"}, "not an interface name"),
    ],
)
def test_bad_definitions_are_refused_saying_why(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(SpecError, match=says):
        spec("lab", **kwargs)


def test_an_overlap_names_the_network_and_xml_reads_back() -> None:
    default = parse_network(
        "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>"
        "<ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' "
        "end='192.168.122.254'/></dhcp></ip></network>"
    )
    assert default.subnets == ("192.168.122.1/24",) and default.dhcp == ("192.168.122.2-192.168.122.254",)
    why = overlaps(spec("lab", "nat", "192.168.0.0/16"), [default])
    assert why == "subnet 192.168.0.0/16 overlaps network 'default' (192.168.122.0/24)"
    assert (
        overlaps(spec("default", "nat", "10.0.0.0/24"), [default])
        == "a network named 'default' already exists"
    )
    assert overlaps(spec("lab", "nat", "192.168.123.0/24"), [default]) is None
    back = parse_network(xml(spec("lab", "routed", "10.7.0.0/24", bridge="virbr7", dev="eth0")))
    assert (back.mode, back.bridge, back.forward_dev, back.subnets) == (
        "routed",
        "virbr7",
        "eth0",
        ("10.7.0.1/24",),
    )
    assert back.dhcp == ("10.7.0.2-10.7.0.254",)
    iso = ET.fromstring(xml(spec("iso", "isolated", "10.8.0.0/24", dhcp=False)))
    assert iso.find("forward") is None and iso.find("ip/dhcp") is None
    br = parse_network(xml(spec("lan", "bridge", bridge="br0")))
    assert (br.mode, br.bridge, br.subnets) == ("bridge", "br0", ())


# -- on the test driver --------------------------------------------------------------------------------


@pytest.fixture
def conn() -> Iterator[Any]:
    """The test's own connection: test:///default is one shared state per process, so it sees what the
    fleet's connection did."""
    c = libvirt.open("test:///default")
    yield c
    for name in ("lab1", "lab2", "lab3"):
        try:
            n = c.networkLookupByName(name)
        except libvirt.libvirtError:
            continue
        if n.isActive():
            n.destroy()
        n.undefine()
    c.close()


@pytest.fixture
async def fleet(tmp_path: Path, conn: Any) -> AsyncIterator[Fleet]:
    f = Fleet([parse_connect("test:///default")], SessionSettings(interval=0.5), tmp_path / "run")
    await f.start(tick=False)
    await f.connected(within=10)
    yield f
    await f.stop()


async def _net(fleet: Fleet, verb: str, target: str, **args: Any) -> Task:
    state = fleet.publish()
    act = operations.target_action("network", verb)
    [step] = operations.plan_targets(state, act, [targets.parse("network", target, state)], args)
    [task] = operations.submit(fleet, [step])
    assert await fleet.tasks.wait([task], within=20)
    return task


def _names(conn: Any) -> set[str]:
    return {n.name() for n in conn.listAllNetworks(0)}


async def test_define_start_autostart_stop_and_overlap_refused(fleet: Fleet, conn: Any) -> None:
    t = await _net(fleet, "define", f"{HOST}/lab1", mode="nat", subnet="10.91.0.0/24")
    assert t.ok, t.error
    assert t.action == "network.define" and t.vm == "lab1"
    n = conn.networkLookupByName("lab1")
    assert n.isActive() and n.autostart()
    p = parse_network(n.XMLDesc(0))
    assert (p.mode, p.subnets, p.dhcp) == ("nat", ("10.91.0.1/24",), ("10.91.0.2-10.91.0.254",))
    before = _names(conn)
    t = await _net(fleet, "define", "lab2", mode="isolated", subnet="10.91.0.128/25")  # one host: no HOST/
    assert not t.ok and "overlaps network 'lab1' (10.91.0.0/24)" in t.error and "nothing defined" in t.error
    assert _names(conn) == before
    t = await _net(fleet, "define", "lab2", mode="isolated", subnet="10.91.0/24")
    assert (
        t.state == "failed" and "write it as" in t.error and _names(conn) == before
    )  # refused before the lane
    assert (await _net(fleet, "autostart", "lab1", enable=False)).ok and not n.autostart()
    t = await _net(fleet, "stop", "lab1")
    assert t.ok and not n.isActive()
    assert (await _net(fleet, "start", "lab1")).ok and n.isActive()
    t = await _net(fleet, "define", "lab3", mode="open", subnet="10.93.0.0/24", start=False, autostart=False)
    assert t.ok and not conn.networkLookupByName("lab3").isActive()
    missing = await _net(fleet, "start", "nosuch")
    assert not missing.ok and "no network 'nosuch'" in missing.error


async def test_delete_refused_while_a_running_vm_uses_it_unless_forced(fleet: Fleet, conn: Any) -> None:
    assert (await _net(fleet, "define", "lab2", mode="isolated", subnet="10.92.0.0/24")).ok
    dom = conn.createXML(
        f"<domain type='test'><name>netvm</name><uuid>{uuid.uuid4()}</uuid><memory>65536</memory>"
        "<os><type>hvm</type></os><devices><interface type='network'><mac address='52:54:00:aa:00:01'/>"
        "<source network='lab2'/></interface></devices></domain>"
    )
    try:
        views = {v.name: v for v in await fleet.ask(HOST, host_networks.networks)}
        assert views["lab2"].running_users == ("netvm",) and views["lab2"].users[0].mac == "52:54:00:aa:00:01"
        assert views["lab2"].leases is None  # the test driver cannot say: not known, not "none"
        [step] = operations.plan_targets(
            fleet.publish(), operations.target_action("network", "delete"), [Ref("network", HOST, "lab2")]
        )
        preview = await operations.preview(fleet, [step])
        assert any("cannot: refused: running VMs use network lab2: netvm" in line for line in preview)
        forced = replace(step, args={**step.args, "force": True})
        assert any("lose it (forced): netvm" in line for line in await operations.preview(fleet, [forced]))
        t = await _net(fleet, "delete", f"{HOST}/lab2")
        assert not t.ok and "running VMs use network lab2: netvm" in t.error
        assert conn.networkLookupByName("lab2").isActive()
        t = await _net(fleet, "delete", f"{HOST}/lab2", force=True)
        assert t.ok and "netvm lost it" in t.result, t.error
        assert "lab2" not in _names(conn)
    finally:
        dom.destroy()


def test_every_network_action_needs_admin() -> None:
    assert {a.needs for a in networks.ACTIONS} == {"admin"}


# -- the CLI (a process of its own: its test:///default starts afresh, so effects are read in its output and
# its audit log; the lab reads them back with virsh)


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text("")
    env = os.environ | {"XDG_DATA_HOME": str(tmp_path / "share"), "XDG_RUNTIME_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "vimtui", "--config", str(config), *argv, "--connect", "test:///default"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_cli_lists_and_refuses_with_reasons_and_audit(tmp_path: Path) -> None:
    listed = _cli(tmp_path, "net", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [default] = json.loads(listed.stdout)
    assert (default["host"], default["name"], default["mode"], default["subnets"]) == (
        HOST,
        "default",
        "nat",
        ["192.168.122.1/24"],
    )
    assert default["vms"] == [{"vm": "test", "running": True, "state": "running", "mac": "aa:bb:cc:dd:ee:ff"}]
    text = _cli(tmp_path, "net", "list", f"{HOST}/default")
    assert (
        text.returncode == 0 and "192.168.122.2-192.168.122.254" in text.stdout and "1 running" in text.stdout
    )
    overlap = _cli(tmp_path, "net", "define", "lab", "--subnet", "192.168.122.128/25")
    assert overlap.returncode == 1 and "overlaps network 'default' (192.168.122.0/24)" in overlap.stdout
    dry = _cli(
        tmp_path, "net", "define", f"{HOST}/lab", "--subnet", "10.3.0.0/24", "--mode", "routed", "--dry-run"
    )
    assert dry.returncode == 0 and "define lab: routed, 10.3.0.1/24, DHCP 10.3.0.2-10.3.0.254" in dry.stdout
    refused = _cli(tmp_path, "net", "delete", "default")
    assert refused.returncode == 1 and "running VMs use network default: test" in refused.stdout
    assert "delete it anyway with force" in refused.stdout
    forced = _cli(tmp_path, "net", "delete", "default", "--force", "--yes")
    assert forced.returncode == 0 and "network default deleted; test lost it" in forced.stdout
    bad = _cli(tmp_path, "net", "start", "nohost/default")
    assert bad.returncode == 2 and "no host 'nohost'" in bad.stderr
    records = [
        json.loads(line) for line in (tmp_path / "share" / "vimtui" / "audit.log").read_text().splitlines()
    ]
    ends = [(r["action"], r["vm"], r.get("outcome")) for r in records if r.get("outcome")]
    assert ("network.define", "lab", "failed") in ends and ("network.delete", "default", "failed") in ends
    assert ("network.delete", "default", "done") in ends


async def test_a_bridge_another_network_holds_is_refused(fleet: Fleet, conn: Any) -> None:
    t = await _net(fleet, "define", "lab3", mode="isolated", subnet="10.94.0.0/24", bridge="virbr0")
    assert not t.ok and "bridge virbr0 is network 'default''s" in t.error, t.error
    assert "lab3" not in _names(conn)
