"""`vimtui pool VERB HOST/POOL`, `vimtui vol VERB HOST/POOL/VOL` (and `vimtui net VERB HOST/NET`): the actions
of the registry on targets named within a host, headless.

One verb per action of the kind, an option per parameter (and those declared positional after the
target: `vimtui vol resize kvm01/default/web.qcow2 +10G`); the same checks and tasks as the screen,
destructive verbs ask first (or take --yes), --dry-run says what would be done and what it would touch.
Exit 0 when every task succeeded, 1 when one failed or was refused, 2 for usage errors, 3 when the host
does not answer. A module with verbs of its own (a listing) adds them through `extra`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from vimtui.cli.exits import Exit, UsageError
from vimtui.cli.progress import INTERRUPTED, wait_showing
from vimtui.cli.reach import connected
from vimtui.cli.vm import add_param, given_args
from vimtui.core.actions import of_kind, operations, targets
from vimtui.core.actions.params import BadArgument, check_args
from vimtui.core.config.settings import Config
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.fleet.tasks import Task

KIND_OF = {group: kind for kind, group in targets.GROUP.items()}
"""`vol` -> `volume`: the CLI group's target kind."""

HAND_MADE: dict[str, set[str]] = {"pool": set(), "volume": set(), "network": set()}
"""Per kind, actions whose verb another module writes (it adds the name before the parser is built)."""


def add_target_parser(sub: Any, common: argparse.ArgumentParser, kind: str, help_text: str) -> Any:
    """`vimtui GROUP VERB TARGET`: a verb per action of `kind`; returns the verbs' subparsers so that a
    module can add verbs of its own (`list`)."""
    group = targets.GROUP[kind]
    p = sub.add_parser(group, parents=[common], help=help_text)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for act in of_kind(kind):
        if act.name in HAND_MADE[kind]:
            continue
        v = verbs.add_parser(act.name, parents=[common], help=act.help, description=act.help)
        v.add_argument("target", metavar=targets.SPELLING[kind], help=f"the {kind}")
        for param in act.params:
            add_param(v, param)
            if param.positional:
                v.add_argument(f"pos_{param.name}", metavar=param.metavar or param.name.upper(), nargs="?")
        v.add_argument("--yes", "-y", action="store_true", help="do not ask before a destructive action")
        v.add_argument("--dry-run", action="store_true", help="only say what would be done")
        v.add_argument("--json", action="store_true", help="the task as JSON")
    return verbs


async def started(config: Config, specs: Sequence[HostSpec], hosts: Sequence[str]) -> Fleet:
    """A fleet of the hosts named (all when none), connected, after one poll. UsageError for a name the
    inventory does not have."""
    names = {s.name for s in specs}
    unknown = [h for h in hosts if h not in names]
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise UsageError(f"no host {unknown[0]!r} in the inventory (hosts: {known})")
    if hosts:
        specs = [s for s in specs if s.name in set(hosts)]
    fleet = make_fleet(config, specs)
    await fleet.start(tick=False)
    try:
        await connected(fleet, config)
        await fleet.tick(deadline=config.defaults.call_timeout)
    except BaseException:
        await fleet.stop()
        raise
    return fleet


def host_of(text: str, kind: str, specs: Sequence[HostSpec]) -> str | None:
    """The host a target names (None: the inventory's only host is meant)."""
    host, sep, _rest = text.partition("/")
    if sep and len(text.split("/")) == targets.PARTS[kind] + 1:
        return host
    return None


async def run_target(
    args: argparse.Namespace,
    config: Config,
    specs: Sequence[HostSpec],
    kind: str,
    extra: dict[str, Callable[..., Any]] | None = None,
) -> int:
    """Run the verb `args.verb` of the group of `kind` (a verb in `extra` runs as its own function)."""
    if extra and args.verb in extra:
        return int(await extra[args.verb](args, config, specs))
    act = operations.target_action(kind, args.verb)
    try:
        typed = check_args(act.params, given_args(args, act))
    except BadArgument as exc:
        raise UsageError(f"{targets.GROUP[kind]} {act.name}: {exc}") from exc
    host = host_of(args.target, kind, specs)
    fleet = await started(config, specs, [host] if host else [])
    try:
        state = fleet.state
        try:
            ref = targets.parse(kind, args.target, state)
        except targets.BadTarget as exc:
            raise UsageError(str(exc)) from exc
        h = state.host(ref.host)
        if h is not None and (why := act.profile_refusal(h)) is not None:
            fleet.tasks.refuse(ref.host, operations.task_name(act), why, vm=ref.name)
            print(f"vimtui: error: {ref.where}: {why}", file=sys.stderr)
            return Exit.USAGE
        steps = operations.plan_targets(state, act, [ref], typed)
        if args.dry_run:
            return dry_run(steps, args.json, [await operations.step_preview(fleet, s) for s in steps])
        runnable = [s for s in steps if s.refusal is None]
        if act.destructive and runnable and not args.yes:
            lines = await operations.preview(fleet, runnable)
            # what the host already says it cannot do is not asked about: its task refuses it, recorded;
            # asked on a thread: the loop goes on meanwhile (SSH keepalives, or the host drops off)
            cannot = any(operations.CANNOT in line for line in lines)
            if not cannot and not await asyncio.to_thread(confirm, lines, f"{act.title} {ref.where}?"):
                print("nothing done", file=sys.stderr)
                return Exit.FAILED
        tasks = operations.submit(fleet, steps)
        interrupted = await wait_showing(fleet, tasks)
        report(tasks, args.json)
        if interrupted:
            return INTERRUPTED
        return Exit.OK if all(t.ok for t in tasks) else Exit.FAILED
    finally:
        await fleet.stop()


def confirm(lines: Sequence[str], question: str) -> bool:
    print("\n".join(lines))
    if not sys.stdin.isatty():
        raise UsageError(f"{question} not asking without a terminal; add --yes to go ahead")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def dry_run(steps: Sequence[operations.Step], as_json: bool, preview: Sequence[Sequence[str]]) -> int:
    """What would be done and what it would touch; exit 1 when a step would be refused or its preview says
    it cannot be done."""
    if as_json:
        rows = [
            {
                "host": s.host,
                "target": s.vm,
                "action": s.action.id,
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


def report(tasks: Sequence[Task], as_json: bool) -> None:
    if as_json:
        print(json.dumps([t.as_dict() for t in tasks], indent=2, default=str))
        return
    for t in tasks:
        print(f"{t.action} {t.host}/{t.vm}: {t.state}: {t.result if t.ok else t.error}")
