"""The lab itself: real hosts, real sshd, real libvirtd, real guests."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

import libvirt
import pytest

from tests.conftest import wait_until
from tests.lab import subnet
from tests.lab.lab import Lab, run
from tests.lab.support import serial_log

pytestmark = pytest.mark.lab


def ssh(lab: Lab, host: str, *command: str, timeout: int = 5) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lab.ssh_argv(host, *command, timeout=timeout),
        capture_output=True,
        text=True,
        timeout=timeout + 20,
        stdin=subprocess.DEVNULL,
    )


def test_three_hosts_each_with_its_own_address_and_hostname(lab: Lab) -> None:
    assert [h.name for h in lab.hosts] == ["kvm01", "kvm02", "kvm03"]
    assert len({h.address for h in lab.hosts}) == 3
    for h in lab.hosts:
        assert lab.exec(h.name, ["hostname"]).strip() == h.name


def test_ssh_reaches_each_host_with_strict_host_key_checking(lab: Lab) -> None:
    for h in lab.hosts:
        out = ssh(lab, h.name, "hostname")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == h.name


def test_ssh_refuses_a_host_whose_key_is_unknown(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    argv = [a.replace(str(lab.known_hosts), str(empty)) for a in lab.ssh_argv("kvm01", "true")]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 255
    assert "Host key verification failed" in out.stderr


def test_each_host_lists_its_own_guests_through_libvirt(lab: Lab) -> None:
    seen: dict[str, set[str]] = {}
    for h in lab.hosts:
        with lab.connect(h.name) as conn:
            seen[h.name] = {d.name() for d in conn.listAllDomains()}
            assert conn.getHostname() == h.name
        assert seen[h.name] == set(h.guests)
    assert seen["kvm01"].isdisjoint(seen["kvm02"]) and seen["kvm02"].isdisjoint(seen["kvm03"])
    # the same answer over SSH, with the host's own virsh
    out = ssh(lab, "kvm02", "virsh", "list", "--name")
    assert set(out.stdout.split()) == seen["kvm02"]


def test_a_guest_with_a_qcow2_disk_on_a_dir_pool_and_a_network(lab: Lab) -> None:
    with lab.connect("kvm01") as conn:
        pool = conn.storagePoolLookupByName("default")
        assert pool.isActive()
        assert "web01.qcow2" in pool.listVolumes()
        assert conn.networkLookupByName("default").isActive()
        dom = conn.lookupByName("web01")
        assert "<source pool='default' volume='web01.qcow2'" in dom.XMLDesc()
        # the guest's workload writes to its disk
        wait_until("web01 to write to its disk", lambda: dom.blockStats("vda")[3] > 0, 60)


def test_a_guest_cpu_time_grows(lab: Lab) -> None:
    with lab.connect("kvm02") as conn:
        dom = conn.lookupByName("app01")

        def cpu_time() -> int:
            ((_, stats),) = conn.domainListGetStats([dom], libvirt.VIR_DOMAIN_STATS_CPU_TOTAL)
            return int(stats["cpu.time"])

        first = cpu_time()
        wait_until("app01's cpu.time to grow", lambda: cpu_time() > first + 10_000_000)


def test_acpi_shutdown_stops_a_guest(lab: Lab) -> None:
    with lab.connect("kvm03") as conn:
        dom = conn.lookupByName("cache01")
        # the guest must be far enough in its boot to have its power-button watcher running
        wait_until(
            "cache01 to boot",
            lambda: "vimtui-guest cache01 up" in serial_log(lab, "kvm03", "cache01"),
            60,
        )
        dom.shutdown()
        wait_until("cache01 to shut off", lambda: not dom.isActive(), 60)
        state, reason = dom.state()
        assert (state, reason) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN)
        dom.create()
        assert dom.isActive()


def test_cut_host_fails_ssh_and_heal_restores_it(lab: Lab) -> None:
    lab.cut("kvm03")
    try:
        out = ssh(lab, "kvm03", "true", timeout=2)
        assert out.returncode == 255
        assert "timed out" in out.stderr.lower()
        assert ssh(lab, "kvm02", "true").returncode == 0  # the others carry on
    finally:
        lab.heal("kvm03")
    answered = wait_until(
        "kvm03 to answer again", lambda: (out := ssh(lab, "kvm03", "hostname")).returncode == 0 and out, 120
    )
    assert answered.stdout.strip() == "kvm03"  # the host itself answers, not a stale connection


def test_libvirtd_stops_and_starts_while_guests_keep_running(lab: Lab) -> None:
    lab.stop_libvirtd("kvm02")
    try:
        with pytest.raises(libvirt.libvirtError):
            libvirt.open(lab.host("kvm02").direct_uri)
    finally:
        lab.start_libvirtd("kvm02")
    with lab.connect("kvm02") as conn:
        active = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        assert {d.name() for d in active} == {"app01", "app02"}
        # the restarted libvirtd found the guests' cgroups again: per-VM CPU time is still there
        for _dom, stats in conn.domainListGetStats(active, libvirt.VIR_DOMAIN_STATS_CPU_TOTAL):
            assert "cpu.time" in stats


def test_a_lab_comes_down_leaving_nothing_behind() -> None:
    small = Lab("tdown")
    small.up(1)
    h = small.hosts[0]
    pids = [
        h.pid,
        *map(
            int,
            subprocess.run(
                ["ip", "netns", "pids", h.netns], capture_output=True, text=True, check=True
            ).stdout.split(),
        ),
    ]
    assert len(pids) > 3  # init, libvirtd, virtlogd, sshd, qemu, dnsmasq ...
    small.down()
    assert not small.dir.exists()
    assert h.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not Path(f"/sys/class/net/{small.bridge}").exists()
    assert not any(Path(f"/proc/{p}").exists() for p in pids), "a lab process (or its zombie) is left"
    assert not list(Path("/sys/fs/cgroup").glob("*/vtlab-tdown"))


def test_a_lab_takes_another_subnet_when_its_own_is_routed_here() -> None:
    """Another network on the lab's usual subnet (here a link with an address in it: a veth pair, this
    kernel may lack the dummy link type): the lab must not build on it, or it would reach hosts that are
    not its own."""
    lab = Lab("tsub")
    taken = ipaddress.ip_network(f"10.{lab.preferred_octet}.0.0/24")
    dummy = f"vtdum{os.getpid() % 10000}"
    run(["ip", "link", "add", dummy, "type", "veth", "peer", "name", f"{dummy}p"])
    try:
        run(["ip", "addr", "add", f"10.{lab.preferred_octet}.0.1/24", "dev", dummy])
        run(["ip", "link", "set", dummy, "up"])
        lab.up(1)
        try:
            assert lab.octet != lab.preferred_octet
            assert ipaddress.ip_address(lab.gateway) not in taken
            assert ipaddress.ip_address(lab.hosts[0].address) not in taken
            out = ssh(lab, "kvm01", "hostname", timeout=30)
            assert out.returncode == 0 and out.stdout.strip() == "kvm01", out.stderr
            assert Lab("tsub").octet == lab.octet  # recorded: `down` and the tests find it again
        finally:
            lab.down()
    finally:
        run(["ip", "link", "delete", dummy], check=False)
    assert not Path(f"/sys/class/net/{lab.bridge}").exists()


def test_the_subnet_choice_refuses_when_nothing_is_free() -> None:
    used = [(subnet.lab_network(o), "vtx") for o in (77, 100, 101)]
    assert subnet.free_octet(77, used, candidates=(100, 101, 102)) == 102
    assert subnet.free_octet(103, used, candidates=(100,)) == 103
    wide = [(ipaddress.IPv4Network("10.0.0.0/8"), "vpn0")]
    with pytest.raises(subnet.SubnetTaken, match=r"10\.77\.0\.0/24 is taken \(10\.0\.0\.0/8 on vpn0\)"):
        subnet.free_octet(77, wide, candidates=(100, 101))
