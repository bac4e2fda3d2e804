"""The Prometheus exporter: its text read back by prometheus-client's own parsers (OpenMetrics and the classic
format) and compared, series by series, with the FleetState it was rendered from; the HTTP server end to
end on 127.0.0.1; `vimtui export` as a process.

The states come from stats recorded on a real lab host (tests/data/domstats-lab.json, as in test_stats.py)
and from libvirt's test driver through the real Fleet. The expected series are worked out here from the
VmState/HostState fields with their own arithmetic, not with the exporter's helpers.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.conftest import wait_until
from tests.factories import domain_details, vm_from_sample
from vimtui.cli.export import parse_listen
from vimtui.core.export.openmetrics import OPENMETRICS_TYPE, TEXT_TYPE, escape, families, render
from vimtui.core.export.server import Exporter, serve, wants_openmetrics
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.model import DOMAIN_STATES, FleetState, HostInfo, HostState, HostStatus, VmState
from vimtui.core.poll.domxml import DomainDetails
from vimtui.core.poll.session import SessionSettings
from vimtui.core.poll.stats import DomainSample, host_rates, parse_domain_stats, parse_node, vm_rates

DATA = Path(__file__).parent / "data" / "domstats-lab.json"
VIMTUI = str(Path(sys.executable).parent / "vimtui")

NASTY_NAME = 'we"ird \\ vm\nline two ☃ é'
NASTY_GROUP = 'dc\\1 "east"\nrack ü'
NASTY_TENANT = 'acme "co" \\ ünï'

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


# ---------------------------------------------------------------------------------------------- states


@cache
def recording() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text())
    return data


def poll(label: str) -> dict[str, Any]:
    return next(p for p in recording()["polls"] if p["label"] == label)


def sample(label: str, vm: str) -> DomainSample:
    p = poll(label)
    d = next(d for d in p["domains"] if d["name"] == vm)
    return parse_domain_stats(d["uuid"], d["name"], d["stats"], p["t"])


def details(name: str, uuid: str, tenant: str | None) -> DomainDetails:
    return domain_details(name, uuid=uuid, tenant=tenant, memory_kib=131072, arch="x86_64")


def vm_at(
    host: str, prev: str | None, cur: str, recorded: str, *, stale: bool = False, **over: Any
) -> VmState:
    """A VM as a host session makes it from two recorded polls of guest `recorded` (rates from prev to
    cur); `over` replaces fields."""
    s = sample(cur, recorded)
    cpus = int(poll(cur)["info"][2])
    vm = vm_from_sample(host, s, vm_rates(sample(prev, recorded) if prev else None, s, cpus), stale=stale)
    return replace(vm, **over)


def host_at(name: str, group: str, prev: str, cur: str, status: HostStatus, **over: Any) -> HostState:
    p, c = poll(prev), poll(cur)
    n0 = parse_node(p["info"], p["cpu_stats"], p["mem_stats"], p["t"])
    n1 = parse_node(c["info"], c["cpu_stats"], c["mem_stats"], c["t"])
    info = HostInfo(
        name, "QEMU", "8.2.2", "9.0.0", n1.cpus, n1.cpu_mhz, n1.cpu_model, c["info"][1] * 1024, False
    )
    h = HostState(
        name=name,
        group=group,
        address="10.0.0.1",
        uri="qemu:///system",
        transport="ssh",
        status=status,
        message="",
        status_since=1.79e9,
        info=info,
        node=n1,
        rates=host_rates(n0, n1),
        last_poll=c["wall"],
        poll_seconds=0.0123,
        late_ticks=0,
    )
    return replace(h, **over)


def recorded_state() -> FleetState:
    """Four hosts from the recording: kvm01 up with its two guests two polls in (all rates known) and a
    VM with a nasty name and tenant; kvm02 (nasty group) with db01 just restarted (no balloon driver, no
    rates) and an event's placeholder (no sample); kvm03 unreachable with a stale guest; kvm04 connecting."""
    web = vm_at("kvm01", "steady-0", "steady-1", "web01")
    db = vm_at("kvm01", "steady-0", "steady-1", "db01")
    nasty = vm_at(
        "kvm01",
        "steady-1",
        "steady-2",
        "web01",
        uuid="0b1d7c4e-0000-4000-8000-00000000abcd",
        name=NASTY_NAME,
        details=details(NASTY_NAME, "0b1d7c4e-0000-4000-8000-00000000abcd", NASTY_TENANT),
    )
    booting = vm_at("kvm02", "db01-shutoff", "db01-booting", "db01")
    placeholder = VmState(
        uuid="5e1f0000-0000-4000-8000-000000000001",
        name="new01",
        host="kvm02",
        state="paused",
        reason=0,
        vcpus=None,
        mem_max_kib=None,
        mem_current_kib=None,
        sample=None,
        rates=None,
        details=details("new01", "5e1f0000-0000-4000-8000-000000000001", ""),
    )
    gone = vm_at("kvm03", "steady-1", "steady-2", "web01", stale=True)
    hosts = (
        host_at("kvm01", "lab", "steady-0", "steady-1", HostStatus.UP, late_ticks=2),
        host_at("kvm02", NASTY_GROUP, "db01-shutoff", "db01-booting", HostStatus.DEGRADED),
        host_at("kvm03", "lab/far", "steady-1", "steady-2", HostStatus.UNREACHABLE, late_ticks=7),
        HostState(
            name="kvm04",
            group="",
            address="10.0.0.4",
            uri="qemu:///system",
            transport="ssh",
            status=HostStatus.CONNECTING,
            message="",
            status_since=1.79e9,
        ),
    )
    vms = {v.key: v for v in (db, web, nasty, booting, placeholder, gone)}
    return FleetState(version=7, time=1.79e9, hosts=hosts, vms=MappingProxyType(vms))


# ---------------------------------------------------------------------------------------------- expected


def expected(state: FleetState, tenant_of: Any = None) -> Series:
    """Every series the exporter must write for `state`, with its value, worked out from the fields."""
    out: Series = {}

    def put(name: str, labels: dict[str, str], value: float | None) -> None:
        if value is not None:
            out[(name, frozenset(labels.items()))] = value

    group = {h.name: h.group for h in state.hosts}
    for h in state.hosts:
        lab = {"host": h.name, "group": h.group}
        ok = h.status in (HostStatus.UP, HostStatus.DEGRADED)
        put("vimtui_host_up", lab, 1 if ok else 0)
        put("vimtui_host_status", {**lab, "status": h.status.value}, 1)
        cpus = h.node.cpus if h.node else (h.info.cpus if h.info else None)
        put("vimtui_host_cpus", lab, cpus)
        total = (h.node.mem_total_kib if h.node else None) or (h.info.memory_kib if h.info else None)
        put("vimtui_host_memory_total_bytes", lab, None if total is None else total * 1024)
        put("vimtui_host_late_ticks_total", lab, h.late_ticks)
        put("vimtui_host_last_poll_timestamp_seconds", lab, h.last_poll or None)
        on_host = [v for v in state.vms.values() if v.host == h.name]
        for st in DOMAIN_STATES:
            put("vimtui_host_vms", {**lab, "state": st}, sum(1 for v in on_host if v.state == st))
        if ok:
            if h.node and h.node.mem_free_kib is not None:
                put("vimtui_host_memory_free_bytes", lab, h.node.mem_free_kib * 1024)
            if h.rates:
                used = h.rates.mem_used_kib
                put("vimtui_host_memory_used_bytes", lab, None if used is None else used * 1024)
                put(
                    "vimtui_host_memory_used_ratio",
                    lab,
                    None if h.rates.mem_pct is None else h.rates.mem_pct / 100,
                )
                put(
                    "vimtui_host_cpu_usage_ratio",
                    lab,
                    None if h.rates.cpu_pct is None else h.rates.cpu_pct / 100,
                )
            if h.last_poll:
                put("vimtui_host_poll_seconds", lab, h.poll_seconds)
            if h.load is not None and cpus:
                put("vimtui_host_vcpu_overcommit_ratio", lab, h.load.vcpus_running / cpus)
            if h.load is not None and total:
                put("vimtui_host_memory_overcommit_ratio", lab, h.load.mem_running_kib / total)
        fills = [p.allocation * 100.0 / p.capacity for p in h.pools or () if p.active and p.capacity]
        put("vimtui_host_pool_fill_ratio", lab, max(fills) / 100 if fills else None)
        days = [p.full_in / 86400.0 for p in h.pools or () if p.active and p.full_in is not None]
        put("vimtui_host_pool_full_days", lab, min(days) if days else None)

    for v in state.vms.values():
        tenant = tenant_of(v) if tenant_of else (v.details.tenant or "" if v.details else "")
        lab = {"host": v.host, "vm": v.name, "uuid": v.uuid, "group": group[v.host], "tenant": tenant}
        put("vimtui_vm_state", {**lab, "state": v.state}, 1)
        put("vimtui_vm_stale", lab, 1 if v.stale else 0)
        # a VM that is not running: its configured count
        put(
            "vimtui_vm_vcpus", lab, v.vcpus if v.vcpus is not None else v.details.vcpus if v.details else None
        )
        put("vimtui_vm_memory_max_bytes", lab, None if v.mem_max_kib is None else v.mem_max_kib * 1024)
        if v.stale:
            continue
        put(
            "vimtui_vm_memory_current_bytes",
            lab,
            None if v.mem_current_kib is None else v.mem_current_kib * 1024,
        )
        s = v.sample
        if s is not None:
            put("vimtui_vm_cpu_seconds_total", lab, None if s.cpu_time_ns is None else s.cpu_time_ns / 1e9)
            for name, devices, field in (
                ("vimtui_vm_disk_read_bytes_total", s.disks, "rd_bytes"),
                ("vimtui_vm_disk_write_bytes_total", s.disks, "wr_bytes"),
                ("vimtui_vm_disk_read_ops_total", s.disks, "rd_reqs"),
                ("vimtui_vm_disk_write_ops_total", s.disks, "wr_reqs"),
                ("vimtui_vm_network_receive_bytes_total", s.nics, "rx_bytes"),
                ("vimtui_vm_network_transmit_bytes_total", s.nics, "tx_bytes"),
            ):
                values = [getattr(d, field) for d in devices]
                if values and None not in values:
                    put(name, lab, sum(values))
        r = v.rates
        if r is not None:
            put("vimtui_vm_memory_used_bytes", lab, None if r.mem_used_kib is None else r.mem_used_kib * 1024)
            put("vimtui_vm_memory_used_ratio", lab, None if r.mem_pct is None else r.mem_pct / 100)
            put("vimtui_vm_cpu_usage_ratio", lab, None if r.cpu_pct is None else r.cpu_pct / 100)
            put("vimtui_vm_cpu_host_ratio", lab, None if r.cpu_host_pct is None else r.cpu_host_pct / 100)
            put("vimtui_vm_disk_read_bytes_per_second", lab, r.disk_rd_bps)
            put("vimtui_vm_disk_write_bytes_per_second", lab, r.disk_wr_bps)
            put("vimtui_vm_disk_read_ops_per_second", lab, r.disk_rd_iops)
            put("vimtui_vm_disk_write_ops_per_second", lab, r.disk_wr_iops)
            put("vimtui_vm_network_receive_bytes_per_second", lab, r.net_rx_bps)
            put("vimtui_vm_network_transmit_bytes_per_second", lab, r.net_tx_bps)
    return out


def parsed(text: str, *, openmetrics: bool) -> tuple[Series, dict[str, Any]]:
    """The series and the families as the official parser reads them (it raises on invalid input)."""
    families = list(parse_openmetrics(text) if openmetrics else parse_text(text))  # type: ignore[no-untyped-call]
    series: Series = {}
    for f in families:
        for s in f.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in series, f"duplicate series {key}"
            series[key] = s.value
    return series, {f.name: f for f in families}


def check(state: FleetState, **kw: Any) -> Series:
    """Both formats parse, hold exactly the expected series with the expected values, and have every
    family, typed and documented; returns the series."""
    want = expected(state, kw.get("tenant_of"))
    for om in (True, False):
        text = render(state, openmetrics=om, **kw).decode()
        assert text.endswith("# EOF\n") == om
        series, got_families = parsed(text, openmetrics=om)
        assert series.keys() == want.keys()
        assert series == want  # values equal, not close: floats are written exactly
        assert [f.name for f in families()] == list(got_families)
        for f in families():
            got = got_families[f.name]
            assert (got.type, bool(got.documentation)) == (f.kind, True)
            if om:
                assert got.unit == f.unit
            suffix = "_total" if f.kind == "counter" else ""
            assert {s.name for s in got.samples} <= {f.name + suffix}
    return want


# ---------------------------------------------------------------------------------------------- render


def test_recorded_fleet_parses_in_both_formats_and_matches_the_state() -> None:
    state = recorded_state()
    series = check(state)
    # spot checks on what the comparison above takes for granted
    web = next(v for v in state.vms.values() if v.name == "web01" and v.host == "kvm01")
    lab = frozenset({"host": "kvm01", "vm": "web01", "uuid": web.uuid, "group": "lab", "tenant": ""}.items())
    assert web.sample is not None and web.sample.cpu_time_ns and web.rates and web.rates.cpu_pct
    assert series[("vimtui_vm_cpu_seconds_total", lab)] == web.sample.cpu_time_ns / 1e9
    assert series[("vimtui_vm_cpu_usage_ratio", lab)] == web.rates.cpu_pct / 100
    assert series[("vimtui_vm_disk_read_bytes_total", lab)] == web.sample.disks[0].rd_bytes
    assert 0 < series[("vimtui_vm_cpu_usage_ratio", lab)] <= 1
    assert (
        series[("vimtui_host_vms", frozenset({"host": "kvm01", "group": "lab", "state": "running"}.items()))]
        == 3
    )
    assert (
        series[("vimtui_host_late_ticks_total", frozenset({"host": "kvm03", "group": "lab/far"}.items()))]
        == 7
    )


def test_unknown_values_are_left_out_never_zero() -> None:
    state = recorded_state()
    text = render(state, openmetrics=True).decode()
    series, _ = parsed(text, openmetrics=True)
    names_of: dict[tuple[str, str | None], set[str]] = {}
    for name, labels in series:
        d = dict(labels)
        key = (d["host"], d.get("vm"))
        names_of.setdefault(key, set()).add(name)
    # db01 just started: no balloon driver yet (no memory use) and no previous running sample (no rates)
    booting = names_of[("kvm02", "db01")]
    assert "vimtui_vm_cpu_seconds_total" in booting and "vimtui_vm_network_receive_bytes_total" in booting
    assert not booting & {
        "vimtui_vm_memory_used_bytes",
        "vimtui_vm_cpu_usage_ratio",
        "vimtui_vm_disk_read_bytes_total",
    }
    # a placeholder from an event: its state and nothing measured
    # (its vCPUs are the configured count, from its domain XML)
    assert names_of[("kvm02", "new01")] == {"vimtui_vm_state", "vimtui_vm_stale", "vimtui_vm_vcpus"}
    # the stale guest keeps its last state and what it is configured with, nothing measured
    assert names_of[("kvm03", "web01")] == {
        "vimtui_vm_state",
        "vimtui_vm_stale",
        "vimtui_vm_vcpus",
        "vimtui_vm_memory_max_bytes",
    }
    # a host that never answered: its status and late ticks only
    assert names_of[("kvm04", None)] == {
        "vimtui_host_up",
        "vimtui_host_status",
        "vimtui_host_late_ticks_total",
        "vimtui_host_vms",
    }
    # the unreachable host: nothing that goes out of date
    assert "vimtui_host_cpu_usage_ratio" not in names_of[("kvm03", None)]
    assert "vimtui_host_cpus" in names_of[("kvm03", None)]
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if not line.startswith("#")]
    assert all(math.isfinite(float(v)) for v in values)  # no None, NaN or infinity anywhere


def test_label_values_are_escaped_and_read_back_exactly() -> None:
    state = recorded_state()
    text = render(state, openmetrics=True).decode()
    assert 'vm="we\\"ird \\\\ vm\\nline two ☃ é"' in text
    assert 'group="dc\\\\1 \\"east\\"\\nrack ü"' in text
    assert f'tenant="{escape(NASTY_TENANT)}"' in text
    assert escape('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    for om in (True, False):
        series, _ = parsed(render(state, openmetrics=om).decode(), openmetrics=om)
        names = {dict(labels).get("vm") for _, labels in series}
        groups = {dict(labels)["group"] for _, labels in series}
        tenants = {dict(labels).get("tenant") for _, labels in series}
        assert NASTY_NAME in names and NASTY_GROUP in groups and NASTY_TENANT in tenants
    # a lone surrogate (a name decoded with errors="surrogateescape") cannot break the scrape
    odd = replace(
        state,
        vms=MappingProxyType(
            {**state.vms, "kvm01/x": replace(next(iter(state.vms.values())), name="bad\udcff", uuid="x")}
        ),
    )
    parsed(render(odd, openmetrics=True).decode(), openmetrics=True)


def test_tenant_lookup_is_a_parameter() -> None:
    state = recorded_state()
    series = check(state, tenant_of=lambda vm: f"t-{vm.name[:3]}")
    assert {dict(labels).get("tenant") for _, labels in series} >= {"t-web", "t-db0", "t-new"}


def test_empty_fleet_still_has_every_family() -> None:
    check(FleetState(version=1, time=0.0, hosts=()))


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        ("", False),
        ("*/*", False),
        ("text/plain", False),
        ("application/openmetrics-text", True),
        # what Prometheus 2.x sends
        (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
            "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            True,
        ),
        ("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5", False),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;q=bogus, text/plain", False),
    ],
)
def test_content_negotiation(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


# ------------------------------------------------------------------------------------------ the test driver


def driver_xml(path: Path) -> str:
    """A test-driver node: the nasty VM running with a tenant, a paused and a shut-off one."""

    def dom(name: str, uuid: str, runstate: int, tenant: str = "") -> str:
        meta = (
            f'<metadata><vimtui:vm xmlns:vimtui="https://vimtui.dev/xmlns/vm/1"><vimtui:tenant>'
            f"{xml_escape(tenant)}</vimtui:tenant></vimtui:vm></metadata>"
            if tenant
            else ""
        )
        return (
            "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
            f"<name>{xml_escape(name)}</name><uuid>{uuid}</uuid>{meta}"
            "<memory unit='MiB'>512</memory><currentMemory unit='MiB'>512</currentMemory><vcpu>2</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os>"
            f"<test:runstate>{runstate}</test:runstate></domain>"
        )

    path.write_text(
        "<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads><active>4</active>"
        "<mhz>2400</mhz><model>x86_64</model></cpu><memory>8388608</memory>"
        + dom(TEST_NAME, "00000000-0000-4000-8000-0000000b0001", 1, NASTY_TENANT)
        + dom("paused01", "00000000-0000-4000-8000-0000000b0002", 3)
        + dom("off01", "00000000-0000-4000-8000-0000000b0003", 5)
        + "</node>"
    )
    return f"test://{path}"


TEST_NAME = "we\"ird \\ vm ☃ é's"
"""libvirt refuses a newline in a domain name; the rest of the nasty name it takes."""


@pytest.fixture
async def driver_fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    uri = driver_xml(tmp_path / "node.xml")
    spec = HostSpec(name="t1", transport="direct", uri=uri, group=NASTY_GROUP)
    fleet = Fleet([spec], SessionSettings(interval=0.5), tmp_path / "run")
    await fleet.start(tick=False)
    await fleet.connected(within=10)
    await fleet.wait_for(lambda s: len(s.vms) == 3 and all(v.details for v in s.vms.values()), 10)
    yield fleet
    await fleet.stop()


async def test_test_driver_fleet_through_the_real_fleet_matches(driver_fleet: Fleet) -> None:
    await driver_fleet.tick(deadline=5)
    state = await driver_fleet.tick(deadline=5)
    series = check(state)
    states = {
        dict(labels)["vm"]: dict(labels)["state"] for name, labels in series if name == "vimtui_vm_state"
    }
    assert states == {TEST_NAME: "running", "paused01": "paused", "off01": "shutoff"}
    tenants = {dict(labels)["tenant"] for name, labels in series if name == "vimtui_vm_state"}
    assert tenants == {NASTY_TENANT, ""}
    assert series[("vimtui_host_up", frozenset({"host": "t1", "group": NASTY_GROUP}.items()))] == 1


# ---------------------------------------------------------------------------------------------- HTTP


async def http(port: int, raw: bytes, *, eof: bool = True) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` as it is (and end the stream, unless `eof` is False), read the whole answer (the server
    closes): status, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        if eof:
            writer.write_eof()
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    assert status_line.startswith("HTTP/1.1 ")
    if not raw.startswith(b"HEAD"):
        assert int(headers["content-length"]) == len(body)
    return int(status_line.split()[1]), headers, body


def get(path: str, *headers: str) -> bytes:
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: x", *headers]) + "\r\n\r\n").encode()


class Source:
    """The state the server reads: the test swaps it like a Fleet publishing."""

    def __init__(self, state: FleetState) -> None:
        self.state = state


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, Source]]:
    source = Source(recorded_state())
    srv = await serve(source, "127.0.0.1", 0, request_timeout=0.5)
    port = srv.sockets[0].getsockname()[1]
    yield port, source
    srv.close()
    await srv.wait_closed()


async def test_http_metrics_in_both_formats_by_accept(server: tuple[int, Source]) -> None:
    port, source = server
    want = expected(source.state)
    status, headers, body = await http(
        port, get("/metrics", "Accept: application/openmetrics-text; version=1.0.0")
    )
    assert (status, headers["content-type"], headers["connection"]) == (200, OPENMETRICS_TYPE, "close")
    assert parsed(body.decode(), openmetrics=True)[0] == want
    status, headers, body = await http(port, get("/metrics"))
    assert (status, headers["content-type"]) == (200, TEXT_TYPE)
    assert parsed(body.decode(), openmetrics=False)[0] == want
    status, headers, body = await http(
        port, get("/metrics?x=1", "Accept: text/plain", "Accept-Encoding: gzip")
    )
    assert (status, headers["content-encoding"]) == (200, "gzip")
    assert parsed(gzip.decompress(body).decode(), openmetrics=False)[0] == want
    # a new state is what the next scrape gets
    source.state = FleetState(version=8, time=0.0, hosts=source.state.hosts[-1:])
    _, _, body = await http(port, get("/metrics"))
    assert parsed(body.decode(), openmetrics=False)[0] == expected(source.state)


async def test_http_index_404_405_and_head(server: tuple[int, Source]) -> None:
    port, _ = server
    status, headers, body = await http(port, get("/"))
    assert status == 200 and headers["content-type"].startswith("text/html") and b'href="/metrics"' in body
    assert (await http(port, get("/nope")))[0] == 404
    status, headers, _ = await http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    status, headers, body = await http(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 1000


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"garbage\r\n\r\n", 400),
        (b"GET /metrics\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
        (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", 408),  # never ends its headers: the slow client
        (b"\xff\xfe\x00 \x01 HTTP/1.1\r\n\r\n", 400),
    ],
    ids=["garbage", "no-version", "http2", "bad-header", "long-header", "many-headers", "slow", "binary"],
)
async def test_malformed_and_slow_requests_are_answered_and_the_server_carries_on(
    server: tuple[int, Source], raw: bytes, status: int
) -> None:
    port, _ = server
    # the slow client sends part of its headers and waits: it must not end its stream either
    assert (await http(port, raw, eof=status != 408))[0] == status
    # a client that connects and leaves at once, and one that sends half a line and leaves
    for junk in (b"", b"GET /met"):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(junk)
        writer.close()
    assert (await http(port, get("/metrics")))[0] == 200


async def test_bare_lf_requests_are_understood(server: tuple[int, Source]) -> None:
    port, _ = server
    assert (await http(port, b"GET / HTTP/1.0\n\n"))[0] == 200


async def test_a_state_is_rendered_once_per_format_and_large_ones_off_the_loop() -> None:
    state = recorded_state()
    threads: list[bool] = []

    def tenant_of(vm: VmState) -> str:
        threads.append(threading.current_thread() is threading.main_thread())
        return ""

    source = Source(state)
    exporter = Exporter(source, tenant_of=tenant_of, inline_vms=len(state.vms))
    bodies = await asyncio.gather(*(exporter.metrics(openmetrics=True) for _ in range(3)))
    assert exporter.renders == 1 and len(set(bodies)) == 1 and all(threads)  # on the loop: small
    await exporter.metrics(openmetrics=False)
    await exporter.metrics(openmetrics=True)
    assert exporter.renders == 2
    gz = await exporter.metrics(openmetrics=True, compress=True)
    assert gzip.decompress(gz) == bodies[0] and exporter.renders == 2

    threads.clear()
    big = Exporter(source, tenant_of=tenant_of, inline_vms=len(state.vms) - 1)
    bodies = await asyncio.gather(*(big.metrics(openmetrics=True) for _ in range(3)))
    assert big.renders == 1 and len(set(bodies)) == 1 and threads and not any(threads)  # on a worker
    source.state = replace(state, version=state.version + 1)
    await big.metrics(openmetrics=True)
    assert big.renders == 2


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:9177", ("127.0.0.1", 9177)),
        ("[::1]:9177", ("::1", 9177)),
        ("localhost:0", ("localhost", 0)),
        (":9177", (None, 9177)),
    ],
)
def test_listen_addresses(text: str, want: tuple[str | None, int]) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize(
    "text", ["9177", "127.0.0.1:", "127.0.0.1:99999", "::1:9177", "[nope]:1", "a b:1", "h:x"]
)
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


def cli_env(tmp: Path) -> dict[str, str]:
    run = tmp / "xdg-run"
    run.mkdir(mode=0o700, exist_ok=True)
    return {**os.environ, "XDG_RUNTIME_DIR": str(run), "XDG_DATA_HOME": str(tmp / "xdg-data")}


def write_config(tmp: Path) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        '[defaults]\ninterval = 0.5\n\n[[hosts]]\nname = "t"\nuri = "test:///default"\ngroup = "lab"\n'
    )
    return path


@pytest.fixture
def exporter_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [VIMTUI, "--config", str(write_config(tmp_path)), "export", "--listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(tmp_path),
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stderr = proc.stderr

    def pump() -> None:
        for line in stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        line = lines.get(timeout=30)
        assert line.startswith("vimtui: serving http://127.0.0.1:"), line
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def scrape(url: str, accept: str = "") -> str:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body: bytes = resp.read()
    return body.decode()


def test_cli_export_serves_the_fleet_and_stops_on_sigterm(
    exporter_process: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = exporter_process
    om = "application/openmetrics-text; version=1.0.0"

    def running_vm() -> Series:
        series, _ = parsed(scrape(url, om), openmetrics=True)
        states = [dict(labels) for name, labels in series if name == "vimtui_vm_state"]
        return (
            series
            if [(s["host"], s["vm"], s["group"], s["state"]) for s in states]
            == [("t", "test", "lab", "running")]
            else {}
        )

    series = wait_until("the test VM in a scrape", running_vm, timeout=30, interval=0.1)
    assert series[("vimtui_host_up", frozenset({"host": "t", "group": "lab"}.items()))] == 1
    parsed(scrape(url), openmetrics=False)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


def test_cli_export_stops_on_sigint(exporter_process: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = exporter_process
    parsed(scrape(url), openmetrics=False)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0


def run_export(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VIMTUI, "--config", str(write_config(tmp)), "export", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=cli_env(tmp),
    )


def test_cli_export_bad_listen_exits_2_with_a_message(tmp_path: Path) -> None:
    out = run_export(tmp_path, "--listen", "::1:9177")
    assert out.returncode == 2 and "--listen" in out.stderr and "brackets" in out.stderr


def test_cli_export_port_in_use_exits_2_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_export(tmp_path, "--listen", f"127.0.0.1:{port}")
    assert out.returncode == 2
    assert out.stderr.strip() == f"vimtui: error: cannot listen on 127.0.0.1:{port}: address already in use"


def test_cli_export_unknown_host_exits_2(tmp_path: Path) -> None:
    out = run_export(tmp_path, "--host", "nope", "--listen", "127.0.0.1:0")
    assert out.returncode == 2 and "no such host: nope" in out.stderr
