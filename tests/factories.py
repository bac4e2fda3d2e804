"""Model objects for tests and benchmarks that need them without a host: each caller gives what matters."""

from __future__ import annotations

from typing import Any

from vimtui.core.domxml import DomainDetails


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
