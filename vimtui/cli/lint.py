"""`vimtui lint [--json] [--fail-on S] [--host H] [--rules]`: fleet lint (compliance checks) over every
host, printed as findings (worst first) with a reason and how to fix each.

Exit status: 0 no finding reached --fail-on (default: error); 1 one did; 2 usage or config error; 3 a host
could not be read (the others are still linted and printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vimtui.cli.exits import Exit, UsageError

if TYPE_CHECKING:
    from vimtui.core.config.settings import Config
    from vimtui.core.fleet.inventory import HostSpec
    from vimtui.core.lint.run import LintResult

SEVERITIES = ("info", "warning", "error")


def add_lint_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    help = "fleet lint: what is unsafe or will break, per VM and host, with how to fix it"
    p = sub.add_parser("lint", parents=[common], help=help, description=help)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default="error",
        help="exit 1 when a finding is at least this severe (default error)",
    )
    p.add_argument("--host", metavar="H", action="append", help="only findings about host H (repeatable)")
    p.add_argument("--rules", action="store_true", help="list the rules (ids for [lint] off) and exit")


def rules_text() -> str:
    from vimtui.core.lint.catalog import RULES

    width = max(len(r) for r in RULES)
    lines = [
        f"{r.id:<{width}}  {r.severity:<7}  {r.scope:<4}  {r.title}{'  (fix)' if r.fixable else ''}"
        for r in RULES.values()
    ]
    return "\n".join(lines) + "\n"


async def run_lint(args: argparse.Namespace, config: Config, specs: Sequence[HostSpec]) -> int:
    if args.rules:
        sys.stdout.write(rules_text())
        return Exit.OK
    from vimtui.cli.reach import connected
    from vimtui.core.fleet.startup import make_fleet
    from vimtui.core.lint.catalog import rank
    from vimtui.core.lint.run import lint_fleet

    wanted = args.host or []
    unknown = [h for h in wanted if h not in {s.name for s in specs}]
    if unknown:
        raise UsageError(f"no such host: {', '.join(unknown)} (known: {', '.join(s.name for s in specs)})")
    if not specs:
        raise UsageError("no hosts: add [[hosts]] to the config or use --connect URI")
    fleet = make_fleet(config, specs)
    await fleet.start(tick=False)
    try:
        await connected(fleet, config)
        result = await lint_fleet(fleet, config.lint)  # every host: duplicates are across the fleet
    finally:
        await fleet.stop()
    if wanted:
        result = _only(result, wanted)
    sys.stdout.write(json.dumps(as_json(result), indent=2) + "\n" if args.json else as_text(result))
    for host, why in result.failed:
        print(f"vimtui: {host}: not linted: {why}", file=sys.stderr)
    if result.failed:
        return Exit.UNREACHABLE
    worst = max((rank(f.severity) for f in result.findings), default=-1)
    return Exit.FAILED if worst >= rank(args.fail_on) else Exit.OK


def _only(result: LintResult, hosts: list[str]) -> LintResult:
    from dataclasses import replace

    return replace(
        result,
        findings=tuple(f for f in result.findings if f.host in hosts),
        failed=tuple(x for x in result.failed if x[0] in hosts),
    )


def as_json(result: LintResult) -> dict[str, Any]:
    return {
        "at": result.at,
        "hosts": list(result.linted),
        "failed": [{"host": h, "reason": why} for h, why in result.failed],
        "findings": [
            {
                "rule": f.rule,
                "severity": f.severity,
                "host": f.host,
                "vm": f.vm or None,
                "uuid": f.uuid or None,
                "subject": f.subject,
                "reason": f.reason,
                "fix": f.fix,
                "fixable": f.fixable,
            }
            for f in result.findings
        ],
    }


def as_text(result: LintResult) -> str:
    from vimtui.core.report.cells import plural

    out = []
    for f in result.findings:
        fix = f"    fix: {f.fix}" + (
            "  [vimtui vm lint-fix " + f"{f.vm} --rule {f.rule}]" if f.fixable else ""
        )
        out.append(f"{f.severity.upper():<7}  {f.where}  {f.rule}: {f.reason}\n{fix}\n")
    counts = {s: sum(1 for f in result.findings if f.severity == s) for s in SEVERITIES}
    summary = f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}"
    summary += f", {counts['info']} info"
    out.append(f"{plural(len(result.linted), 'host')} linted: {summary}\n")
    return "".join(out)
