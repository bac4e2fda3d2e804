"""Command-line entry: no subcommand opens the TUI; subcommands run the same core headless.

Exit status: 0 ok, 1 an action failed, 2 usage or config error, 3 a host unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from vimtui import __version__
from vimtui.core.config.settings import ConfigError
from vimtui.core.fleet.inventory import InventoryError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def _common() -> argparse.ArgumentParser:
    """Options accepted before and after the subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: $VIMTUI_CONFIG, else ~/.config/vimtui/config.toml)",
    )
    p.add_argument(
        "--connect",
        metavar="URI",
        action="append",
        default=argparse.SUPPRESS,
        help="add a host: ssh://user@host[:port] or any libvirt URI (repeatable)",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="vimtui", description="A terminal manager for fleets of libvirt hosts.", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"vimtui {__version__}")
    parser.add_argument(
        "--wall", action="store_true", help="read-only NOC display: large graphs per group, no action keys"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("hosts", parents=[common], help="list hosts with their state and capacity")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("vms", parents=[common], help="list VMs")
    p.add_argument("--host", metavar="H", action="append", help="only VMs on host H (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("stats", parents=[common], help="per-VM and per-host rates (two polls or more)")
    p.add_argument("--host", metavar="H", action="append", help="only host H (repeatable)")
    p.add_argument(
        "--interval",
        metavar="S",
        type=_positive,
        default=None,
        help="seconds between polls (default: the config's interval)",
    )
    p.add_argument("--count", metavar="N", type=_count, default=1, help="samples to print (default 1)")
    p.add_argument("--json", action="store_true", help="one JSON document per sample (JSON Lines)")
    from vimtui.cli.vm import add_vm_parser

    add_vm_parser(sub, common)
    from vimtui.cli.export import add_export_parser

    add_export_parser(sub, common)
    from vimtui.cli.report import add_report_parser

    add_report_parser(sub, common)
    return parser


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1: {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config_path = getattr(args, "config", None)
    connect = getattr(args, "connect", [])
    from vimtui.core.fleet.startup import load_inventory

    try:
        config, specs = load_inventory(config_path, connect)
    except (ConfigError, InventoryError) as exc:
        print(f"vimtui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from vimtui.cli import listing as headless
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
        if args.command == "export":
            from vimtui.cli.export import run_export

            return asyncio.run(run_export(args, config, specs))
        return asyncio.run(headless.run(args, config, specs))
    except (
        headless.UsageError,
        vm_usage_error(),
        RuntimeError,
    ) as exc:  # RuntimeError: an unsafe runtime dir
        print(f"vimtui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def vm_usage_error() -> type[Exception]:
    from vimtui.cli.vm import UsageError

    return UsageError


if __name__ == "__main__":
    sys.exit(main())
