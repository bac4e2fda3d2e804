"""Polls between the full ones read only the active VMs (host_calls.poll_domains): what the fleet shows
must still be what libvirt says, with or without the events that usually tell of a change.

libvirt's test:///default is one host shared by every connection of this process: the test changes it
through its own connection, as another client of the host would, and reads the truth from there. "Events
lost" is a session whose lifecycle events go nowhere (as when a host's event stream drops them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import libvirt
import pytest

from tests.factories import TEST_DOMAIN_XML, domains_on_test_default
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.model import FleetState, state_name
from vimtui.core.poll.session import EVERY_VM_POLLS, SessionSettings

NAMES = ("act-a", "act-b", "act-c")
HOST = "test-default"


@pytest.fixture
def host() -> Iterator[libvirt.virConnect]:
    with domains_on_test_default(NAMES) as conn:
        yield conn


@pytest.fixture
async def fleet(tmp_path: Path, host: libvirt.virConnect) -> AsyncIterator[Fleet]:
    fleet = Fleet([parse_connect("test:///default")], SessionSettings(interval=0.5), tmp_path / "run")
    await fleet.start(tick=False)
    await fleet.connected(within=10)
    yield fleet
    await fleet.stop()


def events_lost(fleet: Fleet) -> None:
    fleet.sessions[HOST].lifecycle = lambda *args: None  # type: ignore[method-assign]


def truth(host: libvirt.virConnect) -> dict[str, str]:
    """name -> state, as libvirt says."""
    return {name: state_name(host.lookupByName(name).state()[0]) for name in NAMES}


def shown(state: FleetState) -> dict[str, str]:
    """name -> state, as the fleet shows it."""
    return {vm.name: vm.state for vm in state.vms.values() if vm.name in NAMES}


async def ticks_until(fleet: Fleet, ok: Callable[[FleetState], bool], most: int) -> int:
    """Tick until ok(state); the number of ticks it took, at most `most` (else AssertionError)."""
    for n in range(1, most + 1):
        if ok(await fleet.tick(deadline=10)):
            return n
    raise AssertionError(f"not shown within {most} polls: {shown(fleet.state)}")


async def settled(fleet: Fleet, host: libvirt.virConnect) -> None:
    """Polled until the fleet shows what libvirt says, then a full round of polls, so that the next
    ones read the active VMs only."""
    await ticks_until(fleet, lambda st: shown(st) == truth(host), 20)
    for _ in range(EVERY_VM_POLLS):
        await fleet.tick(deadline=10)


async def test_shut_off_vms_stay_shown_with_their_details_between_full_polls(
    fleet: Fleet, host: libvirt.virConnect
) -> None:
    host.lookupByName("act-a").create()
    await settled(fleet, host)
    for _ in range(2 * EVERY_VM_POLLS):
        st = await fleet.tick(deadline=10)
        assert shown(st) == truth(host) == {"act-a": "running", "act-b": "shutoff", "act-c": "shutoff"}
        assert all(vm.details is not None for vm in st.vms.values() if vm.name in NAMES)
    # what the stats of a shut-off VM do not say, from its XML (the capacity figures read these)
    for vm in st.vms.values():
        if vm.name in NAMES:
            dom = host.lookupByName(vm.name)
            assert (vm.vcpus, vm.mem_max_kib) == (dom.info()[3], dom.maxMemory()), vm.name


async def test_a_vm_stopped_without_its_event_is_shown_stopped_at_the_next_poll(
    fleet: Fleet, host: libvirt.virConnect
) -> None:
    for name in ("act-a", "act-b"):
        host.lookupByName(name).create()
    await settled(fleet, host)
    events_lost(fleet)
    host.lookupByName("act-a").destroy()
    st = await fleet.tick(deadline=10)  # fewer active VMs than at the last poll: every VM is read
    assert shown(st) == truth(host) == {"act-a": "shutoff", "act-b": "running", "act-c": "shutoff"}


async def test_a_vm_stopped_while_another_started_is_shown_stopped_by_the_second_poll(
    fleet: Fleet, host: libvirt.virConnect
) -> None:
    host.lookupByName("act-a").create()
    await settled(fleet, host)
    events_lost(fleet)
    host.lookupByName("act-a").destroy()
    host.lookupByName("act-c").create()  # as many active VMs as before
    await ticks_until(fleet, lambda st: shown(st) == truth(host), 2)
    assert truth(host) == {"act-a": "shutoff", "act-b": "shutoff", "act-c": "running"}


async def test_a_vm_defined_without_its_event_is_shown_at_a_full_poll(
    fleet: Fleet, host: libvirt.virConnect
) -> None:
    host.lookupByName("act-a").create()
    await settled(fleet, host)
    events_lost(fleet)
    host.lookupByName("act-c").undefine()
    # shut off, a new UUID: only a poll of every VM shows it
    host.defineXML(TEST_DOMAIN_XML.format(mib=128, name="act-c"))
    uuid = host.lookupByName("act-c").UUIDString()
    await ticks_until(fleet, lambda st: f"{HOST}/{uuid}" in st.vms, EVERY_VM_POLLS + 1)
    assert shown(fleet.state) == truth(host)
    assert [v.name for v in fleet.state.vms.values()].count("act-c") == 1  # the old one is gone


async def test_shut_off_vms_stay_shown_when_as_many_new_vms_start_unannounced(
    fleet: Fleet, host: libvirt.virConnect
) -> None:
    """A poll of the active VMs that reads as many VMs as the host has (VMs new to the fleet started, their
    events lost) still keeps the shut-off VMs it did not read."""
    host.lookupByName("act-a").create()
    await settled(fleet, host)
    events_lost(fleet)
    before = len([vm for vm in fleet.state.vms.values() if vm.host == HOST])
    active = len(host.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
    extra = [f"act-new{i}" for i in range(before - active)]
    try:
        for name in extra:
            host.defineXML(TEST_DOMAIN_XML.format(mib=128, name=name))
            host.lookupByName(name).create()
        st = await fleet.tick(deadline=10)
        assert len(host.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)) >= before
        assert shown(st) == truth(host) == {"act-a": "running", "act-b": "shutoff", "act-c": "shutoff"}
        assert {vm.name for vm in st.vms.values() if vm.state == "running"} >= set(extra)
    finally:
        for name in extra:
            dom = host.lookupByName(name)
            dom.destroy()
            dom.undefine()
