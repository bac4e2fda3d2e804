"""Alerts on the screen: the banner, the NAME cells of VMs with one, and the `:alerts` view."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.ui.conftest import fleet_app, loaded, plain, typed
from vimtui.ui.app import VimApp
from vimtui.ui.screens.alerts import AlertsScreen
from vimtui.ui.widgets.vm_table import VmTable

# a host whose libvirt URI cannot be opened, and the shipped rule made to fire at once
DEAD_HOST = """
[[hosts]]
name = "kvm-dead"
uri = "test:///nonexistent/fleet-dead.xml"
group = "dc3"

[[alerts.rules]]
name = "host-unreachable"
for = 0
"""


async def firing(pilot: Pilot[None]) -> None:
    app: VimApp = pilot.app  # type: ignore[assignment]
    for _ in range(500):
        if app.fleet.state.alerts and getattr(app.screen, "state", None) is app.fleet.state:
            await pilot.pause()
            return
        await pilot.pause(0.01)
    raise AssertionError(f"no alert fired: {app.fleet.state.hosts}")


async def test_an_unreachable_host_fires_a_banner_and_the_alerts_view_lists_it() -> None:
    app = fleet_app(extra=DEAD_HOST)
    async with app.run_test(size=(120, 40)) as pilot:
        await firing(pilot)  # (the dead host never polls: not `loaded`)
        banner = app.screen.query_one("#alert-banner")
        assert banner.display and banner.has_class("-critical")
        text = plain(banner, 120)
        assert "1 alert firing" in text and "critical" in text and "kvm-dead" in text, text
        # the task log has it too, as a failure that stands out
        entries = [e for e in app.fleet.activity.entries() if e.action == "alert host-unreachable"]
        assert entries and entries[0].state == "failed" and entries[0].host == "kvm-dead"
        await typed(pilot, "colon", *"alerts", "enter")
        assert isinstance(app.screen, AlertsScreen)
        firing_text = plain(app.screen.query_one("#firing"), 160)
        assert "kvm-dead" in firing_text and "host-unreachable" in firing_text, firing_text
        recent = plain(app.screen.query_one("#recent"), 160)
        assert "alert host-unreachable" in recent, recent
        await typed(pilot, "escape")
        assert not isinstance(app.screen, AlertsScreen)


async def test_without_alerts_there_is_no_banner() -> None:
    app = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert not app.fleet.state.alerts
        assert not app.screen.query_one("#alert-banner").display


async def test_a_vm_with_an_alert_has_its_name_cell_marked_by_severity() -> None:
    app = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(VmTable)
        table.cursor = table.visible_count - 1  # the cursor's own style away from the first row
        await pilot.pause()
        key = table.rows[0]
        name = app.fleet.state.vms[key].name

        def name_style() -> object:
            strip = table.render_line(1)  # the first row, under the header
            return next(seg.style for seg in strip if name in seg.text)

        plain_style = name_style()
        table.set_alerts({key: 1})
        await pilot.pause()
        warning = name_style()
        table.set_alerts({key: 2})
        await pilot.pause()
        critical = name_style()
        assert len({str(plain_style), str(warning), str(critical)}) == 3, (plain_style, warning, critical)
