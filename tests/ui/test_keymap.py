"""[keys]: every screen's binding ids are accepted (found by walking the ui package, not a hand-kept
list), an action has one id on every screen, old per-screen action ids still work, unknown ids get a
did-you-mean; `?` shows keys as typed and the [keys] text as text."""

from __future__ import annotations

import pytest

from tests.ui.conftest import fleet_app, fleet_config, loaded, plain, typed
from tests.ui.test_actions import SIZE, state_of, to_vm, until
from vimtui.core.config.settings import ConfigError
from vimtui.core.fleet.inventory import build_inventory
from vimtui.ui.app import VimApp, make_app
from vimtui.ui.keys import known_bindings
from vimtui.ui.screens.help import HelpScreen
from vimtui.ui.screens.vm_detail import VmDetailScreen


def test_every_screens_ids_and_the_actions_ids_are_known() -> None:
    known = known_bindings(VimApp)
    for binding_id in ("vm_detail.reload", "host_detail.reload", "wall.next", "prompt.submit", "alerts.back"):
        assert binding_id in known
    assert {"vm.start", "vm.snapshot", "vm.migrate", "vm.console", "vm.edit"} <= set(known)
    assert known["vm.snapshot"].key == "n"


async def test_one_id_remaps_an_action_on_every_screen_and_old_ids_still_work() -> None:
    # "main.suspend" is the id the main screen's suspend had before actions had one id of their own
    app = fleet_app('\n[keys]\n"vm.resume" = "z"\n"main.suspend" = "x"\n')
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await to_vm(pilot, "web01")
        await typed(pilot, "x")
        await until(pilot, "web01 paused", lambda s: state_of(app, "web01") == "paused")
        await typed(pilot, "enter")
        assert isinstance(app.screen, VmDetailScreen)
        await typed(pilot, "z")  # the same id on the detail screen
        await until(pilot, "web01 running", lambda s: state_of(app, "web01") == "running")


def test_an_unknown_id_says_the_close_one() -> None:
    config = fleet_config('\n[keys]\n"vm.snaphsot" = "ctrl+s"\n')
    with pytest.raises(ConfigError) as info:
        make_app(config, build_inventory(config))
    assert info.value.key == "keys.vm.snaphsot" and "did you mean 'vm.snapshot'" in info.value.message
    config = fleet_config('\n[keys]\n"vm_detail.reload" = "ctrl+r"\n"vm_detail.start" = "ctrl+t"\n')
    make_app(config, build_inventory(config))  # both accepted


async def test_help_shows_keys_as_typed_and_the_keys_table_name_as_text() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await typed(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(plain(s) for s in app.screen.query("Static"))
        assert "remap in [keys]" in text
        assert "question_mark" not in text and "colon" not in text and "slash" not in text
        rows = {line.split()[-1]: line for line in text.splitlines() if line.strip()}
        assert rows["app.help"].split()[0] == "?" and rows["main.filter"].split()[0] == "/"
        assert rows["vm.snapshot"].split()[0] == "n"
