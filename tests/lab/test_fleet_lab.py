"""The core against the lab: SSH transport, host sessions, bulk polls, events, faults, and the CLI."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import libvirt
import pytest

from tests.lab.lab import Lab
from tests.lab.support import FAST, eventually, port_answers, spec, started, until
from vimtui.core.config.settings import Defaults
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.startup import settings_from
from vimtui.core.model import FleetState, HostState, HostStatus

pytestmark = pytest.mark.lab


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
async def fleet(lab: Lab, runtime: Path) -> AsyncIterator[Fleet]:
    f = await started(lab, runtime)
    yield f
    await f.stop()


def direct_names(lab: Lab, host: str) -> set[str]:
    with lab.connect(host) as conn:
        return {d.name() for d in conn.listAllDomains()}


async def test_fleet_over_ssh_sees_every_host_and_its_own_guests(lab: Lab, fleet: Fleet) -> None:
    state = await until(fleet, "every host up", lambda s: all(h.status == HostStatus.UP for h in s.hosts))
    state = await until(fleet, "a poll of every host", lambda s: all(h.last_poll for h in s.hosts))
    for h in lab.hosts:
        assert {v.name for v in state.vms_on(h.name)} == direct_names(lab, h.name)
        info = state.host(h.name).info  # type: ignore[union-attr]
        assert info is not None and info.hostname == h.name and info.cpus >= 1


class Reading(NamedTuple):
    """web01's counters as libvirt gives them directly, and when (monotonic, before and after asking)."""

    before: float
    cpu_ns: int
    wr_bytes: int
    after: float


def read_web01(lab: Lab) -> Reading:
    with lab.connect("kvm01") as conn:
        dom = conn.lookupByName("web01")
        before = time.monotonic()
        ((_, stats),) = conn.domainListGetStats(
            [dom], libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BLOCK
        )
        after = time.monotonic()
    return Reading(before, int(stats["cpu.time"]), int(stats["block.0.wr.bytes"]), after)


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_rates_from_two_polls_match_libvirt_counters(lab: Lab, runtime: Path) -> None:
    """web01's CPU % and disk write rate from vimtui's two polls lie between the bounds that libvirt's own
    counters, read just before and just after each poll, allow: at least what grew between the inner
    readings over the longest the interval can be, at most what grew between the outer ones over the
    shortest."""
    fleet = await started(lab, runtime, tick=False)  # the test's own polls only
    try:
        with lab.connect("kvm01") as conn:
            vcpus = conn.lookupByName("web01").info()[3]

        async def poll() -> tuple[Reading, Reading]:
            first = await asyncio.to_thread(read_web01, lab)
            polled = hs(fleet.state, "kvm01").last_poll
            await fleet.tick(deadline=120)
            assert hs(fleet.state, "kvm01").last_poll != polled, "kvm01 was not polled"
            return first, await asyncio.to_thread(read_web01, lab)

        a0, b0 = await poll()
        # some CPU time and seconds between the polls, so the bounds are narrow beside the figure
        await eventually(
            "web01 to use a second of CPU",
            lambda: read_web01(lab).cpu_ns > b0.cpu_ns + 10**9 and time.monotonic() > b0.after + 5,
            180,
        )
        a1, b1 = await poll()
        [vm] = fleet.state.find_vm("web01", "kvm01")
        assert vm.rates is not None and vm.rates.cpu_pct is not None and vm.rates.disk_wr_bps is not None
        longest, shortest = b1.before - a0.after, a1.after - b0.before
        cpu_lo = (a1.cpu_ns - b0.cpu_ns) * 100.0 / (longest * 1e9 * vcpus)
        cpu_hi = (b1.cpu_ns - a0.cpu_ns) * 100.0 / (shortest * 1e9 * vcpus)
        shown = vm.rates.cpu_pct
        assert min(cpu_lo, 100.0) <= shown <= min(cpu_hi, 100.0), (cpu_lo, shown, cpu_hi)
        assert cpu_lo > 0, "web01 used no CPU between the polls: the check would prove little"
        wr_lo = (a1.wr_bytes - b0.wr_bytes) / longest
        wr_hi = (b1.wr_bytes - a0.wr_bytes) / shortest
        assert wr_lo <= vm.rates.disk_wr_bps <= wr_hi, (wr_lo, vm.rates.disk_wr_bps, wr_hi)
        host = hs(fleet.state, "kvm01")
        assert host.rates is not None and host.rates.cpu_pct is not None
        # history keeps what the polls saw
        assert fleet.vm_history.latest(vm.key, "cpu") is not None
        print(f"\nweb01 CPU {cpu_lo:.1f} <= {vm.rates.cpu_pct:.1f} <= {cpu_hi:.1f} %")
    finally:
        await fleet.stop()


async def test_domain_details_and_addresses_arrive_off_the_tick(lab: Lab, fleet: Fleet) -> None:
    state = await until(
        fleet,
        "web01's details",
        lambda s: any(v.name == "web01" and v.details is not None for v in s.vms.values()),
    )
    web = next(v for v in state.vms.values() if v.name == "web01")
    assert web.details is not None
    assert [d.target for d in web.details.disks] == ["vda"]
    assert web.details.disks[0].source == "default/web01.qcow2"
    mac = web.details.nics[0].mac
    with lab.connect("kvm01") as conn:
        assert mac in conn.lookupByName("web01").XMLDesc()
    # addresses from the libvirt network's DHCP leases (the lab guests have no agent)
    state = await until(
        fleet,
        "web01's address from its lease",
        lambda s: any(v.name == "web01" and v.ips for v in s.vms.values()),
        within=90,
    )
    web = next(v for v in state.vms.values() if v.name == "web01")
    assert web.ip_source == "lease" and web.ips[0].startswith("192.168.122.")


async def test_lifecycle_events_update_the_picture_without_a_poll(lab: Lab, runtime: Path) -> None:
    fleet = await started(lab, runtime, tick=False)  # no ticks: only events can change the picture
    try:
        await fleet.tick(deadline=10)
        vm = next(v for v in fleet.state.vms.values() if v.name == "app02")
        assert vm.state == "running"
        with lab.connect("kvm02") as conn:
            conn.lookupByName("app02").destroy()
        state = await until(
            fleet,
            "app02 shut off by event",
            lambda s: any(v.name == "app02" and v.state == "shutoff" for v in s.vms.values()),
            within=10,
        )
        assert fleet.ticks == 1
        assert any(e.vm == "app02" and e.kind == "stopped" for e in fleet.events)
        with lab.connect("kvm02") as conn:
            conn.lookupByName("app02").create()
        state = await until(
            fleet,
            "app02 running by event",
            lambda s: any(v.name == "app02" and v.state == "running" for v in s.vms.values()),
            within=10,
        )
        assert state.version > 1 and fleet.ticks == 1
    finally:
        await fleet.stop()


def hs(state: FleetState, name: str) -> HostState:
    h = state.host(name)
    assert h is not None, name
    return h


@pytest.fixture
async def default_fleet(lab: Lab, runtime: Path) -> AsyncIterator[Fleet]:
    """A fleet with the shipped default settings (2 s ticks, 3 s x 2 keepalive)."""
    fleet = Fleet([spec(lab, h.name) for h in lab.hosts], settings_from(Defaults()), runtime)
    await fleet.start()
    await until(
        fleet, "all up and polled", lambda s: all(h.status == HostStatus.UP and h.last_poll for h in s.hosts)
    )
    yield fleet
    await fleet.stop()


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_a_cut_host_turns_unreachable_keeps_its_rows_stale_and_comes_back_on_heal(
    lab: Lab, default_fleet: Fleet
) -> None:
    """How fast an outage is noticed is for bench/ (and depends on the keepalive settings): here, what must
    hold, with deadlines far beyond the settings' own."""
    fleet = default_fleet
    seen: list[str] = []
    fleet.subscribe(lambda s: seen.append(str(hs(s, "kvm03").status)))
    lab.cut("kvm03")
    try:
        state = await until(fleet, "kvm03 unreachable", lambda s: hs(s, "kvm03").status == "unreachable", 120)
        # on the way only what a host that stops answering can be (a late poll may show it degraded first)
        assert set(seen) <= {"up", "degraded", "unreachable"}, seen
        assert state.vms_on("kvm03") and all(v.stale for v in state.vms_on("kvm03"))  # kept, marked stale
        # the others keep being polled through the outage
        before = hs(state, "kvm01").last_poll
        state = await until(
            fleet, "kvm01 polled twice more", lambda s: hs(s, "kvm01").last_poll > before + 3, 120
        )
        assert hs(state, "kvm02").status.healthy  # up, or degraded by a late poll on a loaded machine
        assert hs(state, "kvm03").status == HostStatus.UNREACHABLE
    finally:
        lab.heal("kvm03")
    await port_answers(lab.host("kvm03").address, 22, 120)
    await until(fleet, "kvm03 up again", lambda s: hs(s, "kvm03").status == "up", 120)
    await until(
        fleet,
        "kvm03 fresh data",
        lambda s: s.vms_on("kvm03") and not any(v.stale for v in s.vms_on("kvm03")),
        120,
    )


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
async def test_libvirtd_restart_is_survived(lab: Lab, default_fleet: Fleet) -> None:
    fleet = default_fleet
    lab.stop_libvirtd("kvm02")
    try:
        await until(fleet, "kvm02 unreachable", lambda s: hs(s, "kvm02").status == "unreachable", 120)
        assert hs(fleet.state, "kvm01").status.healthy
    finally:
        lab.start_libvirtd("kvm02")
    await until(fleet, "kvm02 up once libvirtd answers", lambda s: hs(s, "kvm02").status == "up", 120)


async def test_a_guest_started_with_virsh_appears_by_event_before_a_poll(lab: Lab, runtime: Path) -> None:
    fleet = await started(lab, runtime, tick=False)  # no ticks: only the event can show it
    xml = Path(lab.host("kvm01").dir) / "extra01.xml"
    xml.write_text(IDLE_GUEST.format(name="extra01"))
    try:
        await fleet.tick(deadline=10)
        lab.exec("kvm01", ["virsh", "create", str(xml)])
        state = await until(
            fleet,
            "extra01 by event",
            lambda s: any(v.name == "extra01" and v.state == "running" for v in s.vms.values()),
            10,
        )
        assert fleet.ticks == 1
        state = await until(
            fleet,
            "extra01's details",
            lambda s: any(v.name == "extra01" and v.details is not None for v in s.vms.values()),
            10,
        )
        assert fleet.ticks == 1 and state.find_vm("extra01", "kvm01")
    finally:
        lab.exec("kvm01", ["virsh", "destroy", "extra01"], check=False)
        await fleet.stop()


IDLE_GUEST = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><interface type='network'><source network='default'/><model type='virtio'/></interface></devices>
</domain>"""


async def test_forwarded_socket_is_private(lab: Lab, fleet: Fleet, runtime: Path) -> None:
    await until(fleet, "all up", lambda s: all(h.status == HostStatus.UP for h in s.hosts))
    dir_mode, socks = socket_modes(runtime)
    assert dir_mode == 0o700
    assert socks == [(True, 0o600, os.getuid())] * 3


def keygen(path: Path) -> list[str]:
    """A fresh ed25519 key pair; returns the public key's fields."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().split()


def fingerprint(pub: Path) -> str:
    return subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True
    ).stdout.split()[1]


def socket_modes(runtime: Path) -> tuple[int, list[tuple[bool, int, int]]]:
    socks = [s.stat() for s in runtime.glob("*.sock")]
    return stat.S_IMODE(runtime.stat().st_mode), [
        (stat.S_ISSOCK(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid) for st in socks
    ]


async def one_host(lab: Lab, runtime: Path, hspec: HostSpec) -> Fleet:
    fleet = Fleet([hspec], FAST, runtime)
    await fleet.start(tick=False)
    await fleet.connected(within=30)
    return fleet


async def test_unknown_host_key_is_refused_with_its_fingerprint(
    lab: Lab, runtime: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    fleet = await one_host(lab, runtime, spec(lab, "kvm01", known_hosts=str(empty)))
    try:
        h = fleet.state.hosts[0]
        fp = fingerprint(Path(lab.host("kvm01").dir) / "ssh_host_ed25519_key.pub")
        assert h.status == HostStatus.HOSTKEY_MISMATCH
        assert fp in h.message and "not in known_hosts" in h.message
    finally:
        await fleet.stop()


async def test_changed_host_key_is_refused(lab: Lab, runtime: Path, tmp_path: Path) -> None:
    pub = keygen(tmp_path / "otherkey")
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{lab.host('kvm01').address} {pub[0]} {pub[1]}\n")
    fleet = await one_host(lab, runtime, spec(lab, "kvm01", known_hosts=str(wrong)))
    try:
        h = fleet.state.hosts[0]
        assert h.status == HostStatus.HOSTKEY_MISMATCH and "CHANGED" in h.message
    finally:
        await fleet.stop()


async def test_wrong_key_is_auth_failed(
    lab: Lab, runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    stranger = tmp_path / "stranger"
    keygen(stranger)
    fleet = await one_host(lab, runtime, spec(lab, "kvm01", identity=str(stranger)))
    try:
        assert fleet.state.hosts[0].status == HostStatus.AUTH_FAILED
    finally:
        await fleet.stop()


async def test_read_only_host_uses_the_read_only_socket(lab: Lab, runtime: Path) -> None:
    fleet = await one_host(lab, runtime, spec(lab, "kvm01", profile="viewer"))
    try:
        session = fleet.sessions["kvm01"]
        assert fleet.state.hosts[0].status == HostStatus.UP
        await fleet.tick(deadline=10)
        assert {v.name for v in fleet.state.vms.values()} == direct_names(lab, "kvm01")

        def suspend() -> None:
            session._conn.lookupByName("db01").suspend()

        with pytest.raises(libvirt.libvirtError, match="read only"):
            await session.lane.call(5, suspend)
    finally:
        await fleet.stop()


async def test_a_dead_host_never_delays_the_others(lab: Lab, runtime: Path) -> None:
    dead = HostSpec(
        name="ghost",
        transport="ssh",
        uri="qemu:///system",
        address=f"10.{lab.octet}.0.99",
        user="root",
        identity=str(lab.key_file),
        known_hosts=str(lab.known_hosts),
    )
    fleet = Fleet([dead, spec(lab, "kvm02")], FAST, runtime)
    await fleet.start()
    try:
        state = await until(
            fleet,
            "kvm02 polled twice while ghost is still connecting",
            lambda s: (
                s.host("kvm02").rates is not None  # type: ignore[union-attr]
                and s.host("kvm02").rates.cpu_pct is not None
            ),
        )  # type: ignore[union-attr]
        assert state.host("ghost").status in (HostStatus.CONNECTING, HostStatus.UNREACHABLE)  # type: ignore[union-attr]
    finally:
        await fleet.stop()
