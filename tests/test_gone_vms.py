"""What the core keeps of a VM ends with the VM: undefined on its host, its history ring and everything
the session knew of it are forgotten (a fleet with VMs coming and going must not grow without bound).

libvirt's test:///default is one host shared by every connection of this process: the test defines and
undefines through its own connection, as another client of the host would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libvirt
import pytest

from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.poll.session import SessionSettings

XML = """<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os></domain>"""


@pytest.fixture
def other_client() -> Iterator[libvirt.virConnect]:
    conn = libvirt.open("test:///default")
    yield conn
    for name in ("gone-1", "gone-2"):
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            continue
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    conn.close()


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    fleet = Fleet([parse_connect("test:///default")], SessionSettings(interval=0.5), tmp_path / "run")
    await fleet.start(tick=False)
    await fleet.connected(within=10)
    yield fleet
    await fleet.stop()


async def _polled(fleet: Fleet, predicate: object) -> None:
    """Tick until a published state satisfies predicate (generous deadline: a busy machine)."""
    for _ in range(100):
        state = await fleet.tick(deadline=5)
        if predicate(state):  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the fleet never showed the expected state")


async def test_an_undefined_vm_leaves_no_ring_and_nothing_in_its_session(
    fleet: Fleet, other_client: libvirt.virConnect
) -> None:
    doms = [other_client.defineXML(XML.format(name=name)) for name in ("gone-1", "gone-2")]
    for dom in doms:
        dom.create()
    uuids = [dom.UUIDString() for dom in doms]
    keys = [f"test-default/{u}" for u in uuids]
    # two polls of both running: each has its ring, and its details were read
    await _polled(fleet, lambda st: all(k in st.vms and st.vms[k].details is not None for k in keys))
    await _polled(fleet, lambda st: all(k in fleet.vm_history for k in keys))
    session = fleet.sessions["test-default"]
    assert all(session.remembers(u) for u in uuids)

    # one goes away on the host (as another client would do it): what was kept of it goes too
    doms[0].destroy()
    doms[0].undefine()
    await _polled(fleet, lambda st: keys[0] not in st.vms)
    await fleet.tick(deadline=5)
    assert keys[0] not in fleet.vm_history and not session.remembers(uuids[0])
    # the other one is untouched
    assert keys[1] in fleet.vm_history and session.remembers(uuids[1])
    assert fleet.vm_history.latest(keys[1], "cpu") is not None or keys[1] in fleet.state.vms
