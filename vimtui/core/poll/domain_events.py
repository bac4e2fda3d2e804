"""libvirt's domain events of one connection, turned into calls of the host's session.

The callbacks run on the event loop (libvirtaio, see eventloop.py): they only record what happened and
never call libvirt beyond the domain's own UUID and name (held by the object, no round trip).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import libvirt

EVENT_NAMES = (
    "defined",
    "undefined",
    "started",
    "suspended",
    "resumed",
    "stopped",
    "shutdown",
    "pmsuspended",
    "crashed",
)
"""Lifecycle event names, by libvirt's event number."""


@dataclass(frozen=True, slots=True)
class HostEvent:
    """Something libvirt told us about a domain, as it happened."""

    time: float
    host: str
    vm: str
    uuid: str
    kind: str
    """lifecycle event name (started, stopped ...), reboot, job-completed, device-added, device-removed."""
    detail: str = ""


def event_name(event: int) -> str:
    return EVENT_NAMES[event] if 0 <= event < len(EVENT_NAMES) else f"event-{event}"


class EventSink(Protocol):
    """What a session does with its connection's events."""

    def lifecycle(self, uuid: str, name: str, event: int, detail: int) -> None: ...

    def note(self, uuid: str, name: str, kind: str, detail: str = "") -> None: ...

    def device_changed(self, uuid: str) -> None: ...


def register_events(conn: Any, sink: EventSink) -> None:
    """Have `conn`'s domain events reach `sink` (events a driver does not have are left out)."""

    def lifecycle(_c: Any, dom: Any, event: int, detail: int, _o: Any) -> None:
        sink.lifecycle(dom.UUIDString(), dom.name(), event, detail)

    def reboot(_c: Any, dom: Any, _o: Any) -> None:
        sink.note(dom.UUIDString(), dom.name(), "reboot")

    def job_completed(_c: Any, dom: Any, params: Any, _o: Any) -> None:
        sink.note(dom.UUIDString(), dom.name(), "job-completed")

    def device(kind: str) -> Callable[..., None]:
        def cb(_c: Any, dom: Any, dev: str, _o: Any) -> None:
            sink.device_changed(dom.UUIDString())
            sink.note(dom.UUIDString(), dom.name(), kind, dev)

        return cb

    def metadata(_c: Any, dom: Any, _kind: int, _uri: Any, _o: Any) -> None:
        sink.device_changed(dom.UUIDString())  # tenant, tags, title, description: read the XML again

    def agent(_c: Any, dom: Any, state: int, _reason: int, _o: Any) -> None:
        up = state == libvirt.VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED
        sink.note(dom.UUIDString(), dom.name(), "agent-connected" if up else "agent-disconnected")

    for event_id, cb in (
        (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle),
        (libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE, agent),
        (libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, reboot),
        (libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, job_completed),
        (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, device("device-added")),
        (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, device("device-removed")),
        (libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, metadata),
    ):
        with contextlib.suppress(libvirt.libvirtError):  # a driver without this event
            conn.domainEventRegisterAny(None, event_id, cb, None)
