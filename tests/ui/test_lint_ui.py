"""The `:lint` view on the test fleet: it reads the hosts and lists the findings worst first with the
selected one's reason and fix; `f` is greyed on a finding without a safe fix, on one with a fix it runs
vm.lint-fix as a task (libvirt's test driver cannot attach devices: the task's failure reaches the log).

What breaks them: the view not asking the core (no rows), the detail not following the cursor, `f` acting
on a finding without a fix, or the fix not reaching the task engine."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.ui.conftest import fleet_app, loaded, plain, typed
from vimtui.ui.app import VimApp
from vimtui.ui.screens.lint import LintScreen


async def linted(pilot: Pilot[None]) -> LintScreen:
    app: VimApp = pilot.app  # type: ignore[assignment]
    for _ in range(1000):
        screen = app.screen
        if isinstance(screen, LintScreen) and screen.result is not None:
            await pilot.pause()
            return screen
        await pilot.pause(0.02)
    raise AssertionError("the lint view did not show a result")


async def test_lint_view_lists_findings_and_fixes_only_what_has_a_fix() -> None:
    app = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await typed(pilot, "colon", *"lint", "enter")
        screen = await linted(pilot)
        assert screen.result is not None and screen.result.linted == ("kvm-a", "kvm-b")
        rules = [(f.rule, f.where) for f in screen.result.findings]
        assert ("no-agent", "kvm-b/win10") in rules
        assert rules[0][0] == "duplicate-ip"  # errors first (the test driver gives both hosts one address)
        assert "2 host(s): 4 error, 8 warning" in plain(screen.query_one("#lint-head"), 120)
        detail = plain(screen.query_one("#lint-detail"), 120)
        assert "duplicate-ip" in detail and "fix: give one of them a new address" in detail
        assert screen.check_action("fix", ()) is None  # greyed: this finding has no safe fix
        await typed(pilot, "f")
        assert not [e for e in app.fleet.activity.entries() if e.action == "lint-fix"]
        table = screen.query_one(DataTable)
        row = next(i for i, f in enumerate(screen.result.findings) if f.where == "kvm-a/old-app")
        table.move_cursor(row=row)
        await pilot.pause()
        assert "kvm-a/old-app" in plain(screen.query_one("#lint-detail"), 120)
        assert screen.check_action("fix", ()) is True
        await typed(pilot, "f")
        for _ in range(500):
            done = [e for e in app.fleet.activity.entries() if e.action == "lint-fix" and e.state == "failed"]
            if done:
                break
            await pilot.pause(0.02)
        assert done and done[0].vm == "old-app" and "not supported" in done[0].error, done
        await typed(pilot, "escape")
        assert not isinstance(app.screen, LintScreen)


async def test_rules_switched_off_in_the_config_are_not_listed() -> None:
    app = fleet_app(extra='\n[lint]\noff = ["no-agent", "duplicate-ip"]\n')
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await typed(pilot, "colon", *"lint", "enter")
        screen = await linted(pilot)
        assert screen.result is not None and screen.result.findings == ()
        assert "no findings" in plain(screen.query_one("#lint-detail"), 120)
