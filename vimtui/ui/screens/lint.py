"""`:lint`: fleet lint's findings (worst first), the selected one's reason and how to fix it, and its fix
(vm.lint-fix, admin, audited as every task) where one is safe.

The core collects each host's facts on its lane and runs the rules (vimtui.core.lint); this screen asks
for a run when it opens and on `r`, and shows the result. The VM actions' keys act on the selected
finding's VM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from vimtui.core.lint.rules import Finding
from vimtui.core.lint.run import LintResult, lint_fleet
from vimtui.core.model import VmState
from vimtui.ui.format import literal
from vimtui.ui.vm_actions import ActionsMixin, why_not
from vimtui.ui.widgets.key_bar import KeyBar

if TYPE_CHECKING:
    from vimtui.ui.app import VimApp

SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "cyan"}


def summary(result: LintResult) -> Text:
    counts = {s: sum(1 for f in result.findings if f.severity == s) for s in SEVERITY_STYLE}
    text = Text("lint", style="bold")
    text.append(f"  {len(result.linted)} host(s): ")
    for i, (severity, n) in enumerate(counts.items()):
        text.append(", " if i else "")
        text.append(f"{n} {severity}", SEVERITY_STYLE[severity] if n else "")
    if result.failed:
        text.append(f"  · not linted: {', '.join(h for h, _ in result.failed)}", "bold red")
    return text


def detail(finding: Finding | None, failed: tuple[tuple[str, str], ...]) -> Text:
    if finding is None:
        lines = Text("no findings" if not failed else "")
        for host, why in failed:
            lines.append(f"{host}: not linted: ", "bold red")
            lines.append_text(literal(why))
            lines.append("\n")
        return lines
    text = Text(f"{finding.rule}", style=SEVERITY_STYLE.get(finding.severity, ""))
    text.append("  ")
    text.append_text(literal(finding.where))
    text.append("\n")
    text.append_text(literal(finding.reason))
    text.append("\nfix: ", style="bold")
    text.append_text(literal(finding.fix))
    if finding.fixable:
        text.append("\nf: fix it (vm.lint-fix)", style="green")
    return text


class LintScreen(ActionsMixin, Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="lint.back"),
        Binding("r", "rerun", "Run again", id="lint.rerun"),
        Binding("f", "fix", "Fix", id="lint.fix"),
    ]
    DEFAULT_CSS = """
    LintScreen #lint-head { height: 1; padding: 0 1; background: $panel; }
    LintScreen DataTable { height: 1fr; }
    LintScreen #lint-detail { height: auto; max-height: 8; padding: 0 1; border-top: solid $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.result: LintResult | None = None

    def compose(self) -> ComposeResult:
        yield Static("lint: reading the hosts ...", id="lint-head", markup=False)
        table: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns("SEVERITY", "WHERE", "RULE", "REASON")
        yield table
        yield Static("", id="lint-detail")
        yield KeyBar()

    @property
    def app_(self) -> VimApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.action_rerun()

    def action_rerun(self) -> None:
        self.query_one("#lint-head", Static).update("lint: reading the hosts ...")
        self.run_worker(self._run(), group="lint", exclusive=True, exit_on_error=False)

    async def _run(self) -> None:
        app = self.app_
        try:
            result = await lint_fleet(app.fleet, app.config.lint)
        except Exception as exc:  # a bug in a rule: said on the screen, never as a traceback
            self.query_one("#lint-head", Static).update(literal(f"lint failed: {type(exc).__name__}: {exc}"))
            return
        self._show(result)

    def _show(self, result: LintResult) -> None:
        self.result = result
        table: DataTable[Text] = self.query_one(DataTable)
        row = table.cursor_row  # stays where it was when the findings are read again (after a fix)
        table.clear()
        for i, f in enumerate(result.findings):
            table.add_row(
                Text(f.severity, SEVERITY_STYLE.get(f.severity, "")),
                literal(f.where),
                literal(f.rule + (" (f)" if f.fixable else "")),
                literal(f.reason),
                key=str(i),
            )
        if result.findings:
            table.move_cursor(row=min(max(row, 0), len(result.findings) - 1))
        self.query_one("#lint-head", Static).update(summary(result))
        self._show_detail()

    def selected(self) -> Finding | None:
        if self.result is None or not self.result.findings:
            return None
        row = self.query_one(DataTable).cursor_row
        return self.result.findings[row] if 0 <= row < len(self.result.findings) else None

    def _show_detail(self) -> None:
        failed = self.result.failed if self.result else ()
        self.query_one("#lint-detail", Static).update(detail(self.selected(), failed))
        self.refresh_bindings()

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def action_targets(self) -> list[VmState]:
        f = self.selected()
        if f is None or not f.uuid:
            return []
        vm = self.app_.fleet.state.vms.get(f"{f.host}/{f.uuid}")
        return [vm] if vm is not None else []

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "fix":
            f = self.selected()
            return True if f is not None and f.fixable else None
        return self.check_vm_action(action, parameters)

    def action_fix(self) -> None:
        f = self.selected()
        if f is None or not f.fixable:
            self.notify("nothing to fix here: this finding has no safe fix", severity="warning", timeout=4)
            return
        vms = self.action_targets()
        reason = why_not(self.app_, "lint-fix", vms) if vms else f"{f.where}: not in the fleet's last poll"
        if reason:
            self.notify(reason, severity="warning", timeout=4, markup=False)
            return
        given = {"rule": f.rule, "period": self.app_.config.lint.memory_stats_period}
        self.run_worker(self._fix(vms, given), group="vm-actions", exit_on_error=False)

    async def _fix(self, vms: list[VmState], given: dict[str, object]) -> None:
        tasks = await self.run_vm_action("lint-fix", vms, given)
        for task in tasks:
            await task.done.wait()
        if tasks:
            self.action_rerun()
