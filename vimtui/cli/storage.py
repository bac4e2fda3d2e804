"""`vimtui pool ...` and `vimtui vol ...`: the pool and volume actions of the registry (cli/targets.py), and
the listings: `pool list [HOST...]`, `vol list [HOST | HOST/POOL ...] [--orphans]`, `vol orphans [HOST...]`,
each with --json. A host that does not answer is named and the command exits 3 after listing the others.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from vimtui.cli.exits import Exit, UsageError
from vimtui.cli.listing import _table
from vimtui.cli.targets import add_target_parser, run_target, started
from vimtui.core.actions import storage_view as view
from vimtui.core.config.settings import Config
from vimtui.core.fleet.fleet import QueryFailed
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.tasks import ActionError
from vimtui.core.units import format_bytes


def add_storage_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    verbs = add_target_parser(
        sub, common, "pool", "storage pools: list, define, start, stop, autostart, refresh, delete"
    )
    p = verbs.add_parser("list", parents=[common], help="each host's pools: state, capacity, free, autostart")
    p.add_argument("hosts", metavar="HOST", nargs="*", help="only these hosts (default: all)")
    p.add_argument("--json", action="store_true", help="as JSON")
    verbs = add_target_parser(
        sub, common, "volume", "volumes: list, orphans, create, delete, resize, clone, wipe"
    )
    p = verbs.add_parser(
        "list", parents=[common], help="volumes with size, format, backing and who uses them"
    )
    p.add_argument("where", metavar="HOST[/POOL]", nargs="*", help="only these hosts or pools (default: all)")
    p.add_argument("--orphans", action="store_true", help="only volumes no domain defined on the host uses")
    p.add_argument("--json", action="store_true", help="as JSON")
    p = verbs.add_parser("orphans", parents=[common], help="volumes no domain defined on the host uses")
    p.add_argument("hosts", metavar="HOST", nargs="*", help="only these hosts (default: all)")
    p.add_argument("--json", action="store_true", help="as JSON")


async def run_pool(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    return await run_target(args, config, specs, "pool", {"list": _pool_list})


async def run_vol(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    return await run_target(args, config, specs, "volume", {"list": _vol_list, "orphans": _orphans})


async def _pool_list(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    fleet = await started(config, specs, args.hosts)
    rows: list[tuple[str, view.PoolRow]] = []
    failed: list[str] = []
    try:
        for h in fleet.state.hosts:
            try:
                rows += [(h.name, r) for r in await fleet.ask(h.name, view.pool_rows)]
            except QueryFailed as exc:
                failed.append(f"{h.name}: {exc}")
    finally:
        await fleet.stop()
    if args.json:
        print(json.dumps([{"host": host, **asdict(r)} for host, r in rows], indent=2))
    else:
        headers = [
            "HOST",
            "POOL",
            "TYPE",
            "STATE",
            "AUTOSTART",
            "CAPACITY",
            "ALLOCATED",
            "FREE",
            "USED",
            "VOLS",
        ]
        headers.append("PATH")
        table = [
            [
                host,
                r.name,
                r.type,
                "active" if r.active else "inactive",
                "yes" if r.autostart else "no",
                format_bytes(r.capacity) if r.active else "-",
                format_bytes(r.allocation) if r.active else "-",
                format_bytes(r.available) if r.active else "-",
                f"{100.0 * r.allocation / r.capacity:.0f}%" if r.active and r.capacity else "-",
                "-" if r.volumes is None else str(r.volumes),
                r.path or "-",
            ]
            for host, r in rows
        ]
        print(_table(headers, table), end="")
    return _failed(failed)


def _failed(failed: Sequence[str]) -> int:
    for line in failed:
        print(f"vimtui: {line}", file=sys.stderr)
    return Exit.UNREACHABLE if failed else Exit.OK


def _where(items: Sequence[str]) -> dict[str, set[str] | None]:
    """`kvm01` and `kvm02/default` as {host: pools (None: all)}."""
    out: dict[str, set[str] | None] = {}
    for item in items:
        host, sep, pool = item.partition("/")
        if not host or (sep and (not pool or "/" in pool)):
            raise UsageError(f"{item!r}: name a host (HOST) or a pool (HOST/POOL)")
        if not sep:
            out[host] = None
        elif host not in out or out[host] is not None:
            out.setdefault(host, set()).add(pool)  # type: ignore[union-attr]
    return out


async def _vol_list(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    return await _volumes(args, config, specs, _where(args.where), args.orphans)


async def _orphans(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    return await _volumes(args, config, specs, dict.fromkeys(args.hosts), True)


async def _volumes(
    args: argparse.Namespace,
    config: Config,
    specs: Sequence[HostSpec],
    where: dict[str, set[str] | None],
    orphans: bool,
) -> int:
    fleet = await started(config, specs, list(where))
    rows: list[tuple[str, view.VolumeRow]] = []
    failed: list[str] = []
    try:
        for h in fleet.state.hosts:
            pools = where.get(h.name)
            try:
                found = await fleet.ask(h.name, view.volume_rows, sorted(pools) if pools else None)
            except (QueryFailed, ActionError) as exc:
                failed.append(f"{h.name}: {exc}")
                continue
            rows += [(h.name, r) for r in found if r.orphan or not orphans]
    finally:
        await fleet.stop()
    if args.json:
        print(json.dumps([{"host": host, **asdict(r), "orphan": r.orphan} for host, r in rows], indent=2))
    else:
        headers = ["HOST", "POOL", "VOLUME", "FORMAT", "CAPACITY", "ALLOCATED", "USED BY", "BACKING"]
        table = [
            [
                host,
                r.pool,
                r.name,
                r.format or "-",
                format_bytes(r.capacity),
                format_bytes(r.allocation),
                ", ".join(r.used_by) or ("-" if not r.backs else f"backs {len(r.backs)}"),
                r.backing or "-",
            ]
            for host, r in rows
        ]
        print(_table(headers, table), end="")
        if orphans:
            total = sum(r.allocation for _h, r in rows)
            print(f"{len(rows)} orphaned volumes, {format_bytes(total)} allocated")
    return _failed(failed)
