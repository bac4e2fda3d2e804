"""`vimtui report [--since 24h] [--until T] [--host H] [--group G] [--tenant T] [--format F] [-o FILE]`:
per VM and per host figures over a window, from the lasting history (see vimtui.core.report.model).

The archive is opened read-only, so a report runs beside a screen or an exporter that writes it. The
format is --format, else the output file's extension (.csv, .json, .md, .html), else Markdown.

Exit status: 0 a report was written; 1 nothing to report (no history yet, or nothing recorded in the window
that passes the filters); 2 usage errors, a config error, an archive that cannot be read (damaged, not an
archive, written by a newer vimtui) or an output file that cannot be written.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vimtui.cli.argtypes import parsed_by, whole
from vimtui.cli.exits import Exit
from vimtui.core.units import parse_duration

if TYPE_CHECKING:  # the parser is built for every command: the report's modules load when it runs
    from vimtui.core.config.settings import Config

FORMATS = ("csv", "json", "md", "html")
"""As vimtui.core.report.model.FORMATS (checked by a test), without importing it for every command."""
DEFAULT_SINCE = "24h"


@dataclass(frozen=True, slots=True)
class When:
    """A point in time from the command line: `ago` seconds before now, or an absolute time."""

    ago: float | None = None
    at: float | None = None

    def resolve(self, now: float) -> float:
        return self.at if self.at is not None else now - (self.ago or 0.0)


def parse_when(text: str) -> When:
    """A time from the command line: "now"; a duration before now ("90m", "7d", "2h30m", "45s"); an ISO
    8601 time ("2024-05-01T12:00Z", "2024-05-01 12:00" in local time without an offset); or "@" and epoch
    seconds. ValueError otherwise."""
    value = text.strip()
    if value.lower() == "now":
        return When(ago=0.0)
    if value.startswith("@"):
        try:
            at = float(value[1:])
        except ValueError:
            raise ValueError(f"not epoch seconds: {text!r}") from None
        if not math.isfinite(at):
            raise ValueError(f"not epoch seconds: {text!r}")
        return When(at=at)
    seconds = parse_duration(value)
    if seconds is not None:
        return When(ago=seconds)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(
            f"expected a duration before now (90m, 7d, 2h30m) or a time (2024-05-01T12:00Z): {text!r}"
        ) from None
    return When(at=moment.timestamp())


def add_report_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    help = "per-VM and per-host averages, peaks, uptime, state changes and alerts from the history"
    p = sub.add_parser("report", parents=[common], help=help, description=help)
    p.add_argument(
        "--since",
        metavar="WHEN",
        type=parsed_by(parse_when, "when"),
        default=None,
        help=f"start of the window: a duration before now (90m, 7d, 2h30m) or a time "
        f"(2024-05-01T12:00Z, @EPOCH; local time without an offset) (default {DEFAULT_SINCE})",
    )
    p.add_argument(
        "--until",
        metavar="WHEN",
        type=parsed_by(parse_when, "when"),
        default=None,
        help="end of the window (default now)",
    )
    p.add_argument("--host", metavar="H", help="only host H and its VMs")
    p.add_argument("--group", metavar="G", help="only hosts in group G or below it (dc1 matches dc1/rack3)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: from the -o file's extension, else md)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically) instead of stdout")
    p.add_argument(
        "--top",
        metavar="N",
        type=whole(0, 1000),
        default=5,
        help="VMs charted in md and html: the N busiest by average CPU (default 5)",
    )


def choose_format(fmt: str | None, output: str | None) -> str:
    if fmt:
        return fmt
    if output and output != "-":
        suffix = Path(output).suffix.lower().lstrip(".")
        suffix = {"htm": "html", "markdown": "md"}.get(suffix, suffix)
        if suffix in FORMATS:
            return suffix
    return "md"


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _say(message: str) -> None:
    print(f"vimtui: {message}", file=sys.stderr, flush=True)


def run_report(
    args: argparse.Namespace,
    config: Config,
    env: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.time,
) -> int:
    from vimtui.core.config.settings import data_dir
    from vimtui.core.fleet.startup import HISTORY_FILE, open_archive
    from vimtui.core.report.cells import plural
    from vimtui.core.report.model import Filters, build_report
    from vimtui.core.report.render import render

    now = clock()
    since = (args.since or parse_when(DEFAULT_SINCE)).resolve(now)
    until = args.until.resolve(now) if args.until is not None else now
    if not since < until:
        _say(f"error: the window is empty: --since is not before --until ({since:.0f} >= {until:.0f})")
        return Exit.USAGE
    fmt = choose_format(args.format, args.output)
    path = data_dir(env) / HISTORY_FILE
    if not path.exists():
        _say(f"no history at {path}: the screen (vimtui) and `vimtui export` keep it while they run")
        return Exit.FAILED
    problems: list[str] = []
    # the archive's problems come back through `problems` and are said once, below (not also by logging's
    # last-resort handler)
    logging.getLogger("vimtui.core.monitor.archive").addHandler(logging.NullHandler())
    archive = open_archive(config, env, problems.append, read_only=True)
    try:
        filters = Filters(host=args.host, group=args.group, tenant=config.tenant)
        report = (
            build_report(archive, since, until, filters, top=args.top, clock=clock) if not problems else None
        )
    finally:
        archive.close()
    if problems or report is None:
        _say(f"error: {problems[0] if problems else f'history archive {path} cannot be read'}")
        return Exit.USAGE
    if report.empty:
        what = f" for {report.filters.describe()}" if report.filters.describe() else ""
        _say(
            f"nothing recorded{what} from {_utc(since)} to {_utc(until)} in {path} "
            "(see --since, --host, --group, --tenant)"
        )
        return Exit.FAILED
    text = render(report, fmt)
    if args.output and args.output != "-":
        out = Path(args.output)
        try:
            write_atomically(out, text)
        except OSError as exc:
            _say(f"error: cannot write {out}: {exc.strerror or exc}")
            return Exit.USAGE
        _say(f"wrote {out} ({fmt}: {plural(len(report.hosts), 'host')}, {plural(len(report.vms), 'VM')})")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return Exit.OK


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
