"""The records' UUIDs and names read holding the interpreter lock (from the domains' memory, or through
libvirt's calls), and the domains freed once (domain_refs.py), against libvirt's test driver: what the
libvirt-python methods say, and every reference given back (a connection closes with none left: a domain
not freed would hold one, one freed twice would crash)."""

from __future__ import annotations

import gc
from xml.sax.saxutils import escape

import libvirt
import pytest

from vimtui.core.poll import domain_refs
from vimtui.core.poll.domain_refs import DomainRefs


@pytest.fixture
def conn() -> libvirt.virConnect:
    return libvirt.open("test:///default")


def truth(conn: libvirt.virConnect) -> list[tuple[bytes, str]]:
    return [(dom.UUID(), dom.name()) for dom, _stats in conn.getAllDomainStats()]


@pytest.mark.parametrize(
    ("fast", "layout", "contended"),
    [(True, None, True), (True, None, False), (True, False, True), (True, False, False), (False, None, True)],
)
def test_take_gives_what_the_methods_give_and_frees_each_domain_once(
    conn: libvirt.virConnect, fast: bool, layout: bool | None, contended: bool
) -> None:
    refs = DomainRefs()
    assert refs.fast  # this machine's libvirt.so.0 loads through ctypes
    refs.fast = fast
    refs.layout = layout  # None: checked on the first domain (it matches here: below)
    want = truth(conn)
    assert want
    for _ in range(50):
        records = conn.getAllDomainStats()
        assert refs.take(records, contended) == want
        if fast and (layout is None or contended):
            assert all(dom._o is None for dom, _stats in records)  # freed: nothing left to free
        del records
    assert refs.layout is (layout if not fast or layout is not None else True)
    gc.collect()
    assert conn.close() == 0  # no reference left behind


def test_a_layout_that_does_not_match_is_found_and_not_used(
    conn: libvirt.virConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check compares the name's pointer at the supposed place (never follows it) and the UUID bytes:
    a layout off by one field is refused, and the domains are read through libvirt's calls."""
    want = truth(conn)
    records = conn.getAllDomainStats()
    refs = DomainRefs()
    assert refs._check_layout(records[0][0].c_pointer())
    monkeypatch.setattr(domain_refs, "_NAME_AT", domain_refs._NAME_AT + 8)
    assert not refs._check_layout(records[0][0].c_pointer())
    refs = DomainRefs()
    assert refs.take(records, contended=True) == want
    assert refs.layout is False
    del records
    gc.collect()
    assert conn.close() == 0


def test_a_hostile_name_comes_back_as_the_same_text(conn: libvirt.virConnect) -> None:
    name = "[bold]evil[red]-\u202e-名前-<&>"
    os_type = "<os><type>hvm</type></os>"
    conn.defineXML(f"<domain type='test'><name>{escape(name)}</name><memory>65536</memory>{os_type}</domain>")
    names = [n for _raw, n in DomainRefs().take(conn.getAllDomainStats())]
    assert name in names
    gc.collect()
    assert conn.close() == 0
