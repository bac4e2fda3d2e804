"""The fleet's monitoring parts report their own trouble into the task log: the archive, the alert hook."""

from __future__ import annotations

import asyncio
from pathlib import Path

from vimtui.core.config.settings import parse_config
from vimtui.core.fleet.inventory import build_inventory
from vimtui.core.fleet.startup import HISTORY_FILE, make_fleet

DATA = Path(__file__).resolve().parent / "data"


async def test_a_corrupt_history_file_is_moved_aside_and_reported_in_the_log(tmp_path: Path) -> None:
    text = (DATA / "fleet.toml").read_text().replace("@DATA@", str(DATA))
    config = parse_config(text, file="fleet.toml")
    env = {"XDG_DATA_HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}
    (tmp_path / "run").mkdir(mode=0o700)
    history = tmp_path / "vimtui" / HISTORY_FILE
    history.parent.mkdir(parents=True)
    history.write_bytes(b"this is not a database" * 100)
    fleet = make_fleet(config, build_inventory(config), env=env, archive=True)
    await fleet.start()
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while not [e for e in fleet.activity.entries() if e.action == "history"]:
            assert asyncio.get_running_loop().time() < deadline, fleet.activity.entries()
            await asyncio.sleep(0.05)
        [entry] = [e for e in fleet.activity.entries() if e.action == "history"]
        assert entry.state == "failed" and str(history) in entry.message, entry
        moved = list(history.parent.glob(f"{HISTORY_FILE}.corrupt-*"))
        assert moved and moved[0].read_bytes().startswith(b"this is not a database")
        await fleet.wait_for(lambda s: all(h.last_poll for h in s.hosts), 20)  # polling goes on
        assert fleet.archive is not None and fleet.archive.enabled  # a fresh one took its place
    finally:
        await fleet.stop()


async def test_host_state_changes_are_kept_for_reports(tmp_path: Path) -> None:
    text = (DATA / "fleet.toml").read_text().replace("@DATA@", str(DATA))
    text += '\n[[hosts]]\nname = "kvm-dead"\nuri = "test:///nonexistent/dead.xml"\n'
    config = parse_config(text, file="fleet.toml")
    env = {"XDG_DATA_HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}
    (tmp_path / "run").mkdir(mode=0o700)
    fleet = make_fleet(config, build_inventory(config), env=env, archive=True)
    await fleet.start()
    try:
        await fleet.wait_for(lambda s: all(h.status != "connecting" for h in s.hosts), 20)
        assert fleet.archive is not None
        await asyncio.to_thread(fleet.archive.flush)
        events = await asyncio.to_thread(fleet.archive.events, 0.0, fleet.clock() + 1)
    finally:
        await fleet.stop()
    kept = {(key, kind, text.split(":")[0]) for _t, key, kind, text in events}
    assert ("kvm-dead", "state", "unreachable") in kept, events
    assert ("kvm-a", "state", "up") in kept and ("kvm-b", "state", "up") in kept, events


async def test_a_failing_alert_hook_is_reported_in_the_task_log(tmp_path: Path) -> None:
    text = (DATA / "fleet.toml").read_text().replace("@DATA@", str(DATA))
    text += '\n[[hosts]]\nname = "kvm-dead"\nuri = "test:///nonexistent/dead.xml"\n'
    text += '\n[alerts]\nhook = "echo no such pager >&2; exit 3"\n'
    text += '\n[[alerts.rules]]\nname = "host-unreachable"\nfor = 0\n'
    config = parse_config(text, file="fleet.toml")
    env = {"XDG_DATA_HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path)}
    (tmp_path / "run").mkdir(mode=0o700)
    fleet = make_fleet(config, build_inventory(config), env=env)
    await fleet.start()
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while not [e for e in fleet.activity.entries() if e.action == "alert hook"]:
            assert asyncio.get_running_loop().time() < deadline, fleet.activity.entries()
            await asyncio.sleep(0.05)
    finally:
        await fleet.stop()
    [entry] = [e for e in fleet.activity.entries() if e.action == "alert hook"]
    assert entry.state == "failed" and entry.host == "kvm-dead", entry
    assert "no such pager" in entry.message and "3" in entry.message, entry.message
