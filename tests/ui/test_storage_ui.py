"""The host detail screen's storage, driven by keys as an operator would: the pools and the selected pool's
volumes listed, a delete of a volume a VM uses refused with the VM named (nothing changed), a new volume
made through its form, the confirmation of a delete showing what goes, the orphans view, `:vol`, and the
palette listing the pool and volume actions. Effects are read back through the host's libvirt connection.

What breaks each: pool keys not bound on the pool list, a volume delete that asks (or deletes) when the
host refuses it, a form whose name field is lost, a list not reloaded after its task, an orphan view that
shows volumes a VM uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Select, Static

from tests.ui.conftest import fleet_app, loaded, plain, typed
from vimtui.core.fleet.tasks import TaskState
from vimtui.ui.app import VimApp
from vimtui.ui.commands import VimCommands
from vimtui.ui.screens.host_detail import HostDetailScreen
from vimtui.ui.screens.prompt import PromptScreen
from vimtui.ui.widgets.storage_panel import PoolTable, StoragePanel, VolumeTable
from vimtui.ui.widgets.task_log import TaskLog

SIZE = (120, 40)
HOST = "kvm-a"


async def _until(pilot: Pilot[None], what: str, pred: Any, within: float = 20.0) -> None:
    for _ in range(int(within / 0.05)):
        if pred():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{what}: not within {within} s")


async def _volumes(app: VimApp) -> dict[str, str]:
    """name -> path of the pool's volumes, as the host's libvirt says."""

    def ask(conn: Any) -> dict[str, str]:
        pool = conn.storagePoolLookupByName("default")
        return {v.name(): v.path() for v in pool.listAllVolumes(0)}

    return await app.fleet.ask(HOST, ask)


async def _host_detail(pilot: Pilot[None], app: VimApp) -> tuple[PoolTable, VolumeTable]:
    """The host detail screen of HOST opened, and its pool and volume lists once both are filled."""
    app.push_screen(HostDetailScreen(HOST))
    await _until(
        pilot,
        "the host screen",
        lambda: isinstance(app.screen, HostDetailScreen) and app.screen.query(PoolTable),
    )
    pools = app.screen.query_one(PoolTable)
    volumes = app.screen.query_one(VolumeTable)
    await _until(pilot, "the pools and volumes", lambda: pools.row_count and volumes.row_count)
    return pools, volumes


def _rows(table: Any) -> list[str]:
    return [" ".join(str(c) for c in table.get_row(key)) for key in table.rows]


async def test_storage_keys_forms_refusals_and_orphans() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot)
        pools, volumes = await _host_detail(pilot, app)
        assert app.screen.focused is pools  # the pool keys work at once
        assert "default" in _rows(pools)[0] and "/var/lib/libvirt/images" in _rows(pools)[0]
        assert any("old-app.qcow2" in r and "old-app" in r.split("qcow2", 2)[-1] for r in _rows(volumes))
        before = await _volumes(app)

        # a volume a VM uses: refused at once, naming the VM; no question, nothing changed
        await typed(pilot, "tab")
        assert app.screen.focused is volumes
        row = next(i for i, r in enumerate(_rows(volumes)) if r.startswith("old-app.qcow2"))
        volumes.move_cursor(row=row)
        app.clear_notifications()
        await typed(pilot, "D")
        await _until(
            pilot, "the refusal", lambda: any("used by old-app" in str(n.message) for n in app._notifications)
        )
        assert not isinstance(app.screen, PromptScreen)
        assert await _volumes(app) == before

        # a new volume through its form: the list shows it when its task has ended
        await typed(pilot, "n")
        await _until(pilot, "the form", lambda: isinstance(app.screen, PromptScreen))
        form = app.screen
        form.query_one("#f-new_name", Input).value = "scratch.qcow2"
        form.query_one("#f-size", Input).value = "2G"
        await typed(pilot, "ctrl+s")
        await _until(
            pilot, "the new volume listed", lambda: any(r.startswith("scratch.qcow2") for r in _rows(volumes))
        )
        made = await _volumes(app)
        assert set(made) - set(before) == {"scratch.qcow2"}

        # orphans: the new volume (no VM uses it), not old-app's disks
        await typed(pilot, "o")
        await _until(
            pilot, "the orphans", lambda: "Orphaned" in str(app.screen.query_one("#volumes-title").content)
        )
        await _until(pilot, "the orphan rows", lambda: volumes.row_count > 0)
        orphans = _rows(volumes)
        assert any("scratch.qcow2" in r for r in orphans) and not any("old-app.qcow2" in r for r in orphans)

        # delete it: the confirmation says what goes; yes, and it is gone
        row = next(i for i, r in enumerate(orphans) if "scratch.qcow2" in r)
        volumes.move_cursor(row=row)
        await typed(pilot, "D")
        await _until(pilot, "the confirmation", lambda: isinstance(app.screen, PromptScreen))
        detail = str(app.screen.query_one("#detail").content)
        assert made["scratch.qcow2"] in detail
        await typed(pilot, "ctrl+s")
        await _until(pilot, "the delete", lambda: not any("scratch.qcow2" in r for r in _rows(volumes)))
        assert await _volumes(app) == before

        # the palette lists the pool and volume actions of the rows under the cursors
        panel = app.screen.query_one(StoragePanel)
        titles = [t for t, _h, _cb in panel.commands()]
        assert f"Pool: Refresh pool {HOST}/default" in titles
        assert any(t.startswith("Volume: Delete volume") for t in titles)
        await typed(pilot, "ctrl+p")  # the palette, over the host detail: its provider lists them too
        provider = VimCommands(app.screen)
        listed = [t for t, _h, _cb in provider._commands()]
        assert f"Pool: Refresh pool {HOST}/default" in listed


async def test_vol_command_line_creates_in_the_named_pool() -> None:
    app = fleet_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot)
        await typed(pilot, "colon", *f"vol create {HOST}/default/cmd.img size=64M format=raw", "enter")
        await _until(pilot, "the task", lambda: any("cmd.img" in str(n.message) for n in app._notifications))
        made = await _volumes(app)
        assert "cmd.img" in made
        await typed(pilot, "colon", *f"vol resize {HOST}/default/old-app.qcow2 size=1G", "enter")
        await _until(
            pilot, "the refusal", lambda: any("--shrink" in str(n.message) for n in app._notifications)
        )


async def test_pool_and_volume_lists_move_with_j_and_k() -> None:
    """j and k move the cursor of the pool and volume lists as they do every other list: an operator who
    pressed k on the volume list and then z resized the volume the cursor had stayed on."""
    app = fleet_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot)
        _pools, volumes = await _host_detail(pilot, app)
        await _until(pilot, "two volumes or more", lambda: volumes.row_count >= 2)
        await typed(pilot, "tab")
        assert app.screen.focused is volumes
        volumes.move_cursor(row=0)
        await typed(pilot, "j")
        assert volumes.cursor_row == 1
        await typed(pilot, "k")
        assert volumes.cursor_row == 0


async def test_upload_key_opens_its_form_and_can_make_a_new_volume_beside_the_selected(
    tmp_path: Path,
) -> None:
    """`u` on the volume list opens the upload's form (the app ended with InvalidSelectValueError: the
    format choice, empty until create is ticked, was given False). With create ticked and a new name, the
    confirmation says it makes that volume in the same pool (before, create on the volume list could only
    name the selected volume, which exists); esc leaves it undone."""
    source = tmp_path / "disk.raw"
    source.write_bytes(b"\0" * 65536)
    app = fleet_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot)
        await _host_detail(pilot, app)
        await typed(pilot, "tab", "u")
        await _until(pilot, "the upload form", lambda: isinstance(app.screen, PromptScreen))
        form = app.screen
        assert form.query_one("#f-file", Input).value == ""
        assert form.query_one("#f-format", Select).value is Select.NULL
        form.query_one("#f-file", Input).value = str(source)
        form.query_one("#f-create", Checkbox).value = True
        form.query_one("#f-new_volume", Input).value = "from-form.raw"
        await typed(pilot, "ctrl+s")
        await _until(
            pilot, "the confirmation", lambda: isinstance(app.screen, PromptScreen) and app.screen is not form
        )
        text = " ".join(plain(s) for s in app.screen.query(Static))
        assert "makes volume from-form.raw in pool default" in text, text
        await typed(pilot, "escape")
        await _until(pilot, "the host screen again", lambda: isinstance(app.screen, HostDetailScreen))
        assert "from-form.raw" not in await _volumes(app)  # asked, not done


async def test_the_host_detail_lists_its_host_s_tasks_and_x_cancels_one() -> None:
    """The host detail's task log: this host's tasks only (an upload's progress is seen where it was
    asked), and `x` on a running one cancels it, as on the main screen (before, only the main screen had
    a task log)."""
    app = fleet_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await loaded(pilot)
        tasks = app.fleet.tasks
        other = tasks.submit("kvm-b", "elsewhere", lambda ctx: "done")
        held = tasks.submit(
            HOST, "hold", lambda ctx: str(ctx.wait(lambda: False, timeout=120)), abort=lambda conn, name: None
        )
        await _until(
            pilot, "the task running", lambda: held.state == TaskState.RUNNING and other.done.is_set()
        )
        await _host_detail(pilot, app)
        log = app.screen.query_one("#host-tasks", TaskLog)
        await _until(pilot, "the host's task listed", lambda: any(e.id == held.id for e in log.entries))
        assert {e.host for e in log.entries} == {HOST}
        log.focus()
        log.cursor = next(i for i, e in enumerate(log.entries) if e.id == held.id)
        await typed(pilot, "x")
        await tasks.wait([held], within=30)
        assert held.state == TaskState.CANCELLED
