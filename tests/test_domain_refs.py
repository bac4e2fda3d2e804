"""The records' UUIDs and names read holding the interpreter lock, and the domains freed once
(domain_refs.py), against libvirt's test driver: what the libvirt-python methods say, and every reference
given back (a connection closes with none left: a domain not freed would hold one, one freed twice would
crash)."""

from __future__ import annotations

import gc
from xml.sax.saxutils import escape

import libvirt
import pytest

from vimtui.core.poll.domain_refs import DomainRefs


@pytest.fixture
def conn() -> libvirt.virConnect:
    return libvirt.open("test:///default")


def truth(conn: libvirt.virConnect) -> list[tuple[bytes, str]]:
    return [(dom.UUID(), dom.name()) for dom, _stats in conn.getAllDomainStats()]


@pytest.mark.parametrize(("fast", "contended"), [(True, True), (True, False), (False, True)])
def test_take_gives_what_the_methods_give_and_frees_each_domain_once(
    conn: libvirt.virConnect, fast: bool, contended: bool
) -> None:
    refs = DomainRefs()
    assert refs.fast  # this machine's libvirt.so.0 loads through ctypes
    refs.fast = fast
    want = truth(conn)
    assert want
    for _ in range(50):
        records = conn.getAllDomainStats()
        assert refs.take(records, contended) == want
        if fast and contended:
            assert all(dom._o is None for dom, _stats in records)  # freed: nothing left to free
        del records
    gc.collect()
    assert conn.close() == 0  # no reference left behind


def test_a_hostile_name_comes_back_as_the_same_text(conn: libvirt.virConnect) -> None:
    name = "[bold]evil[red]-\u202e-名前-<&>"
    os_type = "<os><type>hvm</type></os>"
    conn.defineXML(f"<domain type='test'><name>{escape(name)}</name><memory>65536</memory>{os_type}</domain>")
    names = [n for _raw, n in DomainRefs().take(conn.getAllDomainStats())]
    assert name in names
    gc.collect()
    assert conn.close() == 0
