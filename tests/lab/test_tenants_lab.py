"""Tenants on the lab: tenant and tags set by `vimtui vm tenant|tag` as libvirt shows them (`virsh dumpxml`,
live and inactive) and still there after the guest is stopped and started; a config scoped to one tenant
that sees only that tenant's guests in the CLI listing, `vimtui tenants`, the exporter's scrape, the report
made from what the exporter kept, and the screen's table; and a create past the tenant's quota refused with
the numbers, with `virsh list --all` unchanged."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.lab.lab import Lab
from tests.lab.test_screen_lab import row_of
from vimtui.core.config.settings import parse_config
from vimtui.core.fleet.inventory import build_inventory
from vimtui.ui.app import VimApp, make_app
from vimtui.ui.widgets.vm_table import VmTable

pytestmark = pytest.mark.lab

ACME = {"ten-a1": "kvm01", "ten-a2": "kvm02"}
"""The acme guests: a1 running (1 vCPU), a2 shut off (2 vCPUs, the template of the create)."""
OTHERS = {"ten-b1": "kvm01"}
QUOTA = 4
Setup = tuple[Path, Path, dict[str, str]]
"""The lab's config, the acme-scoped one, the environment (data and runtime dirs of the test's own)."""
SLOW = "[defaults]\nconnect_timeout = 60.0\ncall_timeout = 30.0\n"
"""acme's vCPU quota: 3 in use, so a copy of ten-a2 (2 more) does not fit."""


def vimtui(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "vimtui"), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def virsh(lab: Lab, host: str, *args: str) -> str:
    out = subprocess.run(lab.ssh_argv(host, "virsh", *args), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def tenants(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """Three scratch guests given their tenants by the CLI."""
    tmp = tmp_path_factory.mktemp("tenants")
    (tmp / "run").mkdir(mode=0o700)
    env = os.environ | {"XDG_DATA_HOME": str(tmp / "data"), "XDG_RUNTIME_DIR": str(tmp / "run")}
    guests = {**ACME, **OTHERS}
    try:
        lab.add_guest("kvm01", "ten-a1", vcpus=1)
        lab.add_guest("kvm02", "ten-a2", vcpus=2, start=False)
        lab.add_guest("kvm01", "ten-b1", vcpus=1)
        # the lab's config, with room for a loaded machine (a libvirt open over SSH took over 10 s here)
        plain = tmp / "lab.toml"
        plain.write_text(lab.config_file.read_text().replace("[defaults]\n", SLOW, 1))
        for name, host in guests.items():
            out = vimtui(plain, env, "vm", "tenant", f"{host}/{name}", "acme" if name in ACME else "beta")
            assert out.returncode == 0, out.stdout + out.stderr
        scoped = tmp / "acme.toml"
        scoped.write_text(
            'tenant = "acme"\n' + plain.read_text() + f"\n[tenants.acme]\nvcpus = {QUOTA}\nmemory = 4096\n"
        )
        yield plain, scoped, env
    finally:
        for name, host in guests.items():
            lab.remove_guest(host, name)


def test_tenant_and_tags_are_in_the_domain_xml_and_survive_a_restart(lab: Lab, tenants: Setup) -> None:
    plain, _scoped, env = tenants
    out = vimtui(plain, env, "vm", "tag", "ten-a1", "+web", "+prod", "-nothing")
    assert out.returncode == 0 and "tags: web, prod" in out.stdout, out.stdout + out.stderr
    out = vimtui(plain, env, "vm", "tag", "ten-a1", "-prod")
    assert out.returncode == 0 and "tags: web" in out.stdout, out.stdout + out.stderr
    for flags in ((), ("--inactive",)):
        xml = virsh(lab, "kvm01", "dumpxml", *flags, "ten-a1")
        assert 'xmlns:vimtui="https://vimtui.dev/xmlns/vm/1"' in xml
        assert "<vimtui:tenant>acme</vimtui:tenant>" in xml and "<vimtui:tags>web</vimtui:tags>" in xml
    assert "<vimtui:tenant>acme</vimtui:tenant>" in virsh(lab, "kvm02", "dumpxml", "--inactive", "ten-a2")
    virsh(lab, "kvm01", "destroy", "ten-a1")
    virsh(lab, "kvm01", "start", "ten-a1")
    xml = virsh(lab, "kvm01", "dumpxml", "ten-a1")
    assert "<vimtui:tenant>acme</vimtui:tenant>" in xml and "<vimtui:tags>web</vimtui:tags>" in xml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape_until(port: int, want: set[str], within: float) -> set[str]:
    """The VM names of the vimtui_vm_state series, once they include `want` (or at the deadline)."""
    names: set[str] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                text = r.read().decode()
        except OSError:
            text = ""
        names = {
            line.split('vm="', 1)[1].split('"', 1)[0]
            for line in text.splitlines()
            if line.startswith("vimtui_vm_state{")
        }
        if want <= names:
            return names
        time.sleep(1)
    return names


def test_a_scoped_config_sees_only_its_tenant_in_cli_exporter_and_report(lab: Lab, tenants: Setup) -> None:
    plain, scoped, env = tenants
    out = vimtui(scoped, env, "vms", "--json")
    assert out.returncode == 0, out.stderr
    assert {v["name"] for v in json.loads(out.stdout)} == set(ACME)
    assert all(v["tenant"] == "acme" for v in json.loads(out.stdout))
    out = vimtui(scoped, env, "tenants", "--json")
    (row,) = json.loads(out.stdout)
    assert (
        row["tenant"] == "acme" and row["vcpus"] == 3 and row["vms"] == 2 and row["quota"]["vcpus"] == QUOTA
    )
    port = _free_port()
    exporter = subprocess.Popen(
        [str(Path(sys.executable).parent / "vimtui"), "--config", str(scoped), "export"]
        + ["--listen", f"127.0.0.1:{port}", "--interval", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        names = _scrape_until(port, set(ACME), 90)
        assert names == set(ACME)

        def report() -> subprocess.CompletedProcess[str] | None:
            out = vimtui(scoped, env, "report", "--since", "1h", "--format", "json")
            return out if out.returncode == 0 else None

        # until a step of the history (10 s) is written for the report: later on a busy machine
        out = wait_until("a report of the tenant's history", report, timeout=180, interval=1.0)
    finally:
        exporter.send_signal(signal.SIGTERM)
        exporter.wait(30)
    doc = json.loads(out.stdout)
    assert {v["name"] for v in doc["vms"]} == {"ten-a1"}  # the running one has samples; no other tenant's
    assert {v["tenant"] for v in doc["vms"]} == {"acme"}
    out = vimtui(plain, env, "report", "--since", "1h", "--format", "json")
    assert {v["name"] for v in json.loads(out.stdout)["vms"]} == {"ten-a1"}  # only acme was ever kept


def test_a_create_past_the_quota_is_refused_with_the_numbers(lab: Lab, tenants: Setup) -> None:
    _plain, scoped, env = tenants
    before = [virsh(lab, h.name, "list", "--all", "--name") for h in lab.hosts]
    out = vimtui(scoped, env, "vm", "create", "ten-big", "--host", "kvm02", "--template", "ten-a2")
    assert out.returncode == 1
    assert f"acme: 3 of {QUOTA} vCPUs in use, 2 asked" in out.stdout, out.stdout + out.stderr
    assert [virsh(lab, h.name, "list", "--all", "--name") for h in lab.hosts] == before
    out = vimtui(scoped, env, "vm", "start", "ten-b1")  # another tenant's guest is not there to act on
    assert out.returncode == 1 and "no VM named 'ten-b1'" in out.stdout


async def test_the_screen_of_a_scoped_config_shows_only_its_tenant(lab: Lab, tenants: Setup) -> None:
    _plain, scoped, _env = tenants
    config = parse_config(scoped.read_text(), file=str(scoped))
    app: VimApp = make_app(config, build_inventory(config))
    async with app.run_test(size=(140, 44)) as pilot:
        table = app.screen.query_one(VmTable)
        for _ in range(600):  # until both acme guests are on screen (deadline ~60 s)
            if all(row_of(table, name) for name in ACME):
                break
            await pilot.pause(0.1)
        for name, host in ACME.items():
            row = row_of(table, name)
            assert row is not None and host in row, (name, row)
        shown = {v.name for v in app.fleet.state.vms.values()}
        assert shown == set(ACME)
        for h in lab.hosts:
            for guest in (*h.guests, *OTHERS):
                assert row_of(table, guest) is None, guest
        assert table.visible_count == 2
