"""`vimtui vm VERB NAME... [--host H] [--yes] [--dry-run] [--json]`: the screen's actions, headless.

The same core as the screen: names are resolved against a fresh poll, each VM gets one task (refused ones
say why), destructive verbs ask first (or take --yes), and every task is audited. Exit status: 0 when every
task succeeded, 1 when any failed or was refused, 2 for usage errors, 3 when a host needed is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vimtui.cli.argtypes import whole
from vimtui.cli.consoles import add_display_parser, run_console, run_display
from vimtui.cli.exits import Exit, UsageError
from vimtui.cli.listing import settle
from vimtui.cli.reach import connected
from vimtui.cli.screenshot import add_screenshot_verb, screenshot
from vimtui.core.actions import ACTIONS, Action, of_kind, operations
from vimtui.core.actions.params import BadArgument, Param, check_args
from vimtui.core.actions.xmledit import EditorError
from vimtui.core.config.settings import Config
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.fleet.tasks import Task
from vimtui.core.poll.host_queries import snapshots
from vimtui.core.text import shown

# -- parser -----------------------------------------------------------------------------------------


def _flags(p: argparse.ArgumentParser, *, many: bool = True) -> None:
    p.add_argument("names", metavar="NAME", nargs="+" if many else 1, help="VM name, or HOST/NAME")
    p.add_argument("--host", metavar="H", help="the host the VMs are on (when a name is on several)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before a destructive action")
    p.add_argument("--dry-run", action="store_true", help="only list what would be done")
    p.add_argument("--json", action="store_true", help="the tasks as JSON")


VERBS: dict[str, str] = {}
"""verb as typed ("start", "snapshot create") -> the action's name ("" for the verbs that are no action)."""

CLI_VERBS = {"snapshot": "snapshot create", "revert": "snapshot revert", "snapshot-delete": "snapshot delete"}
"""Actions typed as a group's verb (`vimtui vm snapshot create`) rather than by their name."""

HAND_MADE = ("create", "edit")
"""Actions whose verb is written below: creating from an image takes no VM, editing opens $EDITOR."""


TAG_CHANGES = {"+": "--add=", "-": "--remove="}


def tag_words(argv: Sequence[str]) -> list[str]:
    """`vm tag NAME +web -db` as `vm tag NAME --add=web --remove=db`: argparse would take `-db` for an
    option it does not know. Options of the verb (`--host`, `-y`) and words after `--` are left alone."""
    out = list(argv)
    try:
        at = next(i for i in range(len(out) - 1) if out[i] == "vm" and out[i + 1] == "tag") + 2
    except StopIteration:
        return out
    verb_options = ("-y", "-h")
    for i in range(at, len(out)):
        word = out[i]
        if word == "--":
            break
        if len(word) > 1 and word[0] in TAG_CHANGES and word[:2] != "--" and word not in verb_options:
            out[i] = TAG_CHANGES[word[0]] + word[1:]
    return out


def _dest(p: Param) -> str:
    return f"p_{p.name}"


def add_param(parser: argparse.ArgumentParser, p: Param) -> None:
    """One CLI option from a parameter's declaration; values are checked by check_args, not argparse, so
    the message is the one the screen shows."""
    text = p.describe() + (" (required)" if p.required else "")
    metavar = p.metavar or p.name.upper()
    if p.kind == "bool":
        parser.add_argument(
            p.option, dest=_dest(p), action=argparse.BooleanOptionalAction, default=None, help=text
        )
    elif p.kind == "list":
        parser.add_argument(p.option, dest=_dest(p), action="append", metavar=metavar, help=text)
    else:
        parser.add_argument(p.option, dest=_dest(p), metavar=metavar, help=text)


def _verb_parser(sub: Any, common: argparse.ArgumentParser, verb: str, act: Action) -> None:
    """`verb` ("start", or "snapshot create" in its group) with an option per parameter."""
    common = _common_but(common, {p.option for p in act.params})
    p = sub.add_parser(verb.rpartition(" ")[2], parents=[common], help=act.help, description=act.help)
    _flags(p, many=act.bulk)
    for param in act.params:
        add_param(p, param)
        if param.positional:  # after one VM's name; after several VMs' names, the last word and needed
            metavar = param.metavar or param.name.upper()
            p.add_argument(f"pos_{param.name}", metavar=metavar, nargs=None if act.bulk else "?")
    VERBS[verb] = act.name


def _common_but(common: argparse.ArgumentParser, options: set[str]) -> argparse.ArgumentParser:
    """The common options but those a verb's own parameters take: `vm set --config` is the config side, as
    in virsh, so there the config file is given before the verb (`vimtui --config F vm set ...`)."""
    if not any(set(a.option_strings) & options for a in common._actions):
        return common
    p = argparse.ArgumentParser(add_help=False)
    for a in common._actions:
        if not set(a.option_strings) & options:
            p._add_action(a)
    return p


def add_vm_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """`vimtui vm VERB`: a verb per VM action of the registry, with an option per parameter."""
    vm = sub.add_parser("vm", parents=[common], help="act on VMs: start, shutdown, delete, snapshot ...")
    verbs = vm.add_subparsers(dest="verb", metavar="VERB", required=True)
    VERBS.clear()
    groups: dict[str, Any] = {}
    for act in of_kind("vm"):
        if act.name in HAND_MADE:
            continue
        group, _, verb = CLI_VERBS.get(act.name, act.name).rpartition(" ")
        if not group:
            _verb_parser(verbs, common, verb, act)
            continue
        if group not in groups:
            g = verbs.add_parser(group, parents=[common], help=f"{group}s: create, list, revert, delete")
            groups[group] = g.add_subparsers(dest=f"{group}_verb", metavar="OP", required=True)
        _verb_parser(groups[group], common, f"{group} {verb}", act)
    if "snapshot" in groups:
        p = groups["snapshot"].add_parser("list", parents=[common], help="the snapshot tree of each VM")
        _flags(p)
        VERBS["snapshot list"] = ""
    _hand_made_verbs(verbs, common)


def _hand_made_verbs(verbs: Any, common: argparse.ArgumentParser) -> None:
    p = verbs.add_parser(
        "create",
        parents=[common],
        help="a new VM from a template VM or a cloud image",
        epilog="To install from an ISO: vimtui host create-iso HOST --name NAME --iso POOL/VOLUME (or "
        "--local-iso FILE, uploaded first); then vimtui vm detach-media NAME once installed.",
    )
    p.add_argument("name", metavar="NAME", help="the new VM's name")
    p.add_argument(
        "--host", required=True, metavar="H", help="where to create it; auto: the best host by placement"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--template", metavar="VM", help="a shut-off VM on that host to copy")
    src.add_argument("--image", metavar="POOL/VOLUME", help="a qcow2 cloud image in a pool of that host")
    p.add_argument("--linked", action="store_true", help="(template) qcow2 overlays, not full copies")
    p.add_argument("--vcpus", type=whole(1))
    p.add_argument("--memory", type=whole(1), metavar="MIB")
    p.add_argument("--disk", type=whole(1), metavar="GIB", help="(image) grow the disk to this size")
    p.add_argument("--pool", default="default", help="(image) pool for the new volumes (default)")
    p.add_argument("--network", default="default", help="(image) network, or bridge:NAME")
    p.add_argument("--hostname", help="(image) cloud-init hostname (default: NAME)")
    p.add_argument("--user", help="(image) cloud-init user to create")
    p.add_argument("--ssh-key", action="append", metavar="FILE", help="(image) public key file; repeatable")
    p.add_argument("--user-data", metavar="FILE", help="(image) your own cloud-init user-data instead")
    p.add_argument(
        "--package", action="append", metavar="PKG", help="(image) install at first boot; repeatable"
    )
    p.add_argument("--no-start", action="store_true", help="define it, do not start it")
    p.add_argument("--yes", "-y", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dry-run", action="store_true", help="only check and say what would be done")
    p.add_argument("--json", action="store_true", help="the task as JSON")
    VERBS["create"] = "create"
    p = verbs.add_parser("edit", parents=[common], help="edit the domain XML in $EDITOR, then redefine it")
    _flags(p, many=False)
    VERBS["edit"] = "edit"
    p = verbs.add_parser("console", parents=[common], help="attach to the serial console (escape: ctrl+])")
    _flags(p, many=False)
    VERBS["console"] = ""
    add_display_parser(verbs, common)
    add_screenshot_verb(verbs, common)
    VERBS["display"] = VERBS["screenshot"] = ""
    p = verbs.add_parser(
        "resources", parents=[common], help="vCPUs, memory, disks, pinning, tuning: live and config"
    )
    _flags(p)
    VERBS["resources"] = ""


def given_args(args: argparse.Namespace, act: Action) -> dict[str, Any]:
    """The parameters given on the command line, as typed (check_args converts and checks them)."""
    out: dict[str, Any] = {}
    for p in act.params:
        value = getattr(args, _dest(p), None)
        if value is None and p.positional:
            value = getattr(args, f"pos_{p.name}", None)
        if value is not None:
            out[p.name] = value
    return out


# -- running ----------------------------------------------------------------------------------------


def _ask(lines: Sequence[str], question: str) -> bool:
    print("\n".join(lines))
    if not sys.stdin.isatty():
        raise UsageError(f"{question}: not asking without a terminal; add --yes to go ahead")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


async def run_vm(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    verb = f"snapshot {args.snapshot_verb}" if args.verb == "snapshot" else args.verb
    action = VERBS[verb]
    act = ACTIONS.get(action)
    given: dict[str, Any] = {}
    if act is not None and verb not in HAND_MADE:
        given = given_args(args, act)
        try:  # what can be checked before any host is asked: kinds, bounds, fixed choices
            check_args(act.params, given, partial=True)
        except BadArgument as exc:
            raise UsageError(f"vm {verb}: {exc}") from exc
    if verb == "create":
        if args.host != "auto" and args.host not in {s.name for s in specs}:
            raise UsageError(f"no host {args.host!r} in the inventory")
        if args.image:
            image_args = _image_args(args)  # reads the key and user-data files: a usage error if missing
            args.names = []
        else:
            args.names = [args.template]
            typed = {"name": args.name, "vcpus": args.vcpus, "memory_mib": args.memory}
            typed |= {"linked": args.linked, "start": not args.no_start}
            try:  # the template's parameters as the form and `:create` check them
                given = check_args(
                    ACTIONS["create"].params, {k: v for k, v in typed.items() if v is not None}
                )
            except BadArgument as exc:
                raise UsageError(f"vm create: {exc}") from exc
    fleet = make_fleet(config, specs)
    await fleet.start(tick=False)
    try:
        d = config.defaults
        await connected(fleet, config)
        state = await fleet.tick(deadline=d.call_timeout)
        if config.tenant is not None or config.tenants:  # tenants are in the XML, read after the poll
            await settle(fleet, d.call_timeout)
            state = fleet.publish()
        unreachable = [h for h in state.hosts if not h.status.healthy]
        if verb == "create" and args.host == "auto":
            from vimtui.cli.capacity import choose_host

            args.host = await choose_host(fleet, args)
            if args.host is None:
                return Exit.FAILED
            state = fleet.state
        vms, errors = operations.resolve(state, args.names, args.host)
        if errors and unreachable:
            for h in unreachable:
                print(f"vimtui: {h.name}: {h.status}: {h.message}", file=sys.stderr)
        if refused := _profile_refusals(fleet, verb, act, vms, args, given):
            for why in refused:
                print(f"vimtui: error: {why}", file=sys.stderr)
            return Exit.USAGE
        if verb == "snapshot list":
            return await _list_snapshots(fleet, vms, errors, args.json)
        if verb == "resources":
            return await _resources(fleet, vms, errors, args.json)
        if verb == "console":
            return await run_console(fleet, vms, errors)
        if verb == "display":
            return await run_display(fleet, vms, errors, args)
        if verb == "screenshot":
            return await screenshot(fleet, vms, errors, args)
        if verb == "create" and args.image:
            return await _create_from_image(fleet, args, image_args)
        extra: dict[str, Any] = {}
        if act is not None and verb not in HAND_MADE:
            try:
                extra = await operations.arguments(fleet, act, vms, given)
            except BadArgument as exc:
                raise UsageError(f"vm {verb}: {exc}") from exc
        if verb == "create":
            extra = given
        if verb == "edit" and vms and not errors:
            try:
                text = await _edit(fleet, vms[0])
            except EditorError as exc:
                print(f"vimtui: {vms[0].name}: {exc}", file=sys.stderr)
                return Exit.FAILED
            if text is None:
                print(f"{vms[0].name}: unchanged, nothing to do", file=sys.stderr)
                return Exit.OK
            extra = {"xml": text}
        steps = operations.plan(state, action, vms, extra)
        if args.dry_run:
            previews = [await operations.step_preview(fleet, s) for s in steps]
            return _dry_run(steps, errors, args.json, previews)
        act = ACTIONS[action]
        runnable = [s for s in steps if s.refusal is None]
        if act.destructive and runnable and not args.yes:
            lines = await operations.preview(fleet, runnable)
            if not _ask(lines, f"{act.title}: {len(runnable)} VM(s)"):
                print("nothing done", file=sys.stderr)
                return Exit.FAILED
        tasks = operations.refuse_unresolved(fleet, action, errors, args.host)
        tasks += operations.submit(fleet, steps)
        await fleet.tasks.wait(tasks)
        _report(tasks, args.json)
        if unreachable and errors:
            return Exit.UNREACHABLE
        return Exit.OK if all(t.ok for t in tasks) else Exit.FAILED
    finally:
        await fleet.stop()
        sending = fleet.tasks.host_audit
        for problem in sending.problems if sending is not None else ():
            print(f"vimtui: warning: audit: {problem}", file=sys.stderr)


def _profile_refusals(
    fleet: Fleet,
    verb: str,
    act: Action | None,
    vms: Sequence[Any],
    args: argparse.Namespace,
    given: dict[str, Any],
) -> list[str]:
    """What the profile forbids of this command, host by host (each recorded as a refused task, so the
    audit shows it): nothing is done then, and the command exits 2, as for any request it may not make."""
    from vimtui.core.actions.console import CONSOLE_NEEDS
    from vimtui.core.actions.display import DISPLAY_NEEDS
    from vimtui.core.profiles import refusal

    if act is None and verb not in ("console", "display", "screenshot"):  # the others only look
        return []
    needs, title = (act.needs, act.title) if act is not None else (CONSOLE_NEEDS, f"The {verb}")
    needs = DISPLAY_NEEDS if verb == "display" else needs
    hosts = [(vm.host, vm.name) for vm in vms]
    if verb == "create":
        hosts = [(args.host, args.name)]
    if act is not None and act.name == "migrate" and isinstance(given.get("dest"), str):
        hosts += [(given["dest"], "")]
    out = []
    for name, vm in dict.fromkeys(hosts):
        host = fleet.state.host(name)
        why = refusal(host.profile, needs, name, title) if host is not None else None
        if why is not None:
            fleet.tasks.refuse(name, act.name if act is not None else verb, why, vm=vm)
            out.append(f"{name}/{vm}: {why}" if vm else f"{name}: {why}")
    return out


def _image_args(args: argparse.Namespace) -> dict[str, Any]:
    def read(path: str) -> str:
        try:
            return Path(path).expanduser().read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc

    out: dict[str, Any] = {
        "name": args.name,
        "image": args.image,
        "pool": args.pool,
        "network": args.network,
        "start": not args.no_start,
    }
    for key, value in (
        ("vcpus", args.vcpus),
        ("memory_mib", args.memory),
        ("disk_gib", args.disk),
        ("hostname", args.hostname),
        ("user", args.user),
    ):
        if value is not None:
            out[key] = value
    if args.ssh_key:
        out["ssh_keys"] = tuple(read(f) for f in args.ssh_key)
    if args.user_data:
        out["user_data"] = read(args.user_data)
    if args.package:
        out["packages"] = tuple(args.package)
    return out


async def _create_from_image(fleet: Fleet, args: argparse.Namespace, image_args: dict[str, Any]) -> int:
    from vimtui.core.actions.create_image import image_refusal, submit_create_from_image

    if args.dry_run:
        why = image_refusal(**image_args)
        if why is None and fleet.state.find_vm(args.name, args.host):
            why = f"a VM named {args.name!r} already exists on {args.host}"
        print(f"would {'refuse: ' + why if why else 'create'} {args.host}/{args.name} from {args.image}")
        return Exit.FAILED if why else Exit.OK
    task = submit_create_from_image(fleet, args.host, **image_args)
    await fleet.tasks.wait([task])
    _report([task], args.json)
    return Exit.OK if task.ok else Exit.FAILED


async def _edit(fleet: Fleet, vm: Any) -> str | None:
    from vimtui.core.actions import xmledit

    before = await fleet.ask(vm.host, xmledit.definition_of, vm.uuid)
    after = await asyncio.to_thread(xmledit.edit_text, before)
    return None if after is None or after == before else after


def _dry_run(
    steps: Sequence[operations.Step],
    errors: Sequence[tuple[str, str]],
    as_json: bool,
    preview: Sequence[Sequence[str]],
) -> int:
    """What would be done, step by step, with what the preview lists (a delete's volumes); exit 1 when
    any step would be refused or its preview says it cannot be done."""
    rows = [
        {
            "vm": s.vm,
            "host": s.host,
            "action": s.action.name,
            "args": dict(s.args),
            "refused": s.refusal,
            "preview": list(lines),
        }
        for s, lines in zip(steps, preview, strict=True)
    ] + [{"vm": name, "host": None, "action": None, "args": {}, "refused": why} for name, why in errors]
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for s, lines in zip(steps, preview, strict=True):
            print(f"would {s.describe()}")
            print("".join(f"  {line}\n" for line in lines), end="")
        for name, why in errors:
            print(f"would refuse {name}: {why}")
    cannot = any(line.startswith(operations.CANNOT) for lines in preview for line in lines)
    return Exit.OK if not errors and not cannot and all(s.refusal is None for s in steps) else Exit.FAILED


def _report(tasks: Sequence[Task], as_json: bool) -> None:
    if as_json:
        print(json.dumps([t.as_dict() for t in tasks], indent=2, default=str))
        return
    for t in tasks:
        where = f"{t.host}/{t.vm}" if t.host else t.vm
        text = t.result if t.ok else t.error
        print(f"{t.action} {where}: {t.state}: {text}")


async def _list_snapshots(
    fleet: Fleet, vms: Sequence[Any], errors: Sequence[tuple[str, str]], as_json: bool
) -> int:
    out: dict[str, Any] = {}
    for vm in vms:
        snaps = await fleet.ask(vm.host, snapshots, vm.uuid)
        out[f"{vm.host}/{vm.name}"] = snaps
    if as_json:
        doc = {k: [_snap_dict(s) for s in v] for k, v in out.items()}
        print(json.dumps(doc, indent=2))
    else:
        for key, snaps in out.items():
            print(f"{key}: {len(snaps)} snapshot(s)")
            depth: dict[str | None, int] = {None: 0}
            for s in snaps:
                level = depth.get(s.parent, 0) + (1 if s.parent else 0)
                depth[s.name] = level
                mark = " (current)" if s.current else ""
                kind = "external" if s.external else "internal"
                print(f"  {'  ' * level}{s.name}{mark}  [{s.state}, {kind}]  {s.description}")
    for name, why in errors:
        print(f"vimtui: {name}: {why}", file=sys.stderr)
    return Exit.FAILED if errors else Exit.OK


async def _resources(
    fleet: Fleet, vms: Sequence[Any], errors: Sequence[tuple[str, str]], as_json: bool
) -> int:
    """What each VM has, live beside config (the screen's resources tab)."""
    from vimtui.core.actions import resource_view

    doc: dict[str, Any] = {}
    for vm in vms:
        res = await fleet.ask(vm.host, resource_view.read, vm.uuid)
        doc[f"{vm.host}/{vm.name}"] = {
            title: [{"what": r.what, "live": r.live or None, "config": r.config or None} for r in rows]
            for title, rows in res.sections.items()
        }
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        for key, sections in doc.items():
            print(f"{key}:{'':<30}live                    config")
            for title, rows in sections.items():
                print(f"  {title}")
                for r in rows:
                    print(
                        f"    {shown(r['what']):<32}{shown(r['live'] or '-'):<24}{shown(r['config'] or '-')}"
                    )
    for name, why in errors:
        print(f"vimtui: {name}: {why}", file=sys.stderr)
    return Exit.FAILED if errors else Exit.OK


def _snap_dict(s: Any) -> dict[str, Any]:
    return {f: getattr(s, f) for f in s.__slots__}
