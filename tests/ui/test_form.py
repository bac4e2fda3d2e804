"""The action form on libvirt's test driver: enter goes field to field and submits from the last, ctrl+s
submits from anywhere, a select opened with space still takes enter to pick, the form shows its keys,
and a confirmation takes enter on its button. Effects are read back from libvirt through the host's lane."""

from __future__ import annotations

from typing import Any

from tests.ui.conftest import fleet_app, loaded, plain, typed
from tests.ui.test_actions import SIZE, state_of, to_vm, until
from vimtui.ui.app import VimApp
from vimtui.ui.screens.prompt import PromptScreen


async def snapshot_names(app: VimApp, name: str) -> list[str]:
    (vm,) = app.fleet.state.find_vm(name)

    def names(conn: Any, uuid: str) -> list[str]:
        return list(conn.lookupByUUIDString(uuid).snapshotListNames())

    return await app.fleet.ask(vm.host, names, vm.uuid)


async def test_enter_walks_the_fields_and_submits_from_the_last() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web02")
        await typed(pilot, "n")
        await until(pilot, "the snapshot form", lambda s: isinstance(app.screen, PromptScreen))
        form = app.screen
        assert "enter next field · ctrl+s Take · esc cancel" in plain(form.query_one("#keys"))
        assert form.focused is form.query_one("#f-name")
        await typed(pilot, "ctrl+u", *"first", "enter")
        assert form.focused is form.query_one("#f-description")
        await typed(pilot, "enter")
        assert form.focused is form.query_one("#f-disk_only")
        await typed(pilot, "enter")  # enter on the last field submits
        for _ in range(250):
            if not isinstance(app.screen, PromptScreen) and "first" in await snapshot_names(app, "web02"):
                break
            await pilot.pause(0.02)
        assert "first" in await snapshot_names(app, "web02")


async def test_ctrl_s_submits_from_the_first_field_and_a_select_takes_enter_when_open() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web02")
        await typed(pilot, "n")
        await until(pilot, "the snapshot form", lambda s: isinstance(app.screen, PromptScreen))
        await typed(pilot, "ctrl+u", *"second", "ctrl+s")
        for _ in range(250):
            if "second" in await snapshot_names(app, "web02"):
                break
            await pilot.pause(0.02)
        assert "second" in await snapshot_names(app, "web02")

        await until(pilot, "the form gone", lambda s: not isinstance(app.screen, PromptScreen))
        await typed(pilot, "colon", *"revert web02", "enter")  # the snapshot to choose: a select
        await until(pilot, "the revert form", lambda s: isinstance(app.screen, PromptScreen))
        form = app.screen
        select = form.query_one("#f-name")
        assert form.focused is select
        await typed(pilot, "space")  # open it: enter now picks, it does not submit
        assert select.expanded  # type: ignore[attr-defined]
        await typed(pilot, "down", "enter")
        assert isinstance(app.screen, PromptScreen) and not select.expanded  # type: ignore[attr-defined]
        await typed(pilot, "escape")


async def test_a_confirmation_takes_enter_on_its_button() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web01")
        await typed(pilot, "X")
        await until(pilot, "the confirmation", lambda s: isinstance(app.screen, PromptScreen))
        # its keys say how to say yes, not only how to back out
        assert plain(app.screen.query_one("#keys")).strip() == "enter Force off · esc cancel"
        await typed(pilot, "enter")
        await until(pilot, "web01 off", lambda s: state_of(app, "web01") == "shutoff")
