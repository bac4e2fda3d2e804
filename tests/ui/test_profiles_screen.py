"""The screen under a profile (libvirt's test driver): a viewer's keys are not offered (the key bar shows
no action, each key is disabled, pressing it does nothing but say why), the palette lists every action as not
available with the reason, `:` refuses with it, and the title says the profile; an operator keeps the
lifecycle keys and loses the admin ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.ui.conftest import fleet_app, loaded, typed
from tests.ui.test_actions import SIZE, state_of, to_vm, until
from vimtui.core.actions import ACTIONS, of_kind
from vimtui.ui.commands import NOT_AVAILABLE, _vm_action_commands
from vimtui.ui.widgets.key_bar import KeyBar


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    return tmp_path


async def test_a_viewer_is_offered_no_action_and_told_why() -> None:
    app = fleet_app(extra='\n[groups.dc1]\nprofile = "viewer"\n[groups.dc2]\nprofile = "viewer"\n')
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web01")
        screen = app.screen
        assert "profile viewer" in str(screen.query_one("#title").render())
        for act in of_kind("vm"):
            assert screen.check_action("vm_action", (act.name,)) is None, act.name
        assert screen.check_action("vm_console", ()) is None
        assert screen.check_action("vm_display", ()) is None
        assert screen.check_action("vm_screen", ()) is None
        hints = " ".join(desc for _key, _shown, desc, _ in screen.query_one(KeyBar).hints)
        assert not any(a.title in hints for a in of_kind("vm") if a.bar), hints
        commands = {title: why for title, why, _ in _vm_action_commands(screen)}  # type: ignore[arg-type]
        vm_entries = [t for t in commands if t.startswith("VM: ")]
        assert len(vm_entries) == len(of_kind("vm")) + 3  # the console, the display, the guest's screen
        assert all(t.endswith(NOT_AVAILABLE) for t in vm_entries), vm_entries
        assert (
            "Suspend needs the operator profile (yours on kvm-a: viewer)"
            in commands[f"VM: Suspend web01{NOT_AVAILABLE}"]
        )
        assert "Delete needs the admin profile" in commands[f"VM: Delete web01{NOT_AVAILABLE}"]
        assert "The console needs the operator profile" in commands[f"VM: Console web01{NOT_AVAILABLE}"]
        assert "The guest's screen needs the operator profile" in commands[f"VM: Screen web01{NOT_AVAILABLE}"]
        await typed(pilot, "p")  # suspend's key: disabled, nothing happens (it says why)
        await typed(pilot, "colon", *"suspend web01", "enter")
        await pilot.pause()
        assert state_of(app, "web01") == "running"
        assert not [e for e in app.fleet.activity.entries() if e.action == "suspend" and e.state != "failed"]


async def test_an_operator_keeps_lifecycle_and_loses_the_admin_actions() -> None:
    app = fleet_app(extra='\n[groups.dc1]\nprofile = "operator"\n')
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web01")
        screen = app.screen
        assert "profile operator / admin" in str(screen.query_one("#title").render())  # kvm-b: admin
        assert screen.check_action("vm_action", ("suspend",)) is True
        assert screen.check_action("vm_action", ("delete",)) is None
        assert screen.check_action("vm_action", ("edit",)) is None
        assert screen.check_action("vm_console", ()) is True
        await typed(pilot, "p")
        await until(pilot, "web01 paused", lambda s: state_of(app, "web01") == "paused")


async def flashed(pilot: Pilot[None], text: str) -> list[str]:
    """The messages of the notifications on the screen, once one says `text` (or after a deadline)."""
    said: list[str] = []
    for _ in range(250):
        said = [str(toast.render()) for toast in pilot.app.screen.query("Toast")]
        if any(text in s for s in said):
            break
        await pilot.pause(0.02)
    return said


async def test_a_refused_key_says_why_and_the_key_bar_stays_without_it() -> None:
    """A key whose action does not apply (the profile forbids it, or the VM's state) flashes the core's
    refusal, the palette's text; nothing is done. Breaks if the key does nothing silently again."""
    app = fleet_app(extra='\n[groups.dc1]\nprofile = "viewer"\n')
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web01")
        screen = app.screen
        hints_before = screen.query_one(KeyBar).hints
        await typed(pilot, "S")  # shut down, which a viewer may not
        why = "Shut down needs the operator profile (yours on kvm-a: viewer)"
        assert any(why in s for s in await flashed(pilot, why)), why
        assert screen.query_one(KeyBar).hints == hints_before  # still greyed out / not offered
        assert state_of(app, "web01") == "running"
        assert not [e for e in app.fleet.activity.entries() if e.action == "shutdown"]
        await to_vm(pilot, "ci-runner1")  # on kvm-b (admin): running, so start does not apply
        (vm,) = app.fleet.state.find_vm("ci-runner1")
        refusal = ACTIONS["start"].state_refusal(vm, app.fleet.state)
        assert refusal is not None and "only a shut off VM starts" in refusal
        assert screen.check_action("vm_action", ("start",)) is None
        await typed(pilot, "s")
        assert any(refusal in s for s in await flashed(pilot, refusal)), refusal
        assert not [e for e in app.fleet.activity.entries() if e.action == "start"]
