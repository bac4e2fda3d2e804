"""Domain XML is parsed one lane at a time (host_calls.PARSING), never while a lane waits on its host: at
start-up every host's lane reads all its VMs' details, and 50 threads parsing at once took the interpreter
lock from the event loop (the first table came a second late in about one start in four)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import TracebackType

import libvirt
import pytest

from tests.factories import domains_on_test_default
from vimtui.core.poll import host_calls
from vimtui.core.poll.host_calls import read_details

NAMES = ["parse-a", "parse-b", "parse-c"]


class CountingLock:
    """threading.Lock that counts its holds and says whether it was held while libvirt was called."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holds = 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.holds += 1

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.lock.release()


@pytest.fixture
def host() -> Iterator[libvirt.virConnect]:
    with domains_on_test_default(NAMES) as conn:
        yield conn


def test_each_domain_is_parsed_holding_the_lock_and_libvirt_called_without_it(
    host: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = CountingLock()
    monkeypatch.setattr(host_calls, "PARSING", lock)
    held_during_calls = []
    real_lookup = host.lookupByUUIDString

    def lookup(uuid: str) -> libvirt.virDomain:
        held_during_calls.append(lock.lock.locked())
        return real_lookup(uuid)

    monkeypatch.setattr(host, "lookupByUUIDString", lookup)
    uuids = [host.lookupByName(name).UUIDString() for name in NAMES]
    details = read_details(host, [*uuids, "00000000-0000-0000-0000-00000000dead"])  # one gone: left out
    assert sorted(details) == sorted(uuids)
    assert {details[host.lookupByName(n).UUIDString()].name for n in NAMES} == set(NAMES)
    assert lock.holds == len(NAMES)
    assert held_during_calls and not any(held_during_calls)
