"""Command-line entry: no subcommand opens the TUI; subcommands run the same core headless."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vimtui import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vimtui", description="A terminal manager for fleets of libvirt hosts."
    )
    parser.add_argument("--version", action="version", version=f"vimtui {__version__}")
    parser.add_argument("--config", metavar="PATH", help="config file (default: XDG config dir)")
    parser.add_argument(
        "--connect",
        metavar="URI",
        action="append",
        default=[],
        help="add a host: ssh://user@host[:port] or any libvirt URI (repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from vimtui.ui.app import run_app

    return run_app(config_path=args.config, connect=args.connect)


if __name__ == "__main__":
    sys.exit(main())
