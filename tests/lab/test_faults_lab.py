"""Faults and limits against the lab: a console taken over is said and audited, a delete that would remove a
volume someone else needs is refused, and SSH as the operator's ssh config has it (known_hosts files named
there, none at all, long host names, qemu+ssh:// URIs through vimtui's own tunnel)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.lab.lab import Lab
from tests.lab.support import FAST, act, seen, started, until
from tests.lab.test_migrate_console_lab import Output
from vimtui.core.actions.console import ESCAPE, TAKEOVER, attach_terminal, console_audit
from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.tasks import TaskState

pytestmark = pytest.mark.lab

STEADY = replace(FAST, interval=3.0, call_timeout=20.0, keepalive_interval=5.0, keepalive_count_max=4)
VIMTUI = str(Path(sys.executable).parent / "vimtui")


@pytest.fixture
async def fleet(lab: Lab, tmp_path: Path) -> AsyncIterator[Fleet]:
    f = await started(lab, tmp_path / "run", audit=AuditLog(tmp_path / "audit.log"), **asdict(STEADY))
    yield f
    await f.stop()


@pytest.fixture
def scratch(lab: Lab) -> Iterator[list[tuple[str, str]]]:
    """(host, name) of guests a test made: removed afterwards (volumes named after them too)."""
    made: list[tuple[str, str]] = []
    yield made
    for host, name in made:
        lab.remove_guest(host, name)


def records(fleet: Fleet) -> list[dict[str, Any]]:
    assert fleet.tasks.audit is not None
    return [json.loads(line) for line in fleet.tasks.audit.path.read_text().splitlines()]


# --------------------------------------------------------------------------------------------- console


async def test_a_console_held_elsewhere_is_taken_over_and_that_is_said_and_audited(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]
) -> None:
    host, name = "kvm01", f"tk-{uuid.uuid4().hex[:6]}"
    scratch.append((host, name))
    await asyncio.to_thread(lab.add_guest, host, name)
    await seen(fleet, host, name)
    state = await until(fleet, f"{name} running", lambda s: s.find_vm(name, host)[0].state == "running")
    [vm] = state.find_vm(name, host)
    with lab.connect(host) as other:  # another client holds the console (virsh console, another vimtui)
        held = other.newStream(0)
        other.lookupByName(name).openConsole(None, held, 0)
        master, slave = os.openpty()
        out = Output(master)
        audit = fleet.tasks.audit
        assert audit is not None
        conn = fleet.sessions[host].connection()
        attached = asyncio.ensure_future(
            asyncio.to_thread(
                attach_terminal, conn, vm.uuid, ESCAPE, slave, slave, audit=console_audit(audit, vm)
            )
        )
        try:
            await out.until(TAKEOVER.encode(), 30)  # said on the terminal as it attaches
            os.write(master, ESCAPE)
            reason = await asyncio.wait_for(attached, 20)
        finally:
            if not attached.done():
                os.write(master, ESCAPE)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(attached, 10)
            out.close()
            os.close(master)
            os.close(slave)
        assert reason == f"{name}: detached (^]) ({TAKEOVER})"
        with pytest.raises(libvirt.libvirtError):  # the other client's console was closed
            for _ in range(50):
                held.recv(1024)
        with contextlib.suppress(libvirt.libvirtError):
            held.abort()
    console = [(r["action"], r["outcome"], r["vm"]) for r in records(fleet) if r["action"] == "console"]
    assert console == [("console", o, name) for o in ("started", "took-over", "closed")]


# ---------------------------------------------------------------------------------------------- delete


def clone_xml(name: str, base: str) -> str:
    return (
        f"<volume><name>{name}</name><capacity unit='MiB'>64</capacity>"
        f"<target><format type='qcow2'/></target>"
        f"<backingStore><path>{base}</path><format type='qcow2'/></backingStore></volume>"
    )


async def test_delete_refuses_a_volume_that_backs_a_clone_or_another_vm_uses(
    lab: Lab, fleet: Fleet, scratch: list[tuple[str, str]]
) -> None:
    host, name = "kvm03", f"dl-{uuid.uuid4().hex[:6]}"
    other = f"{name}-b"
    scratch += [(host, name), (host, other)]
    await asyncio.to_thread(lab.add_guest, host, name, disk=True, start=False)
    with lab.connect(host) as conn:
        pool = conn.storagePoolLookupByName("default")
        base = pool.storageVolLookupByName(f"{name}.qcow2").path()
        pool.createXML(clone_xml(f"{name}-clone.qcow2", base), 0)
    await seen(fleet, host, name)

    [task] = await act(fleet, "delete", [name], host=host, remove_storage=["vda"])
    assert task.state == TaskState.FAILED
    assert f"is in use: the base of default/{name}-clone.qcow2 (linked clones)" in task.error, task.error
    with lab.connect(host) as conn:  # nothing touched
        conn.lookupByName(name)
        conn.storagePoolLookupByName("default").storageVolLookupByName(f"{name}.qcow2")

    with lab.connect(host) as conn:  # no clone now, but another VM has the same volume as its disk
        conn.storagePoolLookupByName("default").storageVolLookupByName(f"{name}-clone.qcow2").delete(0)
        root = ET.fromstring(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        root.find("name").text = other  # type: ignore[union-attr]
        root.remove(root.find("uuid"))  # type: ignore[arg-type]
        for iface in root.iterfind("devices/interface"):  # a MAC of its own
            iface.remove(iface.find("mac"))  # type: ignore[arg-type]
        xml_other = ET.tostring(root, "unicode")
        conn.defineXML(xml_other)
    await seen(fleet, host, other)
    [task] = await act(fleet, "delete", [name], host=host, remove_storage=["vda"])
    assert task.state == TaskState.FAILED
    assert f"is in use: a disk of {other}" in task.error, task.error
    with lab.connect(host) as conn:
        conn.lookupByName(name)
        conn.storagePoolLookupByName("default").storageVolLookupByName(f"{name}.qcow2")


# ------------------------------------------------------------------------------------------------- SSH


def cli(home: Path, *args: str, config: str = "") -> subprocess.CompletedProcess[str]:
    """vimtui with its own HOME (so its ~/.ssh/config), no agent, its own data and runtime dirs."""
    (home / "config.toml").write_text(config)
    run = home / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(run), XDG_DATA_HOME=str(home / "data"))
    return subprocess.run(
        [VIMTUI, "--config", str(home / "config.toml"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def ssh_config(home: Path, lab: Lab, address: str, *lines: str) -> None:
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    body = [f"Host {address}", "  User root", f"  IdentityFile {lab.key_file}", *(f"  {x}" for x in lines)]
    (ssh / "config").write_text("\n".join(body) + "\n")


def host_row(out: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    [row] = json.loads(out.stdout)
    return dict(row)


@pytest.mark.parametrize("option", ["UserKnownHostsFile", "GlobalKnownHostsFile"])
def test_known_hosts_files_named_in_the_ssh_config_are_honoured(
    lab: Lab, tmp_path: Path, option: str
) -> None:
    address = lab.host("kvm02").address
    shutil.copy(lab.known_hosts, tmp_path / "kh")
    ssh_config(tmp_path, lab, address, f"{option} {tmp_path / 'kh'}")
    out = cli(tmp_path, "hosts", "--json", "--connect", f"ssh://{address}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert host_row(out)["status"] == "up"


def test_no_known_hosts_file_at_all_gives_the_fingerprint_not_enoent(lab: Lab, tmp_path: Path) -> None:
    address = lab.host("kvm02").address
    ssh_config(tmp_path, lab, address)  # no known_hosts named; ~/.ssh/known_hosts does not exist
    out = cli(tmp_path, "hosts", "--json", "--connect", f"ssh://{address}")
    assert out.returncode == 3, out.stdout + out.stderr
    row = host_row(out)
    assert row["status"] == "hostkey-mismatch", row
    pub = (Path(lab.host("kvm02").dir) / "ssh_host_ed25519_key.pub").read_text().split()
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", "-"], input=" ".join(pub), capture_output=True, text=True, check=True
    ).stdout.split()[1]
    message = row["message"]
    assert f"unknown host key ssh-ed25519 {fingerprint} (not in known_hosts: " in message, message
    assert f"{tmp_path}/.ssh/known_hosts (missing)" in row["message"]
    assert "No such file" not in row["message"]


def test_a_long_host_name_does_not_break_the_tunnel(lab: Lab, tmp_path: Path) -> None:
    h = lab.host("kvm03")
    name = "rack-" + "x" * 110
    config = (
        f'[[hosts]]\nname = "{name}"\naddress = "{h.address}"\nuser = "root"\n'
        f'identity = "{lab.key_file}"\nknown_hosts = "{lab.known_hosts}"\n'
    )
    out = cli(tmp_path, "hosts", "--json", config=config)
    assert out.returncode == 0, out.stdout + out.stderr
    row = host_row(out)
    assert (row["name"], row["status"]) == (name, "up")


def test_a_qemu_ssh_uri_goes_through_our_strict_tunnel(lab: Lab, tmp_path: Path) -> None:
    address = lab.host("kvm01").address
    uri = f"qemu+ssh://root@{address}/system?keyfile={lab.key_file}&known_hosts={lab.known_hosts}"
    out = cli(tmp_path, "hosts", "--json", "--connect", uri)
    assert out.returncode == 0, out.stdout + out.stderr
    row = host_row(out)
    assert (row["transport"], row["status"]) == ("ssh", "up")
    (tmp_path / "empty").write_text("")  # a key not listed: refused, never accepted (libvirt's no_verify)
    uri = f"qemu+ssh://root@{address}/system?keyfile={lab.key_file}&known_hosts={tmp_path / 'empty'}"
    out = cli(tmp_path, "hosts", "--json", "--connect", uri)
    assert out.returncode == 3, out.stdout + out.stderr
    assert host_row(out)["status"] == "hostkey-mismatch"
    out = cli(tmp_path, "hosts", "--connect", f"qemu+ssh://root@{address}/system?no_verify=1")
    assert out.returncode == 2 and "no_verify is not honoured" in out.stderr, out.stderr
