"""`vimtui audit verify [FILE ...] [--host H ...] [--json]` and `vimtui audit show [--host H] [--vm V]
[--since 1d] [--user U] [--local] [--json]`.

verify checks hash chains: this operator's log (default), given files, and the hosts' files (--host;
`--host all` for every host). Each problem is printed as FILE:LINE: what is wrong. Exit 0 when every file
checked is intact, 1 when one is not, 3 when a host's file could not be read.

show prints the records of this operator's log and of the hosts' files (all hosts, or those --host names),
merged by time, one row per record with who made it (user@machine) and where it was found. Exit 0, or 3
when a host's file could not be read (what could be read is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vimtui.cli.argtypes import parsed_by
from vimtui.cli.exits import Exit, UsageError
from vimtui.cli.reach import connected
from vimtui.cli.report import When, parse_when

if TYPE_CHECKING:
    from vimtui.core.config.settings import Config
    from vimtui.core.fleet.audit_read import Row
    from vimtui.core.fleet.audit_verify import Verdict
    from vimtui.core.fleet.fleet import Fleet
    from vimtui.core.fleet.inventory import HostSpec

ALL = "all"


def add_audit_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    help = "check the audit's hash chains, or show what operators did"
    p = sub.add_parser("audit", parents=[common], help=help, description=help)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    v = verbs.add_parser(
        "verify",
        parents=[common],
        help="find edited, removed, inserted, reordered or truncated records (exit 1 when any)",
    )
    v.add_argument("files", nargs="*", metavar="FILE", help="audit files to check (default: your own log)")
    v.add_argument(
        "--host",
        metavar="H",
        action="append",
        default=[],
        help=f"also check host H's file ('{ALL}': each)",
    )
    v.add_argument("--json", action="store_true", help="machine-readable output")
    s = verbs.add_parser("show", parents=[common], help="records of your log and the hosts' files, by time")
    s.add_argument(
        "--host", metavar="H", action="append", default=[], help="only records about host H (repeatable)"
    )
    s.add_argument("--vm", metavar="V", default="", help="only records about VM V")
    s.add_argument(
        "--since",
        metavar="WHEN",
        type=parsed_by(parse_when, "when"),
        default=None,
        help="only records since WHEN: a duration before now (1d, 90m) or a time (2024-05-01T12:00Z)",
    )
    s.add_argument("--user", metavar="U", default="", help="only records made by U (a user, or user@machine)")
    s.add_argument("--local", action="store_true", help="your own log only: do not read the hosts' files")
    s.add_argument("--json", action="store_true", help="machine-readable output")


async def run_audit(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    from vimtui.core.config.settings import data_dir
    from vimtui.core.fleet.audit import AUDIT_FILE

    log_path = data_dir() / AUDIT_FILE
    if args.verb == "verify":
        return await _verify(args, config, specs, log_path)
    return await _show(args, config, specs, log_path)


async def _fleet(config: Config, specs: Sequence[HostSpec], hosts: Sequence[str]) -> Fleet:
    from vimtui.core.fleet.startup import make_fleet

    names = {s.name for s in specs}
    unknown = [h for h in hosts if h != ALL and h not in names]
    if unknown:
        raise UsageError(f"no host {', '.join(map(repr, unknown))} in the inventory")
    wanted = [s for s in specs if not hosts or ALL in hosts or s.name in hosts]
    fleet = make_fleet(config, wanted)
    await fleet.start(tick=False)
    await connected(fleet, config)
    return fleet


async def _verify(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec], log: Path) -> int:
    from vimtui.core.fleet.audit_read import hosts_with_files, read_host_file, verify_host, verify_local
    from vimtui.core.fleet.audit_verify import Verdict

    verdicts = [await asyncio.to_thread(verify_local, Path(f)) for f in (args.files or [log])]
    unread: list[str] = []
    if args.host:
        fleet = await _fleet(config, specs, args.host)
        try:
            names = hosts_with_files(fleet, [] if ALL in args.host else args.host)
            for f in await asyncio.gather(*(read_host_file(fleet, h) for h in names)):
                if f.error:
                    unread.append(f.error)
                elif not f.exists:
                    verdicts.append(Verdict(f.name, notes=["no such file: nothing recorded on the host yet"]))
                else:
                    verdicts.append(verify_host(f))
        finally:
            await fleet.stop()
    if args.json:
        print(json.dumps({"files": [v.as_dict() for v in verdicts], "unread": unread}, indent=2))
    else:
        for v in verdicts:
            _print_verdict(v)
        for u in unread:
            print(f"vimtui: {u}", file=sys.stderr)
    if any(not v.intact for v in verdicts):
        return Exit.FAILED
    return Exit.UNREACHABLE if unread else Exit.OK


def _print_verdict(v: Verdict) -> None:
    where = f", chain from line {v.chain_start}" if v.chain_start and v.chain_start > 1 else ""
    state = "intact" if v.intact else f"BROKEN ({len(v.problems)} problem{'s' * (len(v.problems) != 1)})"
    print(f"{v.name}: {state}: {v.records} records{where}")
    for p in v.problems:
        print(f"{v.name}:{p.line}: {p.kind}: {p.message}")
    for note in v.notes:
        print(f"{v.name}: note: {note}")


async def _show(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec], log: Path) -> int:
    from vimtui.core.fleet.audit import AuditLog
    from vimtui.core.fleet.audit_read import Query, gather

    since: When | None = args.since
    query = Query(
        hosts=tuple(args.host),
        vm=args.vm,
        since=since.resolve(time.time()) if since is not None else None,
        user=args.user,
    )
    fleet = None if args.local or not specs else await _fleet(config, specs, args.host)
    try:
        got = await gather(fleet, AuditLog(log), query, hosts=not args.local)
    finally:
        if fleet is not None:
            await fleet.stop()
    if args.json:
        print(json.dumps({"records": [r.as_dict() for r in got.rows], "unread": got.problems}, indent=2))
    else:
        sys.stdout.write(_table(got.rows))
        for p in got.problems:
            print(f"vimtui: {p}", file=sys.stderr)
    return Exit.UNREACHABLE if got.problems else Exit.OK


COLUMNS = ("TIME", "OPERATOR", "HOST", "VM", "ACTION", "OUTCOME", "FOUND IN", "DETAIL")


def _table(rows: Sequence[Row]) -> str:
    from vimtui.core.text import cells, pad, shown

    lines = [
        (
            datetime.fromtimestamp(r.record.time).strftime("%Y-%m-%d %H:%M:%S"),
            shown(r.record.operator),
            shown(r.record.host),
            shown(r.record.vm),
            shown(r.record.action),
            shown(r.record.outcome),
            ",".join(shown(w) for w in r.where),
            shown(r.record.error or _args_text(r.record.args)),
        )
        for r in rows
    ]
    widths = [max([cells(c)] + [cells(ln[i]) for ln in lines]) for i, c in enumerate(COLUMNS)]
    out = [COLUMNS, *lines]
    return "".join(
        "  ".join(pad(cell, w) for cell, w in zip(row[:-1], widths, strict=False)) + "  " + row[-1] + "\n"
        for row in out
    )


def _args_text(args: Any) -> str:
    if not isinstance(args, dict) or not args:
        return ""
    return " ".join(f"{k}={v}" for k, v in args.items())
