"""When a host's VMs are looked at for addresses that are due (HostVms.ip_due): at most every IP_SCAN seconds
(each look walks every VM of the host and, when it finds some, makes a call on the host's lane), at once
when a VM starts or comes, and again at the next poll while more than a batch were due. Samples from
libvirt's test driver (test:///default, shared by the connections of this process)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import libvirt
import pytest

from tests.factories import domains_on_test_default
from vimtui.core.poll import host_vms
from vimtui.core.poll.host_vms import IP_BATCH, IP_KEEP, IP_REFRESH, IP_SCAN, HostVms
from vimtui.core.poll.stats import parse_domain_stats

NAMES = [f"scan-{i:02d}" for i in range(IP_BATCH + 4)]


@pytest.fixture
def host() -> Iterator[libvirt.virConnect]:
    with domains_on_test_default(NAMES, mib=64) as conn:
        yield conn


def poll(conn: libvirt.virConnect, book: HostVms) -> None:
    t = time.monotonic()
    samples = [parse_domain_stats(d.UUIDString(), d.name(), s, t) for d, s in conn.getAllDomainStats()]
    book.apply(samples, 1, t)


def running(conn: libvirt.virConnect) -> set[str]:
    return {d.UUIDString() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_RUNNING)}


def looked_up(book: HostVms) -> list[str]:
    """ip_due, and its VMs marked looked up now (as the session does after the lane's call)."""
    due = [uuid for uuid, _agent in book.ip_due()]
    for uuid in due:
        book.ip_time[uuid] = time.monotonic()
    return due


def test_due_addresses_are_looked_for_at_most_every_scan_and_in_batches(host: libvirt.virConnect) -> None:
    for name in NAMES:
        host.lookupByName(name).create()
    book = HostVms("test", time.monotonic, lambda _gone: None)
    poll(host, book)
    want = running(host)
    assert len(want) > IP_BATCH
    first = looked_up(book)
    assert len(first) == IP_BATCH
    second = looked_up(book)  # more than a batch was due: the rest at once, not IP_SCAN later
    assert set(first) | set(second) == want and not set(first) & set(second)
    assert looked_up(book) == []
    # every VM due again (IP_REFRESH passed): not before the next scan, IP_SCAN after the last one
    for uuid in book.ip_time:
        book.ip_time[uuid] -= IP_REFRESH
    poll(host, book)
    assert looked_up(book) == []
    assert book.ip_scan_at > time.monotonic() + IP_SCAN / 2
    book.ip_scan_at = time.monotonic()  # IP_SCAN has passed
    assert len(looked_up(book)) == IP_BATCH


@pytest.mark.parametrize("how", ["poll", "event"])
def test_a_vm_that_starts_is_looked_up_without_waiting_for_the_scan(
    host: libvirt.virConnect, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_vms, "IP_BATCH", 100)
    book = HostVms("test", time.monotonic, lambda _gone: None)
    poll(host, book)
    assert set(looked_up(book)) == running(host)
    assert looked_up(book) == []
    dom = host.lookupByName(NAMES[0])
    dom.create()
    if how == "event":
        book.event(dom.UUIDString(), dom.name(), libvirt.VIR_DOMAIN_EVENT_STARTED, 0)
    else:
        poll(host, book)
    assert looked_up(book) == [dom.UUIDString()]
    assert looked_up(book) == []


def test_known_addresses_are_looked_up_again_less_often_and_at_once_after_a_restart(
    host: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VM whose addresses were found is looked up again after IP_KEEP, one without any after IP_REFRESH;
    either at once when it starts again (stopped and started between two polls)."""
    monkeypatch.setattr(host_vms, "IP_BATCH", 100)
    found, none = host.lookupByName(NAMES[0]), host.lookupByName(NAMES[1])
    found.create()
    none.create()
    book = HostVms("test", time.monotonic, lambda _gone: None)
    poll(host, book)
    assert {found.UUIDString(), none.UUIDString()} <= set(looked_up(book))
    assert book.merge({found.UUIDString(): {"ips": ("192.0.2.7",), "ip_source": "lease"}})

    def due_after(seconds: float) -> set[str]:
        for uuid in book.ip_time:
            book.ip_time[uuid] = time.monotonic() - seconds
        book.ip_scan_at = 0.0
        return {uuid for uuid, _agent in book.ip_due()} & {found.UUIDString(), none.UUIDString()}

    assert due_after(IP_REFRESH + 1) == {none.UUIDString()}
    assert due_after(IP_KEEP + 1) == {found.UUIDString(), none.UUIDString()}
    assert due_after(0) == set()
    found.destroy()
    poll(host, book)
    found.create()
    poll(host, book)
    assert looked_up(book) == [found.UUIDString()]
