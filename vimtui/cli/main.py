"""Command-line entry: no subcommand opens the TUI; subcommands run the same core headless.

Exit status: 0 ok, 1 an action failed, 2 usage or config error, 3 a host unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import Any

from vimtui import __version__
from vimtui.cli.argtypes import seconds, whole
from vimtui.cli.exits import Exit, UsageError
from vimtui.cli.reach import Unreachable
from vimtui.core.config.settings import ConfigError
from vimtui.core.fleet.inventory import InventoryError
from vimtui.core.profiles import PROFILES, Profile, as_profile


class _Gather(argparse.Action):
    """Appends each value to the one list it was given (its `const`): every level of subcommands parses
    into a namespace of its own and argparse copies the innermost one's values over the outer ones', so
    a value given before the subcommand and one given after it would not both survive in the namespace."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, _opt: Any = None
    ) -> None:
        self.const.append(values)


def _common(given: dict[str, list[str]]) -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand (and after a subcommand's verb), gathered into
    `given` wherever they appear (see `merge_common`)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--config",
        action=_Gather,
        const=given["config"],
        dest="given_config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: $VIMTUI_CONFIG, else ~/.config/vimtui/config.toml)",
    )
    p.add_argument(
        "--connect",
        action=_Gather,
        const=given["connect"],
        dest="given_connect",
        metavar="URI",
        default=argparse.SUPPRESS,
        help="add a host: ssh://user@host[:port] or any libvirt URI (repeatable)",
    )
    p.add_argument(
        "--profile",
        action=_Gather,
        const=given["profile"],
        dest="given_profile",
        choices=PROFILES,
        default=argparse.SUPPRESS,
        help="what may be done, on every host for this run: viewer (look only, libvirt's read-only "
        "socket), operator (lifecycle, console, snapshots, migrate) or admin (everything); default: "
        "the config's `profile` keys, else admin",
    )
    p.add_argument(
        "--tenant",
        action=_Gather,
        const=given["tenant"],
        dest="given_tenant",
        metavar="T",
        default=argparse.SUPPRESS,
        help="see and act on only tenant T's VMs (default: the config's `tenant`, else all)",
    )
    return p


def given_profile(args: argparse.Namespace) -> Profile | None:
    """--profile from wherever it was given (given more than once, the values must agree); for --wall
    without it, viewer: a wall display only looks, connected read-only whatever the config says."""
    given: dict[str, list[str]] = getattr(args, "given", {})
    values = list(dict.fromkeys(given.get("profile", [])))
    if len(values) > 1:
        raise UsageError(f"--profile given more than once: {', '.join(values)}; give one")
    if values:
        return as_profile(values[0])
    return "viewer" if getattr(args, "wall", False) and getattr(args, "command", None) is None else None


def merge_common(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """(--config, --connect) from wherever they were given: every --connect in order; one --config (given
    more than once, the values must agree)."""
    given: dict[str, list[str]] = getattr(args, "given", {})
    configs = list(dict.fromkeys(given.get("config", [])))
    if len(configs) > 1:
        raise UsageError(f"--config given more than once: {', '.join(map(repr, configs))}; give one")
    return (configs[0] if configs else None), list(given.get("connect", []))


def given_tenant(args: argparse.Namespace) -> str | None:
    """--tenant from wherever it was given (given more than once, the values must agree)."""
    from vimtui.core.config.loading import valid_tenant

    tenants = list(dict.fromkeys(getattr(args, "given", {}).get("tenant", [])))
    if len(tenants) > 1:
        raise UsageError(f"--tenant given more than once: {', '.join(map(repr, tenants))}; give one")
    if tenants and (why := valid_tenant(tenants[0])) is not None:
        raise UsageError(f"--tenant {tenants[0]!r}: {why}")
    return tenants[0] if tenants else None


def build_parser() -> argparse.ArgumentParser:
    given: dict[str, list[str]] = {"config": [], "connect": [], "profile": [], "tenant": []}
    common = _common(given)
    parser = argparse.ArgumentParser(
        prog="vimtui",
        description="A terminal manager for fleets of libvirt hosts.",
        parents=[common],
    )
    parser.set_defaults(given=given)
    parser.add_argument("--version", action="version", version=f"vimtui {__version__}")
    parser.add_argument(
        "--wall",
        action="store_true",
        help="read-only NOC display: large graphs per group, no action keys, the viewer profile on every "
        "host (libvirt's read-only socket) unless --profile says otherwise",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("hosts", parents=[common], help="list hosts with their state and capacity")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("vms", parents=[common], help="list VMs")
    p.add_argument("--host", metavar="H", action="append", help="only VMs on host H (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("tenants", parents=[common], help="each tenant's use against its quota")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("stats", parents=[common], help="per-VM and per-host rates (two polls or more)")
    p.add_argument("--host", metavar="H", action="append", help="only host H (repeatable)")
    p.add_argument(
        "--interval",
        metavar="S",
        type=seconds(),
        default=None,
        help="seconds between polls (default: the config's interval)",
    )
    p.add_argument(
        "--count", metavar="N", type=whole(1, 10**6), default=1, help="samples to print (default 1)"
    )
    p.add_argument("--json", action="store_true", help="one JSON document per sample (JSON Lines)")
    from vimtui.cli.vm import add_vm_parser

    add_vm_parser(sub, common)
    from vimtui.cli.host import add_host_parser

    add_host_parser(sub, common)
    from vimtui.cli.storage import add_storage_parsers

    add_storage_parsers(sub, common)
    from vimtui.cli.net import add_net_parser

    add_net_parser(sub, common)
    from vimtui.cli.capacity import add_capacity_parsers

    add_capacity_parsers(sub, common)
    from vimtui.cli.export import add_export_parser

    add_export_parser(sub, common)
    from vimtui.cli.report import add_report_parser

    add_report_parser(sub, common)
    from vimtui.cli.trust import add_trust_parser

    add_trust_parser(sub, common)
    from vimtui.cli.access import add_access_parser

    add_access_parser(sub, common)
    from vimtui.cli.lint import add_lint_parser

    add_lint_parser(sub, common)
    from vimtui.cli.audit import add_audit_parser

    add_audit_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from vimtui.cli.vm import tag_words

    parser = build_parser()
    args = parser.parse_args(tag_words(sys.argv[1:] if argv is None else argv))
    if args.command is None or (args.command == "vm" and args.verb == "console"):
        return _main(args)  # the screen, or the guest's console: the terminal is theirs
    from vimtui.cli.safe_output import neutralised_output

    with neutralised_output():  # names and messages from hosts are printed as text
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    from vimtui.core.fleet.startup import load_inventory

    try:
        config_path, connect = merge_common(args)
        config, specs = load_inventory(config_path, connect, profile=given_profile(args))
        if (tenant := given_tenant(args)) is not None:
            config = dataclasses.replace(config, tenant=tenant)
    except (ConfigError, InventoryError, UsageError) as exc:
        print(f"vimtui: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    from vimtui.core.fleet.startup import tune_gc

    try:
        if args.command is None:
            # Textual reads its frame cap when it is imported: the config's, unless the user set one
            os.environ.setdefault("TEXTUAL_FPS", str(config.defaults.max_fps))
            from vimtui.ui.app import run_app

            tune_gc()
            return run_app(config, specs, wall=args.wall)
        if args.command == "report":
            from vimtui.cli.report import run_report

            return run_report(args, config)
        tune_gc()
        if args.command == "vm":
            from vimtui.cli.vm import run_vm

            return asyncio.run(run_vm(args, config, specs))
        if args.command == "net":
            from vimtui.cli.net import run_net

            return asyncio.run(run_net(args, config, specs))
        if args.command == "host":
            from vimtui.cli.host import run_host

            return asyncio.run(run_host(args, config, specs))
        if args.command == "pool":
            from vimtui.cli.storage import run_pool

            return asyncio.run(run_pool(args, config, specs))
        if args.command == "vol":
            from vimtui.cli.storage import run_vol

            return asyncio.run(run_vol(args, config, specs))
        if args.command == "trust":
            from vimtui.cli.trust import run_trust

            return asyncio.run(run_trust(args, config, specs))
        if args.command == "access":
            from vimtui.cli.access import run_access

            return asyncio.run(run_access(args, config, specs))
        if args.command == "lint":
            from vimtui.cli.lint import run_lint

            return asyncio.run(run_lint(args, config, specs))
        if args.command == "audit":
            from vimtui.cli.audit import run_audit

            return asyncio.run(run_audit(args, config, specs))
        if args.command in ("capacity", "place"):
            from vimtui.cli.capacity import run_capacity

            return asyncio.run(run_capacity(args, config, specs))
        if args.command == "export":
            from vimtui.cli.export import run_export

            return asyncio.run(run_export(args, config, specs))
        from vimtui.cli.listing import run as run_listing

        return asyncio.run(run_listing(args, config, specs))
    except (UsageError, RuntimeError) as exc:  # RuntimeError: an unsafe runtime dir
        print(f"vimtui: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    except Unreachable as exc:
        print(f"vimtui: {exc}", file=sys.stderr)
        return Exit.UNREACHABLE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: said in one line, never as a traceback
        print(f"vimtui: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return Exit.FAILED


if __name__ == "__main__":
    sys.exit(main())
