"""Capacity sums and placement order on fleet states built from figures (the lab checks them against virsh).

Each test names what breaks it: a sum that counts a shut-off VM as running, a ranking on the wrong figure,
a host in maintenance or down still offered, a refusal without its numbers.
"""

from __future__ import annotations

from types import MappingProxyType

from vimtui.core.fleet.capacity import group_capacity, host_capacity, load_of
from vimtui.core.fleet.host_figures import HostFigures
from vimtui.core.fleet.placement import Demand, place
from vimtui.core.model import FleetState, HostState, HostStatus, PoolFill, VmState
from vimtui.core.poll.stats import HostRates, NodeSample

GIB = 1024 * 1024  # KiB


def host(
    name: str,
    *,
    cpus: int = 8,
    mem_gib: int = 16,
    used_gib: float | None = None,
    group: str = "",
    status: HostStatus = HostStatus.UP,
    read_only: bool = False,
    pools: tuple[PoolFill, ...] | None = None,
) -> HostState:
    node = NodeSample(0.0, cpus, 2000, "x86", mem_gib * GIB, None, None, None, None, None, None, None)
    used = None if used_gib is None else int(used_gib * GIB)
    return HostState(
        name=name,
        group=group,
        address=name,
        uri="qemu:///system",
        transport="ssh",
        profile="viewer" if read_only else "admin",
        status=status,
        message="" if status.healthy else "no route to host",
        status_since=0.0,
        node=node,
        rates=HostRates(cpu_pct=50.0, mem_used_kib=used, mem_pct=None),
        pools=pools,
    )


def vm(host: str, name: str, vcpus: int | None, mem_gib: float | None, state: str = "running") -> VmState:
    mem = None if mem_gib is None else int(mem_gib * GIB)
    return VmState(name, name, host, state, 1, vcpus, mem, mem, None, None, None)


def fleet(
    hosts: list[HostState], vms: list[VmState], maintenance: dict[str, float] | None = None
) -> FleetState:
    """The state as the fleet publishes it: each host with its VMs' load and its mark."""
    figures = HostFigures()
    figures.maintenance.update(maintenance or {})
    composed = []
    for h in hosts:
        if h.pools is not None:
            figures.pools[h.name] = h.pools
        mine = {v.key: v for v in vms if v.host == h.name}
        composed.append(figures.compose(h, mine))
    return FleetState(1, 0.0, tuple(composed), MappingProxyType({v.key: v for v in vms}))


def test_load_counts_running_and_defined_apart() -> None:
    """A shut-off VM counted as running, or a VM of unknown size summed as 0, breaks it."""
    load = load_of(
        [
            vm("a", "r", 2, 4),
            vm("a", "p", 1, 1, "paused"),
            vm("a", "off", 4, 8, "shutoff"),
            vm("a", "unknown", None, None, "shutoff"),
        ]
    )
    assert (load.vms, load.running, load.unknown) == (4, 2, 1)
    assert (load.vcpus_running, load.vcpus_defined) == (3, 7)
    assert (load.mem_running_kib, load.mem_defined_kib) == (5 * GIB, 13 * GIB)


def test_host_and_group_capacity() -> None:
    """Ratios, free figures and a group's sums from the hosts' own."""
    pools = (PoolFill("default", True, 100, 40, 60), PoolFill("off", False, 0, 0, 0))
    st = fleet(
        [host("a", cpus=4, mem_gib=8, used_gib=3, pools=pools), host("b", cpus=2, mem_gib=8, used_gib=1)],
        [vm("a", "x", 6, 4), vm("a", "y", 2, 6, "shutoff"), vm("b", "z", 1, 2)],
    )
    a = host_capacity(st.hosts[0])
    assert (a.pcpus, a.vcpus_running, a.vcpus_defined, a.vcpus_free) == (4, 6, 8, -2)
    assert a.vcpu_ratio == 1.5 and a.vcpu_ratio_defined == 2.0
    assert a.mem_ratio == 0.5 and a.mem_ratio_defined == 1.25
    assert a.mem_free_kib == 5 * GIB and a.mem_unallocated_kib == 4 * GIB
    assert a.cpu_used == 2.0  # 50 % of 4 CPUs
    assert (a.pool_capacity, a.pool_allocation, a.pool_available) == (100, 40, 60)
    g = group_capacity("", [a, host_capacity(st.hosts[1])])
    assert (g.hosts, g.pcpus, g.vcpus_running, g.mem_total_kib) == (2, 6, 7, 16 * GIB)
    assert g.mem_used_kib == 4 * GIB and g.pool_capacity == 100


def test_uneven_memory_gives_the_emptiest_first() -> None:
    """Ranking on anything but the share taken after placing (name order, free now) breaks it."""
    st = fleet(
        [host("a"), host("b"), host("c")],
        [vm("a", "a1", 2, 12), vm("b", "b1", 2, 4), vm("c", "c1", 2, 8)],
    )
    p = place(st, Demand(vcpus=2, memory_kib=2 * GIB))
    assert p.hosts == ["b", "c", "a"]
    assert [r.rank for r in p.ranked] == [1, 2, 3]
    best = p.ranked[0]
    assert best.limit == "memory" and best.mem_after_kib == 6 * GIB
    assert "memory 6.0G/16G (38%)" in best.figures()


def test_vcpus_can_be_the_tightest() -> None:
    """A host full of vCPUs but with memory free is ranked by its vCPUs, not its memory."""
    st = fleet(
        [host("busy", cpus=2), host("calm", cpus=8)],
        [vm("busy", "b1", 2, 1), vm("busy", "b2", 2, 1), vm("calm", "c1", 1, 4)],
    )
    p = place(st, Demand(vcpus=2, memory_kib=GIB))
    assert p.hosts == ["calm", "busy"]
    assert p.ranked[1].limit == "vcpus" and p.ranked[1].vcpus_after == 6


def test_hosts_left_out_say_why() -> None:
    """A host in maintenance, down, read-only, asked out, too small or too full must not be offered."""
    st = fleet(
        [
            host("ok"),
            host("maint"),
            host("down", status=HostStatus.UNREACHABLE),
            host("ro", read_only=True),
            host("asked"),
            host("small", cpus=1),
            host("full", used_gib=14.5),
        ],
        [],
        maintenance={"maint": 0.0},
    )
    p = place(st, Demand(vcpus=2, memory_kib=2 * GIB, leave_out=frozenset({"asked"})))
    assert p.hosts == ["ok"]
    why = {x.host: x.reason for x in p.left_out}
    assert why["maint"].startswith("in maintenance since")
    assert why["down"] == "unreachable: no route to host"
    assert why["ro"] == "connected read-only"
    assert why["asked"] == "left out as asked"
    assert why["small"] == "2 vCPUs asked, it has 1 CPUs"
    assert why["full"] == "2.0G asked, 1.5G free on full"


def test_disk_goes_to_a_pool_with_room() -> None:
    """The roomiest active pool is chosen; a named pool missing or too full leaves the host out."""
    g = 2**30
    big = (PoolFill("default", True, 100 * g, 90 * g, 10 * g), PoolFill("big", True, 500 * g, 0, 500 * g))
    b_pools = (PoolFill("default", True, 50 * g, 0, 50 * g),)
    st = fleet([host("a", pools=big), host("b", pools=b_pools), host("c")], [])
    disk = 20 * g
    p = place(st, Demand(vcpus=1, memory_kib=GIB, disk_bytes=disk))
    assert {r.host: r.pool for r in p.ranked} == {"a": "big", "b": "default"}
    assert {x.host: x.reason for x in p.left_out} == {"c": "its storage pools are not read yet"}
    p = place(st, Demand(vcpus=1, memory_kib=GIB, disk_bytes=disk, pool="default"))
    assert p.hosts == ["b"]
    assert {x.host: x.reason for x in p.left_out}["a"] == "20G disk asked, 10G free in pool default"
    p = place(st, Demand(vcpus=1, memory_kib=GIB, disk_bytes=disk, pool="nope"))
    assert p.hosts == [] and "a: no pool 'nope'" in p.why_none()


def test_planned_moves_count_and_group_limits() -> None:
    """Earlier placements of a plan count as made, so two VMs spread; other groups are not considered."""
    st = fleet([host("a", group="g"), host("b", group="g"), host("c", group="other")], [])
    d = Demand(vcpus=1, memory_kib=4 * GIB, group="g")
    first = place(st, d)
    assert first.hosts == ["a", "b"]  # equal: by name
    second = place(st, d, planned=[("a", d)])
    assert second.hosts == ["b", "a"]
    assert all(x.host != "c" for x in second.left_out)


def test_without_free_memory_figures_a_host_takes_no_more_than_its_running_vms_leave() -> None:
    """A host whose stats give no free memory (a driver without them, or not read yet): a VM larger than
    its memory, or than what its running VMs leave, is refused with the numbers, never ranked (ranking a
    400G VM on a 64G host, as before, breaks it)."""
    state = fleet([host("a", mem_gib=64), host("b", mem_gib=32)], [vm("b", "big", 2, 24)])
    p = place(state, Demand(vcpus=1, memory_kib=400 * GIB))
    assert not p.ranked
    why = {x.host: x.reason for x in p.left_out}
    assert why == {"a": "400G asked, a has 64G of memory", "b": "400G asked, b has 32G of memory"}
    p = place(state, Demand(vcpus=1, memory_kib=16 * GIB))
    assert [r.host for r in p.ranked] == ["a"]
    assert {x.host: x.reason for x in p.left_out} == {"b": "16G asked, 8.0G not given to running VMs on b"}
