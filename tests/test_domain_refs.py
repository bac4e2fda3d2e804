"""The records of a bulk call made through libvirtmod (domain_refs.bulk_stats: each domain a capsule), their
UUIDs and names read holding the interpreter lock (from the domains' memory, or through libvirt's calls),
and each domain freed once (domain_refs.py), against libvirt's test driver: what the libvirt-python methods
say, and every reference given back (a connection closes with none left: a domain not freed would hold
one, one freed twice would crash)."""

from __future__ import annotations

import gc
from xml.sax.saxutils import escape

import libvirt
import pytest

from vimtui.core.poll import domain_refs
from vimtui.core.poll.domain_refs import DomainRefs, Records, bulk_stats


@pytest.fixture
def conn() -> libvirt.virConnect:
    return libvirt.open("test:///default")


def truth(conn: libvirt.virConnect) -> list[tuple[bytes, str]]:
    return [(dom.UUID(), dom.name()) for dom, _stats in conn.getAllDomainStats()]


def assert_all_given_back(conn: libvirt.virConnect) -> None:
    """The connection closes with no reference left: every domain was freed, none twice."""
    gc.collect()
    assert conn.close() == 0


@pytest.mark.parametrize("release", ["virObjectUnref", "virDomainFree"])
@pytest.mark.parametrize("layout", [None, False])
def test_take_gives_what_the_methods_give_and_frees_each_domain_once(
    conn: libvirt.virConnect, layout: bool | None, release: str
) -> None:
    """Through virObjectUnref (exported by this machine's libvirt, 9.0 on Debian 12) and through
    virDomainFree (where it is not)."""
    refs = DomainRefs((release, "virDomainFree"))
    assert refs.fast  # this machine's libvirt.so.0 loads through ctypes
    assert refs.release == release
    refs.layout = layout  # None: checked on the first domain (it matches here: below); False: ctypes calls
    want = truth(conn)
    assert want
    for _ in range(50):
        records = bulk_stats(conn, 0, 0)
        assert isinstance(records, Records)
        assert [stats for _cap, stats in records] == [s for _d, s in conn.getAllDomainStats()]
        assert refs.take(records) == want
        assert records.freed
        del records
    assert refs.layout is (True if layout is None else False)
    assert_all_given_back(conn)


def test_records_dropped_untaken_free_their_domains(conn: libvirt.virConnect) -> None:
    """A poll whose caller stopped waiting: its records go with their domains still held."""
    for _ in range(20):
        records = bulk_stats(conn, 0, 0)
        assert records and not records.freed
        del records
    assert_all_given_back(conn)


def test_without_ctypes_the_bulk_call_and_the_reads_are_libvirt_pythons(
    conn: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(domain_refs.DOMAIN_REFS, "fast", False)
    records = bulk_stats(conn, 0, 0)
    assert not isinstance(records, Records) and isinstance(records[0][0], libvirt.virDomain)
    assert DomainRefs().take(records) == truth(conn)
    del records
    assert_all_given_back(conn)


def test_a_layout_that_does_not_match_is_found_and_not_used(
    conn: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check compares the name's pointer at the supposed place (never follows it) and the UUID bytes:
    a layout off by one field is refused, and the domains are read through libvirt's calls."""
    want = truth(conn)
    records = bulk_stats(conn, 0, 0)
    refs = DomainRefs()
    ptr = domain_refs.pointer_of(records[0][0])
    assert refs._check_layout(ptr)
    monkeypatch.setattr(domain_refs, "_NAME_AT", domain_refs._NAME_AT + 8)
    assert not refs._check_layout(ptr)
    refs = DomainRefs()
    assert refs.take(records) == want
    assert refs.layout is False
    del records
    assert_all_given_back(conn)


def test_a_hostile_name_comes_back_as_the_same_text(conn: libvirt.virConnect) -> None:
    name = "[bold]evil[red]-\u202e-名前-<&>"
    os_type = "<os><type>hvm</type></os>"
    conn.defineXML(f"<domain type='test'><name>{escape(name)}</name><memory>65536</memory>{os_type}</domain>")
    names = [n for _raw, n in DomainRefs().take(bulk_stats(conn, 0, 0))]
    assert name in names
    assert_all_given_back(conn)
