"""`:audit`: the records of the operator's log on the screen, filtered as `audit show` filters, with what
a record holds (written by other operators' vimtuis, or by anyone with the file) shown as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.conftest import CLOCK, fleet_app, loaded, plain, typed
from vimtui.ui.screens.audit import AuditScreen

HOSTILE = "[bold red]pwn[/] \x1b[2J"


async def test_the_audit_view_shows_records_as_text_and_filters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app = fleet_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        log = app.fleet.tasks.audit
        assert log is not None
        log.record(time=CLOCK - 7200, host="kvm-a1", vm=HOSTILE, action="vm.start", args={}, outcome="done")
        log.record(time=CLOCK - 60, host="kvm-b1", vm="db", action="vm.stop", args={}, outcome="failed",
                   error="[link=x]boom[/link]")  # fmt: skip
        await typed(pilot, "colon", *"audit", "enter")
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        text = plain(screen.query_one("#rows"), 160)
        assert "[bold red]pwn[/]" in text and "\x1b" not in text, text
        assert "[link=x]boom[/link]" in text and "failed" in text
        assert "records by 1 operator" in plain(screen.query_one("#head"), 160)
        await typed(pilot, "escape", "colon", *"audit since=1h host=kvm-b1", "enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        text = plain(app.screen.query_one("#rows"), 160)
        assert "vm.stop" in text and "vm.start" not in text, text
        await typed(pilot, "escape", "colon", *"audit when=soon", "enter")
        assert not isinstance(app.screen, AuditScreen)  # refused, with why, on the command line
