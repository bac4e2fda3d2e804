"""Profiles on the lab: a viewer has every action refused by vimtui (the core, the screen, the CLI with exit
2), and a change forced through its own connection (libvirt called directly on the session's connection)
is refused by libvirt itself, the viewer being connected through the read-only socket; virsh on the host
shows nothing changed. `vimtui access` says what the lab's account can do there."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.lab import Lab
from tests.lab.support import FAST, seen, spec
from tests.ui.conftest import typed
from vimtui.core.actions import of_kind, operations
from vimtui.core.config.settings import load_config
from vimtui.core.fleet.fleet import Fleet, QueryFailed
from vimtui.core.fleet.inventory import build_inventory
from vimtui.ui.app import VimApp, make_app
from vimtui.ui.widgets.vm_table import VmTable

pytestmark = pytest.mark.lab

HOST = "kvm01"


def virsh_facts(lab: Lab) -> dict[str, str]:
    """What virsh on the host says of its guests: the states, definitions, autostart and snapshots."""
    names = lab.exec(HOST, ["virsh", "list", "--all", "--name"]).split()
    out = {"domains": " ".join(sorted(names))}
    for name in names:
        out[f"{name} state"] = lab.exec(HOST, ["virsh", "domstate", name]).strip()
        info = lab.exec(HOST, ["virsh", "dominfo", name])
        out[f"{name} autostart"] = next(line for line in info.splitlines() if line.startswith("Autostart"))
        out[f"{name} snapshots"] = lab.exec(HOST, ["virsh", "snapshot-list", name, "--name"]).strip()
        out[f"{name} description"] = lab.exec(HOST, ["virsh", "desc", name], check=False).strip()
    return out


def forced_changes(uuid: str) -> list[tuple[str, Any]]:
    """Changes made with libvirt directly, as a script would through the session's connection."""
    import libvirt

    def destroy(conn: Any) -> None:
        conn.lookupByUUIDString(uuid).destroy()

    def suspend(conn: Any) -> None:
        conn.lookupByUUIDString(uuid).suspend()

    def autostart(conn: Any) -> None:
        dom = conn.lookupByUUIDString(uuid)
        dom.setAutostart(0 if dom.autostart() else 1)

    def describe(conn: Any) -> None:
        conn.lookupByUUIDString(uuid).setMetadata(
            libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, "forced", None, None, libvirt.VIR_DOMAIN_AFFECT_CONFIG
        )

    def snapshot(conn: Any) -> None:
        conn.lookupByUUIDString(uuid).snapshotCreateXML(
            "<domainsnapshot><name>forced</name></domainsnapshot>"
        )

    def undefine(conn: Any) -> None:
        conn.lookupByUUIDString(uuid).undefine()

    def define(conn: Any) -> None:
        conn.defineXML(conn.lookupByUUIDString(uuid).XMLDesc(0))

    return [
        ("destroy", destroy),
        ("suspend", suspend),
        ("autostart", autostart),
        ("describe", describe),
        ("snapshot", snapshot),
        ("undefine", undefine),
        ("define", define),
    ]


async def test_a_viewer_is_refused_by_vimtui_and_its_connection_by_libvirt(lab: Lab, tmp_path: Path) -> None:
    before = virsh_facts(lab)
    fleet = Fleet([spec(lab, HOST, profile="viewer")], FAST, tmp_path / "run")
    await fleet.start()
    try:
        await fleet.connected(within=30)
        state = await seen(fleet, HOST, "web01")
        vms = state.vms_on(HOST)
        assert {v.name for v in vms} >= {"web01", "db01"}
        for act in of_kind("vm"):
            steps = operations.plan(state, act.name, vms, {})
            assert all(s.refusal and f"needs the {act.needs} profile" in s.refusal for s in steps), act.name
            tasks = operations.submit(fleet, steps)
            await fleet.tasks.wait(tasks)
            assert all(t.state == "failed" for t in tasks), act.name
        web01 = next(v for v in vms if v.name == "web01")
        for what, change in forced_changes(web01.uuid):
            with pytest.raises(QueryFailed, match="read only access prevents") as info:
                await fleet.ask(HOST, change)
            assert "read only" in str(info.value), what
    finally:
        await fleet.stop()
    assert virsh_facts(lab) == before


def vimtui(lab: Lab, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "vimtui"
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    return subprocess.run(
        [str(exe), "--config", str(lab.config_file), *args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def test_the_cli_refuses_a_viewer_with_exit_2_and_access_says_what_the_account_can(
    lab: Lab, tmp_path: Path
) -> None:
    before = virsh_facts(lab)
    for argv in (
        ("vm", "destroy", "web01", "--yes"),
        ("vm", "suspend", "web01", "db01"),
        ("vm", "snapshot", "create", "web01", "--name", "s1"),
        ("vm", "autostart", "web01"),
        ("vm", "delete", "db01", "--yes"),
        ("vm", "console", "web01"),
    ):
        done = vimtui(lab, tmp_path, "--profile", "viewer", *argv)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert f"(yours on {HOST}: viewer)" in done.stderr, (argv, done.stderr)
    assert virsh_facts(lab) == before
    done = vimtui(lab, tmp_path, "--profile", "viewer", "access", HOST, "--json")
    assert done.returncode == 0, done.stderr
    (found,) = json.loads(done.stdout)
    assert found["account"] == "root" and found["profile"] == "viewer" and found["can"] == "admin"
    assert [(s["path"], s["opens"]) for s in found["sockets"]] == [
        ("/run/libvirt/libvirt-sock-ro", True),
        ("/run/libvirt/libvirt-sock", True),
    ]
    assert {(c["key"], c["value"]) for c in found["config"]} >= {("auth_unix_rw", '"none"')}
    assert found["acl_driver"] is None


async def test_the_screen_offers_a_viewer_nothing(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    before = virsh_facts(lab)
    config = load_config(lab.config_file)
    app: VimApp = make_app(config, build_inventory(config, profile="viewer"))
    async with app.run_test(size=(140, 44)) as pilot:
        table = app.screen.query_one(VmTable)
        for _ in range(600):
            if any(v.name == "web01" for v in app.fleet.state.vms.values()) and table.rows:
                break
            await pilot.pause(0.1)
        await typed(pilot, "g")
        for _ in range(len(table.rows)):
            vm = table.current_vm
            if vm is not None and vm.name == "web01":
                break
            await typed(pilot, "j")
        assert table.current_vm is not None and table.current_vm.name == "web01"
        for act in of_kind("vm"):
            assert app.screen.check_action("vm_action", (act.name,)) is None, act.name
        assert app.screen.check_action("vm_console", ()) is None
        await typed(pilot, "X", "p", "ctrl+d")  # force off, suspend, delete: disabled keys
        await typed(pilot, "colon", *"destroy web01", "enter")
        await pilot.pause(0.5)
        assert all(e.state == "failed" for e in app.fleet.activity.entries() if e.vm == "web01")
    assert virsh_facts(lab) == before


LOOKER = "vro"
"""An account on the lab host outside the read-write socket's group (root): it can only look."""


@pytest.fixture
def looker(lab: Lab) -> Iterator[str]:
    """`vro` on kvm02 (the lab's sshd takes the lab's key for any account), in that host's own mount
    namespace only: /etc/passwd and /etc/group bound over with copies that have it."""
    host = "kvm02"
    lab.exec(
        host,
        [
            "sh",
            "-c",
            f"grep -q '^{LOOKER}:' /etc/passwd && exit 0; "
            f"cp /etc/passwd /run/passwd-lab; echo '{LOOKER}:x:1500:1500::/tmp:/bin/sh' >> /run/passwd-lab; "
            f"cp /etc/group /run/group-lab && echo '{LOOKER}:x:1500:' >> /run/group-lab; "
            "mount --bind /run/passwd-lab /etc/passwd && mount --bind /run/group-lab /etc/group",
        ],
    )
    yield host
    lab.exec(host, ["sh", "-c", "umount /etc/passwd; umount /etc/group"], check=False)


async def test_access_says_what_an_account_outside_the_libvirt_group_can(
    lab: Lab, looker: str, tmp_path: Path
) -> None:
    """The real boundary: the account reaches only the read-only socket. access says so (can: viewer;
    not enough for an operator profile, exit 1), a viewer fleet through it sees the guests, and an
    operator fleet cannot open libvirt at all."""
    from vimtui.core.poll.access import ask
    from vimtui.core.poll.transport import SshOptions

    as_looker = spec(lab, looker, user=LOOKER, profile="operator")
    found = await ask(as_looker, tmp_path / "run", SshOptions(connect_timeout=10))
    assert found.account == LOOKER and not found.error, found
    ro, rw = found.sockets
    assert ro.opens and ro.mode.startswith("srwxrwxrwx"), ro
    assert not rw.opens and rw.mode.startswith("srwxrwx---"), rw
    assert found.can == "viewer" and not found.enough
    text = "\n".join(found.lines())
    assert "read-write socket /run/libvirt/libvirt-sock" in text and "does not open" in text
    h = lab.host(looker)
    uri = f"qemu+ssh://{LOOKER}@{h.address}/system?keyfile={lab.key_file}&known_hosts={lab.known_hosts}"
    (tmp_path / "none.toml").write_text("")
    for profile, code in (("operator", 1), ("viewer", 0)):
        done = await asyncio.to_thread(
            subprocess.run,
            [str(Path(sys.executable).parent / "vimtui"), "--connect", uri, "--profile", profile, "access"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "XDG_DATA_HOME": str(tmp_path), "VIMTUI_CONFIG": str(tmp_path / "none.toml")},
        )
        assert done.returncode == code, (profile, done.stdout, done.stderr)
        assert f"account {LOOKER}" in done.stdout and "can: viewer" in done.stdout
    viewer = Fleet([spec(lab, looker, user=LOOKER, profile="viewer")], FAST, tmp_path / "v")
    operator = Fleet([spec(lab, looker, user=LOOKER, profile="operator")], FAST, tmp_path / "o")
    await viewer.start()
    await operator.start()
    try:
        await seen(viewer, looker, lab.host(looker).guests[0])
        state = await operator.connected(within=30)
        (host,) = state.hosts
        assert not host.status.healthy and not state.vms, host
    finally:
        await viewer.stop()
        await operator.stop()
