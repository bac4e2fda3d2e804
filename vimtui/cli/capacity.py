"""`vimtui capacity [--group G] [--json]` and `vimtui place --vcpus N --memory SIZE [--disk SIZE] [--pool P]
[--group G] [--json]`: the capacity of each host and group, and where a VM of that size would go, with the
figures behind each rank. The same figures as the screen (core/fleet/capacity.py, placement.py), from one
fresh poll and one read of every host's pools. Exit 0, 2 for usage errors, 3 when a host is unreachable
(the others are still shown); `place` exits 1 when no host can take the VM.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from vimtui.cli.argtypes import parsed_by, whole
from vimtui.cli.exits import Exit, UsageError
from vimtui.cli.reach import connected
from vimtui.core.actions.params import Param, convert
from vimtui.core.config.settings import Config
from vimtui.core.fleet.capacity import Capacity, by_group, group_capacity, kib, ratio, summary_lines
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.placement import Demand, place
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.model import FleetState
from vimtui.core.text import cells, pad
from vimtui.core.units import format_bytes


def _mib(text: str) -> int:
    return int(convert(Param("size", "size", low=1), text))


SIZE = parsed_by(_mib, "size")
"""A size in MiB: 512, 512M, 4G, 1T (the forms' and the `:` line's parsing)."""


def add_capacity_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("capacity", parents=[common], help="CPUs, memory and pools per host and group")
    p.add_argument("--group", metavar="G", help="only this group's hosts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("place", parents=[common], help="rank the hosts a VM of this size would go to")
    p.add_argument("--vcpus", type=whole(1, 4096), default=1, help="vCPUs (default 1)")
    p.add_argument("--memory", type=SIZE, required=True, metavar="SIZE", help="memory: 512M, 4G ...")
    p.add_argument("--disk", type=SIZE, metavar="SIZE", help="disk, in one pool: 20G ...")
    p.add_argument(
        "--pool", metavar="P", default="", help="the pool the disk goes to (default: the roomiest)"
    )
    p.add_argument("--group", metavar="G", default="", help="only this group's hosts")
    p.add_argument("--json", action="store_true", help="machine-readable output")


async def fresh_state(config: Config, specs: Sequence[HostSpec]) -> tuple[Fleet, FleetState]:
    """A started fleet after one poll of every host and one read of their pools."""
    fleet = make_fleet(config, specs)
    await fleet.start(tick=False)
    await connected(fleet, config)
    await fleet.tick(deadline=config.defaults.call_timeout)
    await fleet.pools.refresh_all()
    return fleet, fleet.publish()


async def run_capacity(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    if args.command == "capacity" and args.group and all(s.group != args.group for s in specs):
        raise UsageError(f"no host in group {args.group!r}")
    if args.command == "place" and args.group and all(s.group != args.group for s in specs):
        raise UsageError(f"no host in group {args.group!r}")
    fleet, state = await fresh_state(config, specs)
    try:
        code = _capacity(state, args) if args.command == "capacity" else _place(state, args)
        failed = [h for h in state.hosts if not h.status.healthy]
        for h in failed:
            print(f"vimtui: {h.name}: {h.status}: {h.message}", file=sys.stderr)
        return Exit.UNREACHABLE if failed and code == Exit.OK else code
    finally:
        await fleet.stop()


def _capacity(state: FleetState, args: argparse.Namespace) -> int:
    groups = by_group(state.hosts, args.group or None)
    sums = {g: group_capacity(g, caps) for g, caps in groups.items()}
    if args.json:
        doc = {
            "hosts": [c.as_dict() for caps in groups.values() for c in caps],
            "groups": [s.as_dict() for s in sums.values()],
        }
        print(json.dumps(doc, indent=2))
        return Exit.OK
    rows = []
    for g, caps in groups.items():
        rows += [_row(c) for c in caps]
        if len(groups) > 1 or len(caps) > 1:
            rows.append(_row(sums[g], total=True))
    print(_table(HEADERS, rows), end="")
    for caps in groups.values():
        for c in caps:
            pools = [line for line in summary_lines(c) if line.startswith("Pool")]
            if pools:
                print(f"\n{c.name}:")
                print("".join(f"  {line}\n" for line in pools), end="")
    return Exit.OK


HEADERS = [
    "HOST",
    "GROUP",
    "CPUS",
    "VCPUS RUN/ALL",
    "VCPU:CPU",
    "CPU USED",
    "MEMORY",
    "MEM RUN/ALL",
    "MEM:PHYS",
]
HEADERS += ["MEM USED", "MEM FREE", "POOLS", "POOL FREE"]


def _row(c: Capacity, total: bool = False) -> list[str]:
    name = (
        f"= {c.name or '(no group)'} ({c.hosts} host{'s' if c.hosts != 1 else ''})"
        if total
        else c.name + (" [maint]" if c.maintenance else "")
    )
    return [
        name,
        c.group or "-",
        str(c.pcpus or "-"),
        f"{c.vcpus_running}/{c.vcpus_defined}",
        ratio(c.vcpu_ratio),
        "-" if c.cpu_used is None else f"{c.cpu_used:.1f}",
        kib(c.mem_total_kib),
        f"{kib(c.mem_running_kib)}/{kib(c.mem_defined_kib)}",
        ratio(c.mem_ratio),
        kib(c.mem_used_kib),
        kib(c.mem_free_kib),
        format_bytes(c.pool_capacity),
        format_bytes(c.pool_available),
    ]


def _place(state: FleetState, args: argparse.Namespace) -> int:
    demand = Demand(
        vcpus=args.vcpus,
        memory_kib=args.memory * 1024,
        disk_bytes=(args.disk or 0) * 2**20,
        pool=args.pool,
        group=args.group,
    )
    p = place(state, demand)
    if args.json:
        print(json.dumps(p.as_dict(), indent=2))
    else:
        print(f"placing {demand.describe()}:")
        for r in p.ranked:
            print(f"  {r.rank}. {r.host}: {r.figures()}")
        for x in p.left_out:
            print(f"  -  {x.host}: left out: {x.reason}")
        if not p.ranked:
            print("  no host can take it")
    return Exit.OK if p.ranked else Exit.FAILED


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(cells(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(pad(v, w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [headers, *rows]]
    return "\n".join(lines) + "\n"


async def choose_host(fleet: Fleet, args: argparse.Namespace) -> str | None:
    """`vm create --host auto`: the best host by placement for the new VM, said on stderr with its figures
    (None, with the reasons, when no host can take it). From a template: among the hosts that have it,
    sized like it unless --vcpus/--memory say otherwise; from an image: any host, with its disk in --pool."""
    await fleet.pools.refresh_all()
    state = fleet.publish()
    if args.image:
        pool = args.pool
        leave_out: frozenset[str] = frozenset()
        vcpus, memory_mib = args.vcpus or 1, args.memory or 1024
        disk = (args.disk or 0) * 2**30
    else:
        templates = state.find_vm(args.template)
        if not templates:
            print(f"vimtui: no VM named {args.template!r} to copy on any host", file=sys.stderr)
            return None
        t = templates[0]
        leave_out = frozenset(h.name for h in state.hosts) - {v.host for v in templates}
        vcpus = args.vcpus or t.vcpu_count or 1
        memory_mib = args.memory or (t.memory_kib or 0) // 1024
        pool, disk = "", 0
    demand = Demand(
        vcpus=vcpus, memory_kib=memory_mib * 1024, disk_bytes=disk, pool=pool, leave_out=leave_out
    )
    p = place(state, demand)
    if not p.ranked:
        print(f"vimtui: {p.why_none()}", file=sys.stderr)
        return None
    best = p.ranked[0]
    print(f"host auto: {best.host}: {best.figures()}", file=sys.stderr)
    return best.host
