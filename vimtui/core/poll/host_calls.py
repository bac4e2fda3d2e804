"""The blocking libvirt calls of a host's session, each run on the host's lane: open the connection, one
poll (the node's counters every Nth time and ONE bulk stats call), details of domains, their addresses.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from uuid import UUID

import libvirt

from vimtui.core.model import HostInfo, LocalMetrics
from vimtui.core.poll.domain_refs import DOMAIN_REFS, bulk_stats
from vimtui.core.poll.domxml import DomainDetails, parse_domain_xml
from vimtui.core.poll.stats import RUNNING, DomainSample, NodeSample, parse_domain_stats, parse_node

STATS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
ACTIVE = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
INACTIVE_STATES = frozenset(
    (libvirt.VIR_DOMAIN_NOSTATE, libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED)
)
"""The states of a domain that libvirt's ACTIVE filter leaves out (no QEMU process: no counters move)."""


class PollResult(NamedTuple):
    """A poll as the lane returns it."""

    node: NodeSample | None
    """The node's figures, when due."""
    records: list[Any]
    """The bulk call's records as libvirt gave them."""
    t: float
    """The poll's monotonic time."""
    local: LocalMetrics | None
    """This machine's figures, when the host is this machine."""
    every_vm: bool
    """The records are of every VM; else of the active ones only (see poll_domains)."""
    filter_refused: bool = False
    """The driver refused the ACTIVE filter (every VM was read): ask for every VM from now on."""


def open_host(
    uri: str, read_only: bool, keepalive: tuple[int, int], local: bool, setup: Callable[[Any], None]
) -> tuple[Any, HostInfo]:
    """A libvirt connection (keepalive set where the driver has it, then `setup(conn)`: callbacks) and
    what the host is. Closed again if any of it fails."""
    conn = libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
    try:
        with contextlib.suppress(libvirt.libvirtError):
            conn.setKeepAlive(*keepalive)
        setup(conn)
        info = conn.getInfo()
        lib = conn.getLibVersion()
        hv = conn.getVersion()
        host_info = HostInfo(
            hostname=conn.getHostname(),
            hypervisor=conn.getType(),
            hypervisor_version=version_text(hv),
            libvirt_version=version_text(lib),
            cpus=int(info[2]),
            cpu_mhz=int(info[3]),
            cpu_model=str(info[0]),
            memory_kib=int(info[1]) * 1024,
            local=local,
        )
    except BaseException:
        close_quietly(conn)
        raise
    return conn, host_info


class UuidTexts:
    """dom.UUIDString(), from the 16 bytes of dom.UUID() through a cache: libvirt formats the text anew at
    each call, 1.8 µs against 0.6 µs, for every VM at every poll (one host's, on the event loop)."""

    def __init__(self) -> None:
        self._texts: dict[bytes, str] = {}

    def text(self, raw: bytes, vms: int) -> str:
        """The text of the UUID whose 16 bytes are `raw`."""
        text = self._texts.get(raw)
        if text is None:
            if len(self._texts) > 4 * vms + 1024:
                self._texts.clear()  # VMs come and go: forget the ones long gone
            text = self._texts[raw] = str(UUID(bytes=raw))
        return text


class Unchanged:
    """The records of the VMs that were not running at the last poll, with their samples (one host's).
    Such a record that comes back the same, as a shut-off VM's does poll after poll, keeps its sample
    object, unparsed; HostVms.apply then keeps the VM's VmState as it was (same sample, same state, same
    details). A running VM's record is parsed at every poll (its counters move)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[dict[str, Any], DomainSample]] = {}

    def samples(
        self,
        records: list[Any],
        uuids: UuidTexts,
        vms: int,
        t: float,
        every_vm: bool = True,
    ) -> list[DomainSample]:
        """The samples of a poll's records (`t`: the poll's time; `every_vm`: the records are of every
        VM, else of the active ones, and the records kept of the others stay). Runs on the event loop,
        not on the lane: the per-domain reads here (UUID, name, and freeing the domains) read memory the
        bulk call filled and never reach the host. Through libvirt-python each lets go of the interpreter
        lock and takes it back: made on 50 lane threads at once, those hand-overs cost several times the
        work itself (bench/fleet.py), and on the loop each waited for the lanes. They are made holding the
        lock (domain_refs.py), the domains freed here, not when the records go."""
        last = self._last
        kept: dict[str, tuple[dict[str, Any], DomainSample]] = {} if every_vm else dict(last)
        uuid_text = uuids.text
        out = []
        for (raw, name), (_dom, stats) in zip(DOMAIN_REFS.take(records), records, strict=True):
            uuid = uuid_text(raw, vms)
            was = last.get(uuid)
            if was is not None and was[1].name == name and was[0] == stats:
                sample = was[1]
            else:
                sample = parse_domain_stats(uuid, name, stats, t)
            if sample.state != RUNNING:
                kept[uuid] = (stats, sample)
            out.append(sample)
        self._last = kept
        return out


def poll_domains(
    conn: Any, node_info: list[Any], node_due: bool, local: bool, active: int | None = None
) -> PollResult:
    """One tick: the node's CPU and memory when due, ONE bulk stats call, and this machine's own figures
    when the host is this machine (`local`). The records are parsed on the loop (Unchanged.samples).

    `active`: None to read every VM; else the number of VMs that were active at the last poll, and only
    the active ones are read (a shut-off VM's record changes only with an event or a definition, and the
    session reads every VM then, and every few polls). Fewer records than `active` means one stopped or
    went since: every VM is read at once, in the same call to the lane."""
    t = time.monotonic()
    if node_due:
        cpu = _or_empty(conn.getCPUStats, -1)
        mem = _or_empty(conn.getMemoryStats, -1)
    records = None
    refused = False
    if active is not None:
        try:
            records = _bulk(conn, ACTIVE)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                raise
            refused = True
        if records is not None and len(records) < active:
            records = None
    every_vm = records is None
    if records is None:
        records = _bulk(conn, 0)
    node = parse_node(node_info, cpu, mem, t) if node_due else None
    return PollResult(node, records, t, local_metrics() if local else None, every_vm, refused)


def _bulk(conn: Any, flags: int) -> list[Any]:
    try:
        return bulk_stats(conn, STATS, flags | NOWAIT)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        return bulk_stats(conn, STATS, flags)  # no NOWAIT here


PARSING = threading.Lock()
"""Held by a lane while it parses a domain's XML (read_details), never while it waits on its host. The
parsing is Python, run under the interpreter lock: when every host's lane parsed at once (each reads all
its VMs' details after connecting), 50 threads took that lock from the event loop so often that the
screen's first table came a second late in about one start in four (bench/fleet.py part 2: the main
screen mounted after the last of 49 hosts' details reads). One lane at a time parses no slower, and a lane
waiting for this lock lets go of the interpreter's."""


def read_details(conn: Any, uuids: list[str]) -> dict[str, DomainDetails]:
    """Each domain's XML, parsed (domains gone meanwhile are left out)."""
    out = {}
    for uuid in uuids:
        try:
            dom = conn.lookupByUUIDString(uuid)
            persistent = bool(dom.isPersistent())
            autostart = bool(dom.autostart()) if persistent else False
            xml = dom.XMLDesc(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            continue
        with PARSING:
            out[uuid] = parse_domain_xml(xml, persistent=persistent, autostart=autostart)
    return out


_SOURCES = (
    ("agent", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT),
    ("lease", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE),
    ("arp", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP),
)


def read_addresses(conn: Any, due: list[tuple[str, bool]]) -> dict[str, tuple[tuple[str, ...], str]]:
    """uuid -> (addresses, where from): the guest agent when the VM has one, else the network's DHCP
    leases, else ARP. VMs without any are left out."""
    out: dict[str, tuple[tuple[str, ...], str]] = {}
    for uuid, has_agent in due:
        try:
            dom = conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError:
            continue
        for name, source in _SOURCES:
            if name == "agent" and not has_agent:
                continue
            try:
                ifaces = dom.interfaceAddresses(source, 0)
            except libvirt.libvirtError:
                continue
            ips = tuple(
                a["addr"]
                for iface in ifaces.values()
                for a in (iface.get("addrs") or [])
                if a.get("addr") and not a["addr"].startswith(("127.", "::1", "fe80"))
            )
            if ips:
                out[uuid] = (ips, name)
                break
    return out


def _or_empty(fn: Callable[[int], dict[str, int]], arg: int) -> dict[str, int]:
    try:
        return fn(arg)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
            return {}
        raise


def connection_alive(exc: libvirt.libvirtError) -> bool:
    """False for errors that mean the connection itself is gone."""
    return exc.get_error_domain() not in (libvirt.VIR_FROM_RPC,) and exc.get_error_code() not in (
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_INTERNAL_ERROR,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_NO_CONNECT,
    )


def error_text(exc: BaseException) -> str:
    if isinstance(exc, libvirt.libvirtError):
        return exc.get_error_message() or str(exc)
    return str(exc) or type(exc).__name__


def version_text(v: int) -> str:
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"


def close_quietly(conn: Any) -> None:
    # Closing drops the close callback with the connection (it then reports a "client" close, which the
    # session ignores: the connection is no longer its own). No unregisterCloseCallback first: from this
    # thread it raced the callback's dispatch in libvirt-python and crashed the process once (SIGSEGV in
    # unregisterCloseCallback, in a test run on a clean clone).
    with contextlib.suppress(libvirt.libvirtError):
        conn.close()


def local_metrics() -> LocalMetrics:
    import psutil

    load = psutil.getloadavg()
    return LocalMetrics(
        cpu_pct=psutil.cpu_percent(None),
        mem_pct=psutil.virtual_memory().percent,
        load1=load[0],
        load5=load[1],
        load15=load[2],
        swap_pct=psutil.swap_memory().percent,
    )
