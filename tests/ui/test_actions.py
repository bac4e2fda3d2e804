"""VM actions from the screen on libvirt's test driver: keys greyed out where they do not apply, a form and
a confirmation before destructive or bulk actions, one task per VM, the effect in the next snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox

from tests.ui.conftest import fleet_app, loaded, typed
from vimtui.core.model import FleetState
from vimtui.ui.app import VimApp
from vimtui.ui.screens.prompt import PromptScreen
from vimtui.ui.widgets.vm_table import VmTable

SIZE = (160, 48)


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    return tmp_path


async def until(
    pilot: Pilot[None], what: str, pred: Callable[[FleetState], object], within: float = 10
) -> None:
    app: VimApp = pilot.app  # type: ignore[assignment]
    for _ in range(int(within / 0.02)):
        if pred(app.fleet.state):
            await pilot.pause()
            return
        await pilot.pause(0.02)
    pytest.fail(f"timed out waiting for {what}")


async def to_vm(pilot: Pilot[None], name: str) -> None:
    table = pilot.app.screen.query_one(VmTable)
    await typed(pilot, "g")
    for _ in range(len(table.rows)):
        vm = table.current_vm
        if vm is not None and vm.name == name:
            return
        await typed(pilot, "j")
    pytest.fail(f"{name} is not in the table")


def state_of(app: VimApp, name: str) -> str:
    (vm,) = app.fleet.state.find_vm(name)
    return vm.state


async def test_keys_apply_to_the_vm_under_the_cursor_and_are_greyed_out_otherwise() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web01")
        screen = app.screen
        assert screen.check_action("vm_action", ("start",)) is None  # running: start does not apply
        assert screen.check_action("vm_action", ("suspend",)) is True
        await typed(pilot, "p")  # suspend
        await until(pilot, "web01 paused", lambda s: state_of(app, "web01") == "paused")
        assert screen.check_action("vm_action", ("suspend",)) is None
        assert screen.check_action("vm_action", ("resume",)) is True
        await typed(pilot, "s")  # start: greyed out, nothing happens
        await pilot.pause()
        assert state_of(app, "web01") == "paused"
        await typed(pilot, "P")  # resume
        await until(pilot, "web01 running", lambda s: state_of(app, "web01") == "running")
        entries = [e for e in app.fleet.activity.entries() if e.vm == "web01" and e.state != "event"]
        assert [(e.action, e.state) for e in entries[:2]] == [("resume", "done"), ("suspend", "done")]


async def test_bulk_force_off_asks_first_and_lists_every_vm(data_home: Path) -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        running = sorted(v.name for v in app.fleet.state.vms.values() if v.state == "running")
        assert len(running) >= 3
        await typed(pilot, "slash", *"state:running", "enter", "ctrl+a", "X")
        await until(pilot, "the confirmation", lambda s: isinstance(app.screen, PromptScreen))
        detail = str(app.screen.query_one("#detail").render())
        assert all(name in detail for name in running)
        await typed(pilot, "escape")  # no: nothing happens
        await pilot.pause()
        assert sorted(v.name for v in app.fleet.state.vms.values() if v.state == "running") == running
        await typed(pilot, "X")
        await until(pilot, "the confirmation", lambda s: isinstance(app.screen, PromptScreen))
        await pilot.click("#ok")
        await until(pilot, "all forced off", lambda s: all(state_of(app, n) == "shutoff" for n in running))
    records = [json.loads(line) for line in (data_home / "vimtui" / "audit.log").read_text().splitlines()]
    records = [r for r in records if r["outcome"] != "started"]  # each also has its "started" record
    assert sorted((r["vm"], r["action"], r["outcome"]) for r in records) == [
        (n, "destroy", "done") for n in running
    ]


def _what_libvirt_has(conn: Any) -> tuple[list[str], list[str]]:
    """Domain names and volume paths, asked of the host's own libvirt connection (the test driver keeps
    its state per connection: only this one has seen the delete)."""
    pool = conn.storagePoolLookupByName("default")
    return sorted(d.name() for d in conn.listAllDomains()), sorted(v.path() for v in pool.listAllVolumes())


VDA = "/var/lib/libvirt/images/old-app.qcow2"
VDB = "/var/lib/libvirt/images/old-app-data.qcow2"
BOX = "f-remove_storage-"
"""The delete form's box for a disk, by its target."""


@pytest.mark.parametrize("ticked", [(), ("vdb",)], ids=["disks-kept", "vdb-removed"])
async def test_delete_shows_what_goes_and_keeps_disks_unless_ticked(ticked: tuple[str, ...]) -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        domains, volumes = await app.fleet.ask("kvm-a", _what_libvirt_has)
        assert "old-app" in domains and volumes == [VDB, VDA]  # old-app's two disks: volumes in "default"
        await to_vm(pilot, "old-app")  # shut off
        assert state_of(app, "old-app") == "shutoff"
        await typed(pilot, "ctrl+d")
        await until(pilot, "the delete form", lambda s: isinstance(app.screen, PromptScreen))
        boxes = {b.id: b.value for b in app.screen.query(Checkbox) if (b.id or "").startswith(BOX)}
        assert boxes == {f"{BOX}vda": False, f"{BOX}vdb": False}  # one box per disk, none ticked
        for target in ticked:
            await pilot.click(f"#{BOX}{target}")
            assert app.screen.query_one(f"#{BOX}{target}", Checkbox).value
        await pilot.click("#ok")
        await until(
            pilot,
            "the confirmation",
            lambda s: isinstance(app.screen, PromptScreen) and app.screen.query("#detail"),
        )
        detail = str(app.screen.query_one("#detail").render())
        assert "the definition of old-app" in detail
        assert f"kept: vda {VDA}" in detail
        if ticked:
            assert "REMOVED: vdb default/old-app-data.qcow2" in detail
        else:
            assert "kept: vdb default/old-app-data.qcow2" in detail
        await pilot.click("#ok")
        await until(pilot, "old-app gone", lambda s: not s.find_vm("old-app"))
        domains, volumes = await app.fleet.ask("kvm-a", _what_libvirt_has)
        assert "old-app" not in domains and "web01" in domains
        assert volumes == ([VDA] if ticked else [VDB, VDA])


async def test_a_refused_action_says_why_in_the_task_log() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web01")
        await typed(pilot, "space")
        await to_vm(pilot, "old-app")
        await typed(pilot, "space", "P")  # resume: applies to neither (running, shut off)
        await pilot.pause()
        assert not isinstance(app.screen, PromptScreen)
        await typed(pilot, "X")  # force off: web01 yes, old-app no
        await until(pilot, "the confirmation", lambda s: isinstance(app.screen, PromptScreen))
        detail = str(app.screen.query_one("#detail").render())
        assert "old-app is shutoff" in detail
        await pilot.click("#ok")
        await until(pilot, "web01 off", lambda s: state_of(app, "web01") == "shutoff")
        failed = [e for e in app.fleet.activity.entries() if e.state == "failed" and e.vm == "old-app"]
        assert failed and "old-app is shutoff" in failed[0].error


async def test_colon_actions_by_name_and_the_palette_lists_what_applies() -> None:
    from vimtui.ui.commands import _vm_action_commands

    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await typed(pilot, "colon", *"suspend web01", "enter")
        await until(pilot, "web01 paused", lambda s: state_of(app, "web01") == "paused")
        await typed(pilot, "colon", *"resume nope", "enter")
        await pilot.pause()
        assert "no VM named 'nope'" in str(app.screen.query_one("#bar").tooltip or "") or any(
            "no VM named 'nope'" in str(n.message) for n in app._notifications
        )
        await typed(pilot, "escape")
        await to_vm(pilot, "web01")
        titles = {t: h for t, h, _ in _vm_action_commands(app.screen)}  # type: ignore[arg-type]
        assert "VM: Resume web01" in titles
        assert "VM: Start web01 — not available" in titles
        assert "is paused" in titles["VM: Start web01 — not available"]
