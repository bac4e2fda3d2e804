"""Model objects for tests and benchmarks that need them without a host: each caller gives what matters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import libvirt

from vimtui.core.model import VmState, state_name
from vimtui.core.poll.domxml import DomainDetails
from vimtui.core.poll.stats import DomainSample, VmRates


def domain_details(name: str, **fields: Any) -> DomainDetails:
    """A domain's details as parsed from its XML: `name`, nothing attached, no tags or tenant; `fields`
    replace any of them (uuid defaults to the name)."""
    base: dict[str, Any] = {
        "uuid": name,
        "name": name,
        "title": "",
        "description": "",
        "memory_kib": 0,
        "vcpus": 1,
        "os_type": "hvm",
        "arch": None,
        "machine": None,
        "cpu_model": None,
        "firmware": None,
        "disks": (),
        "nics": (),
        "tags": (),
        "tenant": None,
        "has_agent": False,
    }
    return DomainDetails(**(base | fields))


def vm_from_sample(host: str, s: DomainSample, rates: VmRates | None, **fields: Any) -> VmState:
    """A VM as a host session makes it from a poll's sample (and the rates since the one before);
    `fields` replace any of its fields."""
    return VmState(
        uuid=s.uuid,
        name=s.name,
        host=host,
        state=state_name(s.state),
        reason=s.reason,
        vcpus=s.vcpus,
        mem_max_kib=s.mem_max_kib,
        mem_current_kib=s.mem_current_kib,
        sample=s,
        rates=rates,
        details=None,
        **fields,
    )


TEST_DOMAIN_XML = """<domain type='test'><name>{name}</name><memory unit='MiB'>{mib}</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os></domain>"""


@contextmanager
def domains_on_test_default(names: Sequence[str], mib: int = 128) -> Iterator[libvirt.virConnect]:
    """libvirt's test:///default (one host shared by every connection of this process) with shut-off
    domains `names` defined on it, through a connection of their own: destroyed and undefined after."""
    conn = libvirt.open("test:///default")
    try:
        for name in names:
            conn.defineXML(TEST_DOMAIN_XML.format(name=name, mib=mib))
        yield conn
    finally:
        for name in names:
            with suppress(libvirt.libvirtError):
                dom = conn.lookupByName(name)
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        conn.close()
