"""A published state lists each host's VMs in name order, and the archive knows each VM by its name, also
after a VM is renamed or defined: the fleet keeps that order and those labels from one poll to the next
(HostSession.roster) rather than working them out at every poll, so a change must still reach both.

libvirt's test:///default is one host shared by every connection of this process: the test defines,
renames and undefines through its own connection, as another client of the host would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libvirt
import pytest

from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.model import FleetState
from vimtui.core.monitor.archive import Archive
from vimtui.core.poll.session import SessionSettings

XML = """<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os></domain>"""
NAMES = ("order-m", "order-z", "order-a2", "order-b")


@pytest.fixture
def other_client() -> Iterator[libvirt.virConnect]:
    conn = libvirt.open("test:///default")
    yield conn
    for name in NAMES:
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
    archive = Archive(tmp_path / "history.sqlite")
    fleet = Fleet(
        [parse_connect("test:///default")], SessionSettings(interval=0.5), tmp_path / "run", archive=archive
    )
    await fleet.start(tick=False)
    await fleet.connected(within=10)
    yield fleet
    await fleet.stop()


async def _polled(fleet: Fleet, predicate: object) -> FleetState:
    """Tick until a published state satisfies predicate (generous deadline: a busy machine)."""
    for _ in range(100):
        state = await fleet.tick(deadline=5)
        if predicate(state):  # type: ignore[operator]
            return state
        await asyncio.sleep(0.05)
    raise AssertionError("the fleet never showed the expected state")


def _names(state: FleetState) -> list[str]:
    return [vm.name for vm in state.vms.values()]


async def test_renamed_and_new_vms_take_their_place_in_the_order_and_the_archive(
    fleet: Fleet, other_client: libvirt.virConnect
) -> None:
    for name in NAMES[:2]:
        other_client.defineXML(XML.format(name=name))
    state = await _polled(fleet, lambda st: {"order-m", "order-z"} <= set(_names(st)))
    assert _names(state) == sorted(_names(state))
    for _ in range(3):  # steady polls: the order kept
        state = await fleet.tick(deadline=5)
        assert _names(state) == sorted(_names(state))

    other_client.lookupByName("order-z").rename("order-a2")  # from last to first
    other_client.defineXML(XML.format(name="order-b"))  # a new one in the middle
    state = await _polled(
        fleet, lambda st: "order-a2" in _names(st) and "order-b" in _names(st) and "order-z" not in _names(st)
    )
    names = _names(state)
    assert names == sorted(names)
    assert len(names) == len(set(state.vms))

    assert fleet.archive is not None
    renamed = next(k for k, vm in state.vms.items() if vm.name == "order-a2")
    labels = await asyncio.to_thread(fleet.archive.labels, [renamed])
    assert labels[renamed]["name"] == "order-a2"
