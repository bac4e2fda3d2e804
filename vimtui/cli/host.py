"""`vimtui host VERB H [VALUE] [--yes] [--dry-run] [--json]`: the host actions of the registry, headless.

One verb per host action, an option per parameter; VALUE fills the action's first required parameter
(`vimtui host maintenance kvm02 on`). The same checks and tasks as the screen; exit 0 when the task
succeeded, 1 when it failed or was refused, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from vimtui.cli.exits import Exit, UsageError
from vimtui.cli.reach import connected
from vimtui.cli.vm import add_param, given_args
from vimtui.core.actions import Action, of_kind, operations
from vimtui.core.actions.params import BadArgument, check_args
from vimtui.core.config.settings import Config
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.fleet.tasks import Task

HAND_MADE: set[str] = set()
"""Host actions whose verb another module writes (it adds the name here before the parser is built)."""


def add_host_parser(sub: Any, common: argparse.ArgumentParser) -> Any:
    """`vimtui host VERB`: a verb per host action; returns the verbs' subparsers for hand-made ones."""
    p = sub.add_parser("host", parents=[common], help="act on hosts: maintenance ...")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for act in of_kind("host"):
        if act.name in HAND_MADE:
            continue
        v = verbs.add_parser(act.name, parents=[common], help=act.help, description=act.help)
        v.add_argument("host_name", metavar="H", help="the host")
        first = _first_required(act)
        if first is not None:
            v.add_argument(
                "value", nargs="?", metavar=first.metavar or first.name.upper(), help=first.describe()
            )
        v.add_argument("--yes", "-y", action="store_true", help="do not ask before a destructive action")
        v.add_argument("--dry-run", action="store_true", help="only say what would be done")
        v.add_argument("--json", action="store_true", help="the task as JSON")
        for param in act.params:
            add_param(v, param)
    return verbs


def _first_required(act: Action) -> Any:
    return next((p for p in act.params if p.required), None)


def given(args: argparse.Namespace, act: Action) -> dict[str, Any]:
    out = given_args(args, act)
    first = _first_required(act)
    value = getattr(args, "value", None)
    if first is not None and value is not None:
        if first.name in out and out[first.name] != value:
            raise UsageError(f"host {act.name}: {first.name} given twice ({value!r} and {out[first.name]!r})")
        out[first.name] = value
    return out


async def run_host(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    act = operations.host_action(args.verb)
    try:
        typed = check_args(act.params, given(args, act))
    except BadArgument as exc:
        raise UsageError(f"host {act.name}: {exc}") from exc
    if args.host_name not in {s.name for s in specs}:
        known = ", ".join(s.name for s in specs) or "none"
        raise UsageError(f"no host {args.host_name!r} in the inventory (hosts: {known})")
    if not act.connects:  # vimtui's own records: no host needs to answer, nor any other to connect
        specs = [s for s in specs if s.name == args.host_name]
    fleet = make_fleet(config, specs)
    if fleet.maintenance.problem:
        print(f"vimtui: {fleet.maintenance.problem}", file=sys.stderr)
    try:
        if act.connects:
            await fleet.start(tick=False)
            await connected(fleet, config)
            state = await fleet.tick(deadline=config.defaults.call_timeout)
        else:
            state = fleet.publish()
        hosts, _errors = operations.resolve_hosts(state, [args.host_name])
        if refused := [(h.name, why) for h in hosts if (why := act.profile_refusal(h)) is not None]:
            for name, why in refused:  # as for any request it may not make: exit 2, recorded
                fleet.tasks.refuse(name, act.name, why)
                print(f"vimtui: error: {name}: {why}", file=sys.stderr)
            return Exit.USAGE
        steps = operations.plan_hosts(state, act.name, hosts, typed)
        if args.dry_run:
            return _dry_run(steps, args.json, [await operations.step_preview(fleet, s) for s in steps])
        runnable = [s for s in steps if s.refusal is None]
        if act.destructive and runnable and not args.yes:
            lines = await operations.preview(fleet, runnable)
            if not _confirm(lines, f"{act.title} {args.host_name}?"):
                print("nothing done", file=sys.stderr)
                return Exit.FAILED
        tasks = operations.submit(fleet, steps)
        await fleet.tasks.wait(tasks)
        _report(tasks, args.json)
        return Exit.OK if all(t.ok for t in tasks) else Exit.FAILED
    finally:
        await fleet.stop()


def _confirm(lines: Sequence[str], question: str) -> bool:
    print("\n".join(lines))
    if not sys.stdin.isatty():
        raise UsageError(f"{question} not asking without a terminal; add --yes to go ahead")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _dry_run(steps: Sequence[operations.Step], as_json: bool, preview: Sequence[Sequence[str]]) -> int:
    """What would be done, with what its preview lists (an evacuation's plan); exit 1 when a step would be
    refused or its preview says it cannot be done."""
    if as_json:
        rows = [
            {
                "host": s.host,
                "action": s.action.name,
                "args": dict(s.args),
                "refused": s.refusal,
                "preview": list(lines),
            }
            for s, lines in zip(steps, preview, strict=True)
        ]
        print(json.dumps(rows, indent=2, default=str))
    else:
        for s, lines in zip(steps, preview, strict=True):
            print(f"would {s.describe()}")
            print("".join(f"  {line}\n" for line in lines), end="")
    cannot = any(line.startswith(operations.CANNOT) for lines in preview for line in lines)
    return Exit.OK if not cannot and all(s.refusal is None for s in steps) else Exit.FAILED


def _report(tasks: Sequence[Task], as_json: bool) -> None:
    if as_json:
        print(json.dumps([t.as_dict() for t in tasks], indent=2, default=str))
        return
    for t in tasks:
        print(f"{t.action} {t.host}: {t.state}: {t.result if t.ok else t.error}")
