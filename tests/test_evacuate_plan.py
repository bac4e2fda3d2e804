"""The evacuation plan on fleet states built from figures (the lab runs real ones): each test names what
breaks it."""

from __future__ import annotations

from tests.test_placement import GIB, fleet, host, vm
from vimtui.core.actions.evacuate_plan import VmStorage, plan_evacuation
from vimtui.core.model import HostStatus, PoolFill

POOL = (PoolFill("default", True, 100 * GIB * 1024, 10 * GIB * 1024, 90 * GIB * 1024),)


def test_running_first_largest_first_spread_over_the_others() -> None:
    """Placing shut-off VMs before running ones, or ignoring earlier moves (both on the emptiest host),
    breaks it."""
    state = fleet(
        [host("src", pools=POOL), host("b", pools=POOL), host("c", pools=POOL)],
        [
            vm("src", "small", 1, 1),
            vm("src", "big", 2, 6),
            vm("src", "off", 1, 4, "shutoff"),
        ],
    )
    storage = {"big": VmStorage(local_bytes=GIB * 1024, pool="default"), "off": VmStorage()}
    plan = plan_evacuation(state, "src", storage)
    assert [(m.vm, m.how) for m in plan.moves] == [("big", "live+disks"), ("small", "live"), ("off", "cold")]
    dests = {m.vm: m.dest for m in plan.moves}
    assert dests["big"] != dests["small"], plan.lines()
    assert all(m.dest in ("b", "c") and m.refusal is None for m in plan.moves)
    assert "best of 2" in plan.moves[0].why and "memory" in plan.moves[0].why
    assert plan.moves[0].args == {"dest": dests["big"], "copy_storage": True}
    assert plan.moves[1].args == {"dest": dests["small"]}


def test_no_destination_in_maintenance_down_or_with_the_name() -> None:
    """Offering a host in maintenance, one not answering, or one that has a VM of that name breaks it."""
    state = fleet(
        [
            host("src"),
            host("maint"),
            host("down", status=HostStatus.UNREACHABLE),
            host("clash"),
            host("ok", mem_gib=4),
        ],
        [vm("src", "web", 1, 1), vm("clash", "web", 1, 1, "shutoff")],
        maintenance={"maint": 1.0},
    )
    [move] = plan_evacuation(state, "src", {}).moves
    assert move.dest == "ok" and move.refusal is None, move
    assert "the only host" in move.why


def test_what_cannot_move_stays_with_the_reason() -> None:
    """A VM with snapshots or in a passing state planned anyway, or no reason when no host fits, breaks
    it."""
    state = fleet(
        [host("src"), host("tiny", cpus=1, mem_gib=1)],
        [
            vm("src", "snap", 1, 0.5),
            vm("src", "sleepy", 1, 0.5, "pmsuspended"),
            vm("src", "huge", 4, 0.5),
            vm("src", "fine", 1, 0.25),
        ],
    )
    plan = plan_evacuation(state, "src", {"snap": VmStorage(snapshots=2)})
    refused = {m.vm: m.refusal for m in plan.moves}
    assert refused["fine"] is None
    assert "2 snapshot(s)" in (refused["snap"] or "")
    assert "pmsuspended" in (refused["sleepy"] or "")
    assert "4 vCPUs asked, it has 1 CPUs" in (refused["huge"] or "")
    lines = plan.lines()
    assert lines[0] == "evacuate src: 1 of 4 VMs to move"
    assert any(line.strip().startswith("✗ huge") for line in lines)


def test_disks_are_placed_only_where_the_pools_are_known() -> None:
    """Refusing every host while their pools are not read yet breaks it (the move checks the room)."""
    state = fleet([host("src"), host("b")], [vm("src", "d", 1, 1, "shutoff")])
    [move] = plan_evacuation(state, "src", {"d": VmStorage(local_bytes=GIB, pool="default")}).moves
    assert move.dest == "b" and move.refusal is None, move
