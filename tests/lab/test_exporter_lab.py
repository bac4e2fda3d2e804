"""The Prometheus exporter over the lab: a fleet polling real hosts over SSH, scraped over HTTP, read back
with prometheus-client's parsers, and checked against libvirt itself (a direct connection to each host,
not through vimtui) and against the very FleetState the scrape was rendered from."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.lab.lab import Lab
from tests.lab.support import started, until
from vimtui.core.export.openmetrics import OPENMETRICS_TYPE, TEXT_TYPE
from vimtui.core.export.server import serve
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.model import FleetState, HostStatus

pytestmark = pytest.mark.lab

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await started(lab, tmp_path / "run")
    yield f
    await f.stop()


def running_guests(lab: Lab) -> dict[tuple[str, str], int]:
    """(host, guest) -> CPU time in ns, of every guest libvirt says is running, read now."""
    out = {}
    for h in lab.hosts:
        with lab.connect(h.name) as conn:
            records = conn.getAllDomainStats(
                libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL,
                libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_RUNNING,
            )
            for dom, stats in records:
                if stats["state.state"] == libvirt.VIR_DOMAIN_RUNNING:
                    out[(h.name, dom.name())] = stats["cpu.time"]
    return out


async def scrape(port: int, accept: str) -> tuple[str, str]:
    """GET /metrics over a plain socket: (content type, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /metrics HTTP/1.1\r\nHost: lab\r\nAccept: {accept}\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK", lines[0]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert int(headers["content-length"]) == len(body)
    return headers["content-type"], body.decode()


def series_of(text: str, *, openmetrics: bool) -> Series:
    families = parse_openmetrics(text) if openmetrics else parse_text(text)  # type: ignore[no-untyped-call]
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


async def test_scraped_guests_match_libvirt_and_the_fleets_samples(lab: Lab, fleet: Fleet) -> None:
    guests = sum(len(h.guests) for h in lab.hosts)
    await until(
        fleet,
        "every host up, every guest polled twice (CPU rates)",
        lambda s: (
            all(h.status == HostStatus.UP for h in s.hosts)
            and len(s.vms) == guests
            and all(v.rates and v.rates.cpu_pct is not None for v in s.vms.values() if v.state == "running")
        ),
        60,
    )
    served: list[FleetState] = []

    def latest() -> FleetState:
        served.append(fleet.state)
        return fleet.state

    server = await serve(latest, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        ctype, om_text = await scrape(port, "application/openmetrics-text; version=1.0.0")
        state = served[-1]
        ctype_text, text = await scrape(port, "text/plain")
    finally:
        server.close()
        await server.wait_closed()
    truth = await asyncio.to_thread(running_guests, lab)  # after the scrape: CPU time only grows

    assert (ctype, ctype_text) == (OPENMETRICS_TYPE, TEXT_TYPE)
    om = series_of(om_text, openmetrics=True)
    assert om_text.endswith("# EOF\n")
    classic = series_of(text, openmetrics=False)
    if served[-1] is state:  # no poll in between: both formats of one state
        assert classic == om

    exported_running: dict[tuple[str, str], dict[str, str]] = {}
    for name, label_set in om:
        d = dict(label_set)
        if name == "vimtui_vm_state" and d["state"] == "running":
            exported_running[(d["host"], d["vm"])] = d
    assert set(exported_running) == set(truth), "running guests: exported vs libvirt"
    assert len(truth) >= 3  # the lab's guests do run

    for (host, guest), cpu_ns in truth.items():
        labels = exported_running[(host, guest)]
        assert (labels["group"], labels["tenant"]) == ("lab", "")
        vm = state.vms[f"{host}/{labels['uuid']}"]
        assert (vm.name, vm.host, vm.state) == (guest, host, "running")
        key = frozenset({k: v for k, v in labels.items() if k != "state"}.items())
        assert vm.sample is not None and vm.sample.cpu_time_ns is not None
        exported_cpu = om[("vimtui_vm_cpu_seconds_total", key)]
        assert exported_cpu == vm.sample.cpu_time_ns / 1e9  # the fleet's own sample, exactly
        assert 0 < exported_cpu <= cpu_ns / 1e9  # and libvirt's counter has not gone below it since
        assert vm.rates is not None and vm.rates.cpu_pct is not None
        assert om[("vimtui_vm_cpu_usage_ratio", key)] == vm.rates.cpu_pct / 100
        assert om[("vimtui_vm_stale", key)] == 0

    for h in lab.hosts:
        host_labels = frozenset({"host": h.name, "group": "lab"}.items())
        assert om[("vimtui_host_up", host_labels)] == 1
        running_here = sum(1 for host, _ in truth if host == h.name)
        assert om[("vimtui_host_vms", host_labels | {("state", "running")})] == running_here
