"""The networks part of the host detail screen, driven by keys as an operator would, on libvirt's
test:///default (one shared state per process: the test's own connection reads back what the app did).

What breaks each: the table not showing a network or its VMs, a delete of a network a running VM uses going
ahead without the forced confirmation (or no way to force it), a refused define losing what was typed
instead of opening the form again, `:net` not opening the host's networks or not acting, the palette
without the network actions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import libvirt
import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.ui.conftest import plain, typed
from vimtui.core.config.settings import parse_config
from vimtui.core.fleet.inventory import build_inventory
from vimtui.ui.app import VimApp, make_app
from vimtui.ui.screens.host_detail import HostDetailScreen
from vimtui.ui.screens.prompt import PromptScreen
from vimtui.ui.widgets.host_networks import NetworkTable

HOST = "test-default"
SIZE = (140, 44)


@pytest.fixture
def conn() -> Iterator[Any]:
    c = libvirt.open("test:///default")
    yield c
    for name in ("uilab", "uilab2"):
        try:
            n = c.networkLookupByName(name)
        except libvirt.libvirtError:
            continue
        if n.isActive():
            n.destroy()
        n.undefine()
    c.close()


def _app() -> VimApp:
    config = parse_config(
        f'[defaults]\ninterval = 60.0\n[[hosts]]\nname = "{HOST}"\nuri = "test:///default"\n'
    )
    return make_app(config, build_inventory(config))


async def _until(pilot: Pilot[None], what: str, predicate: Any, tries: int = 600) -> None:
    for _ in range(tries):
        if predicate():
            return
        await pilot.pause(0.05)
    pytest.fail(f"never: {what}")


async def _detail(pilot: Pilot[None], app: VimApp) -> NetworkTable:
    await _until(
        pilot, "the host polled", lambda: app.fleet.state.hosts and app.fleet.state.hosts[0].last_poll
    )
    await typed(pilot, "colon", *"net", "enter")  # one host: :net alone opens its networks
    await _until(pilot, "the host detail", lambda: isinstance(app.screen, HostDetailScreen))
    table = app.screen.query_one(NetworkTable)
    await _until(pilot, "the networks read", lambda: bool(table.views))
    return table


async def test_delete_in_use_asks_to_force_and_a_refused_define_reopens_its_form(conn: Any) -> None:
    app = _app()
    async with app.run_test(size=SIZE) as pilot:
        table = await _detail(pilot, app)
        assert app.focused is table
        assert [n.name for n in table.views] == ["default"]
        leases = plain(app.screen.query_one("#net-leases"))
        # (the state of test:///default's "test" is whatever other tests of this process left it in)
        assert "leases not known" in leases and "on it without a lease: test (" in leases
        # delete the default network: the running VM "test" uses it, so the screen asks to force it
        await typed(pilot, "D")
        await _until(pilot, "the force question", lambda: isinstance(app.screen, PromptScreen))
        detail = plain(app.screen.query_one("#detail"))
        assert "running VMs use network default: test" in detail and "lose it (forced): test" in detail
        await typed(pilot, "escape")
        await _until(pilot, "back", lambda: isinstance(app.screen, HostDetailScreen))
        assert conn.networkLookupByName("default").isActive()  # nothing done
        # define: an overlapping subnet is refused by the host, and the form comes back with what was typed
        await typed(pilot, "N")
        await _until(pilot, "the define form", lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one("#f-name", Input).value = "uilab"
        app.screen.query_one("#f-subnet", Input).value = "192.168.122.128/25"
        await typed(pilot, "ctrl+s")
        await _until(
            pilot,
            "the form again",
            lambda: isinstance(app.screen, PromptScreen) and app.screen.query("#f-subnet"),
        )
        form = app.screen
        assert form.query_one("#f-name", Input).value == "uilab"
        assert form.query_one("#f-subnet", Input).value == "192.168.122.128/25"
        assert "uilab" not in {n.name() for n in conn.listAllNetworks(0)}
        form.query_one("#f-subnet", Input).value = "10.77.0.0/24"
        await typed(pilot, "ctrl+s")
        await _until(pilot, "the new row", lambda: "uilab" in [n.name for n in table.views])
        net = conn.networkLookupByName("uilab")
        assert net.isActive() and net.autostart() and "10.77.0.1" in net.XMLDesc(0)
        # the palette offers the network actions on the selected network
        await typed(pilot, "escape")
        await _until(pilot, "main", lambda: not isinstance(app.screen, HostDetailScreen))
        await typed(pilot, "colon", *"net stop uilab", "enter")
        await _until(pilot, "the stop confirmation", lambda: isinstance(app.screen, PromptScreen))
        assert "no running VM on it" in plain(app.screen.query_one("#detail"))
        await typed(pilot, "ctrl+s")
        await _until(pilot, "stopped", lambda: not conn.networkLookupByName("uilab").isActive())
        assert isinstance(app.screen, HostDetailScreen)
        table = app.screen.query_one(NetworkTable)
        await _until(
            pilot, "shown inactive", lambda: any(n.name == "uilab" and not n.active for n in table.views)
        )
        assert table.selected() is not None and table.selected().name == "uilab"  # type: ignore[union-attr]
        from vimtui.ui.commands import VimCommands

        titles = [t for t, _h, _c in VimCommands(app.screen)._commands()]
        assert f"Network: Start network {HOST}/uilab" in titles
        assert f"Network: Stop network {HOST}/uilab — not available" in titles
