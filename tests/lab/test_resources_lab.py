"""Resource changes on running lab guests (`vm set`, `resize-disk`, `pin`, `tune`) as tasks, each effect
read back with virsh over a direct connection to the host's libvirtd, never through vimtui's own state;
refusals leave virsh showing the old values. Each test works on scratch guests of its own on kvm02 (two
CPUs, like every lab host)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.lab.lab import Lab
from tests.lab.support import act, eventually, seen, started
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import Task, TaskState
from vimtui.core.model import FleetState

pytestmark = pytest.mark.lab

HOST = "kvm02"


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await started(
        lab,
        tmp_path / "run",
        audit=AuditLog(tmp_path / "audit.log"),
        call_timeout=15.0,
        connect_timeout=15.0,
        keepalive_interval=3.0,
        keepalive_count_max=3,
    )
    yield f
    await f.stop()


@pytest.fixture
def scratch(lab: Lab) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        lab.remove_guest(HOST, name)


def virsh(lab: Lab, *args: str) -> str:
    out = subprocess.run(
        ["virsh", "-c", lab.host(HOST).direct_uri, *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def vcpucount(lab: Lab, name: str) -> dict[tuple[str, str], int]:
    """`virsh vcpucount`: {("maximum", "config"): 2, ("current", "live"): 1, ...}."""
    out = {}
    for line in virsh(lab, "vcpucount", name).splitlines():
        m = re.fullmatch(r"\s*(maximum|current)\s+(config|live)\s+(\d+)\s*", line)
        if m:
            out[(m.group(1), m.group(2))] = int(m.group(3))
    return out


def dominfo_kib(lab: Lab, name: str, field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) KiB", virsh(lab, "dominfo", name), re.MULTILINE)
    assert m, virsh(lab, "dominfo", name)
    return int(m.group(1))


def sizes(lab: Lab, name: str) -> tuple[object, ...]:
    """vcpucount, the max and used memory, the vCPU pinning: what a refused change must leave as it was."""
    info = virsh(lab, "dominfo", name)
    memory = re.findall(r"^(?:Max|Used) memory:.*$", info, re.MULTILINE)
    return vcpucount(lab, name), memory, virsh(lab, "vcpupin", name, "--live")


async def with_details(fleet: Fleet, name: str) -> None:
    """Until the fleet has read the guest's domain XML (its disks are offered from it)."""
    await fleet.wait_for(lambda s: (vm := s.find_vm(name, HOST)) and vm[0].details is not None, 60)


def guest(lab: Lab, scratch: list[str], **kw: object) -> str:
    name = f"r-{uuid.uuid4().hex[:6]}"
    scratch.append(name)
    lab.add_guest(HOST, name, **kw)  # type: ignore[arg-type]
    return name


async def do(fleet: Fleet, action: str, name: str, **args: object) -> list[Task]:
    """`action` on the guest once its host answers (a loaded machine can drop a session for a while: the
    action would then be refused for the host, not for what it asks)."""

    def answering(s: FleetState) -> bool:
        h, vm = s.host(HOST), s.find_vm(name, HOST)
        return h is not None and h.status.healthy and bool(vm) and not vm[0].stale

    await fleet.wait_for(answering, 120)
    return await act(fleet, action, [name], host=HOST, **args)


def ok(tasks: list[Task]) -> str:
    assert len(tasks) == 1 and tasks[0].state == TaskState.DONE, [t.as_dict() for t in tasks]
    return tasks[0].result


def refused(tasks: list[Task]) -> str:
    assert len(tasks) == 1 and tasks[0].state == TaskState.FAILED, [t.as_dict() for t in tasks]
    return tasks[0].error


async def booted(lab: Lab, name: str) -> None:
    """Until the guest's balloon driver reports (its kernel is up and can act on hotplug and balloon)."""
    await eventually(
        f"{name}'s balloon stats",
        lambda: "balloon.unused" in virsh(lab, "domstats", "--balloon", name),
        within=300,  # a TCG boot on a loaded machine
    )


async def test_live_vcpus_and_balloon_then_the_memory_column(
    lab: Lab, fleet: Fleet, scratch: list[str]
) -> None:
    name = guest(lab, scratch, mib=128, vcpus=1, max_vcpus=2, max_mib=160)
    await seen(fleet, HOST, name)
    await booted(lab, name)
    assert vcpucount(lab, name)[("current", "live")] == 1

    result = ok(await do(fleet, "set", name, vcpus=2, memory=96))
    assert "vCPUs 1 -> 2" in result and "-> 96 MiB" in result  # from what the balloon has now
    counts = vcpucount(lab, name)
    assert counts[("current", "live")] == 2 and counts[("current", "config")] == 1  # live only
    await eventually("the balloon at 96 MiB", lambda: dominfo_kib(lab, name, "Used memory") == 96 * 1024)
    assert dominfo_kib(lab, name, "Max memory") == 160 * 1024

    # what the memory column and graph read (vm.memory_bytes: balloon.current) follows the balloon
    await fleet.wait_for(lambda s: (vm := s.find_vm(name, HOST)) and vm[0].memory_kib == 96 * 1024, 60)
    assert fleet.tasks.audit is not None
    records = [json.loads(line) for line in fleet.tasks.audit.path.read_text().splitlines()]
    assert [(r["action"], r["outcome"], r["args"]) for r in records if r["vm"] == name] == [
        ("set", "started", {"vcpus": 2, "memory": 96}),
        ("set", "done", {"vcpus": 2, "memory": 96}),
    ]


async def test_config_only_changes_show_after_a_restart(lab: Lab, fleet: Fleet, scratch: list[str]) -> None:
    name = guest(lab, scratch, mib=112, vcpus=1)
    await seen(fleet, HOST, name)
    result = ok(await do(fleet, "set", name, vcpus=2, max_vcpus=2, memory=128, max_memory=128, config=True))
    assert "next boot" in result
    counts = vcpucount(lab, name)
    assert counts[("current", "live")] == 1 and counts[("current", "config")] == 2
    assert dominfo_kib(lab, name, "Max memory") == 112 * 1024  # live still as it was

    virsh(lab, "destroy", name)
    virsh(lab, "start", name)
    counts = vcpucount(lab, name)
    assert counts[("current", "live")] == 2 and counts[("maximum", "live")] == 2
    assert dominfo_kib(lab, name, "Max memory") == 128 * 1024


async def test_a_disk_grown_live_and_a_shrink_refused(lab: Lab, fleet: Fleet, scratch: list[str]) -> None:
    name = guest(lab, scratch, disk=True)
    await seen(fleet, HOST, name)
    await with_details(fleet, name)

    def capacity() -> int:
        m = re.search(r"^Capacity:\s+(\d+)", virsh(lab, "domblkinfo", name, "vda"), re.MULTILINE)
        assert m
        return int(m.group(1))

    assert capacity() == 64 * 2**20
    ok(await do(fleet, "resize-disk", name, disk="vda", size="+64M"))
    assert capacity() == 128 * 2**20

    why = refused(await do(fleet, "resize-disk", name, disk="vda", size="32M"))
    assert why.endswith(
        "vda is 128 MiB, 32 MiB asked: a disk is never shrunk (the guest's filesystems would be cut)"
    )
    assert capacity() == 128 * 2**20


async def test_pinning_and_an_io_limit(lab: Lab, fleet: Fleet, scratch: list[str]) -> None:
    name = guest(lab, scratch, disk=True)
    await seen(fleet, HOST, name)
    await with_details(fleet, name)

    ok(await do(fleet, "pin", name, vcpu=0, cpus="1"))
    assert re.search(r"^\s*0\s+1\s*$", virsh(lab, "vcpupin", name, "--live"), re.MULTILINE)
    ok(await do(fleet, "pin", name, emulator=True, cpus="0"))
    assert re.search(r"\*:\s+0\s*$", virsh(lab, "emulatorpin", name, "--live"), re.MULTILINE)

    ok(await do(fleet, "tune", name, disk="vda", read_bytes_sec=1048576, write_iops_sec=200))
    tune = virsh(lab, "blkdeviotune", name, "vda", "--live")
    assert re.search(r"^read_bytes_sec\s*:\s*1048576$", tune, re.MULTILINE), tune
    assert re.search(r"^write_iops_sec\s*:\s*200$", tune, re.MULTILINE), tune

    ok(await do(fleet, "tune", name, shares=512))
    assert re.search(r"^cpu_shares\s*:\s*512$", virsh(lab, "schedinfo", name, "--live"), re.MULTILINE)


async def test_beyond_maximum_or_capacity_refused_with_numbers_nothing_changed(
    lab: Lab, fleet: Fleet, scratch: list[str]
) -> None:
    name = guest(lab, scratch, mib=128, vcpus=1, max_vcpus=2)
    await seen(fleet, HOST, name)
    before = sizes(lab, name)

    why = refused(await do(fleet, "set", name, vcpus=2 + 1))
    assert why == f"vCPUs 3 asked, {HOST} has 2 CPUs", why
    why = refused(await do(fleet, "set", name, memory=1024))
    assert why == f"1 GiB asked, {name}'s maximum memory on the running VM is 128 MiB", why
    why = refused(await do(fleet, "set", name, max_vcpus=64, config=True))
    assert why == f"maximum vCPUs 64 asked, {HOST} has 2 CPUs", why
    why = refused(await do(fleet, "set", name, max_vcpus=2))
    assert "a maximum changes only in the config" in why
    why = refused(await do(fleet, "pin", name, vcpu=0, cpus="0-7"))
    assert why == f"CPU 7 asked, {HOST} has CPUs 0-1", why

    assert sizes(lab, name) == before


async def test_a_live_refusal_puts_the_config_back(lab: Lab, fleet: Fleet, scratch: list[str]) -> None:
    """Two vCPUs that are not hotpluggable (<vcpu>2</vcpu>): libvirt refuses to unplug one live, after the
    config side was changed; the config is put back and the failure says so in libvirt's words."""
    name = guest(lab, scratch, vcpus=2)
    await seen(fleet, HOST, name)
    why = refused(await do(fleet, "set", name, vcpus=1, live=True, config=True))
    assert why.startswith("libvirt refused vCPUs 2 -> 1 on the running VM: "), why
    assert "put back (the config: vCPUs 2 -> 1): nothing holds" in why, why
    counts = vcpucount(lab, name)
    assert counts[("current", "config")] == 2 and counts[("current", "live")] == 2
