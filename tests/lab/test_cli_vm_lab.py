"""`vimtui vm ...` against the lab: bulk across hosts, confirmation, dry run, JSON, exit status, audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from tests.conftest import wait_until
from tests.lab.gates import hook_gate, wait_held
from tests.lab.lab import Lab
from tests.lab.support import acpi_ready, dom_state

pytestmark = pytest.mark.lab


@pytest.fixture
def scratch(lab: Lab) -> Iterator[list[tuple[str, str]]]:
    made: list[tuple[str, str]] = []
    yield made
    for host, name in made:
        lab.remove_guest(host, name)


def vimtui(lab: Lab, data: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "vimtui"
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    return subprocess.run(
        [str(exe), "--config", str(lab.config_file), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def vimtui_started(lab: Lab, data: Path, *args: str) -> subprocess.Popen[str]:
    """`vimtui` with the lab's config, running on (vimtui() waits for its end)."""
    exe = Path(sys.executable).parent / "vimtui"
    return subprocess.Popen(
        [str(exe), "--config", str(lab.config_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "XDG_DATA_HOME": str(data)},
    )


def audit(data: Path) -> list[dict[str, object]]:
    """The outcome records (each task that ran also has a "started" record before it)."""
    path = data / "vimtui" / "audit.log"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in records if r["outcome"] != "started"]


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
def test_bulk_start_and_stop_five_guests_on_two_hosts(
    lab: Lab, tmp_path: Path, scratch: list[tuple[str, str]]
) -> None:
    tag = uuid.uuid4().hex[:4]
    guests = [("kvm02", f"b{tag}-{i}") for i in range(3)] + [("kvm03", f"b{tag}-{i}") for i in range(3, 5)]
    for host, name in guests:
        scratch.append((host, name))
        lab.add_guest(host, name, start=False)
    names = [n for _, n in guests]

    # one lane per host: while the start of kvm02's first guest is held (libvirt's hook waits at a gate),
    # kvm03's guests start all the same; a single queue for both hosts would keep them waiting behind it
    with hook_gate(lab, "kvm02", names[0]) as gate:
        cli = vimtui_started(lab, tmp_path, "vm", "start", *names, "--json")
        try:
            wait_held(gate, f"{names[0]}'s start", 240)
            wait_until(
                "kvm03's guests running while kvm02's first start is held",
                lambda: all(dom_state(lab, h, n) == "running" for h, n in guests if h == "kvm03"),
                240,
            )
            assert cli.poll() is None, cli.communicate()
            assert gate.release()
            stdout, stderr = cli.communicate(timeout=300)
        finally:
            if cli.poll() is None:
                gate.release()
                cli.kill()
                cli.communicate()
    assert cli.returncode == 0, stdout + stderr
    tasks = json.loads(stdout)
    assert [(t["host"], t["vm"], t["state"]) for t in tasks] == [(h, n, "done") for h, n in guests]
    assert all(dom_state(lab, h, n) == "running" for h, n in guests)
    # each host's tasks ran one after the other
    by_host: dict[str, list[dict[str, float]]] = {}
    for t in tasks:
        by_host.setdefault(t["host"], []).append(t)
    for ts in by_host.values():
        ordered = sorted(ts, key=lambda t: t["started"])
        assert all(a["returned"] <= b["started"] for a, b in zip(ordered, ordered[1:], strict=False))

    # destroy is destructive: without a terminal and without --yes it asks nobody and does nothing
    out = vimtui(lab, tmp_path, "vm", "destroy", *names)
    assert out.returncode == 2 and "--yes" in out.stderr
    assert all(dom_state(lab, h, n) == "running" for h, n in guests)

    out = vimtui(lab, tmp_path, "vm", "destroy", *names, "--dry-run")
    assert out.returncode == 0 and out.stdout.count("would destroy") == 5
    assert all(dom_state(lab, h, n) == "running" for h, n in guests)

    out = vimtui(lab, tmp_path, "vm", "destroy", *names, "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert all(dom_state(lab, h, n) == "shutoff" for h, n in guests)
    records = [r for r in audit(tmp_path) if r["vm"] in names]
    assert (
        sorted((r["action"], r["outcome"]) for r in records)
        == [("destroy", "done")] * 5 + [("start", "done")] * 5
    )


def test_some_fail_others_go_on_and_exit_1(lab: Lab, tmp_path: Path, scratch: list[tuple[str, str]]) -> None:
    name = f"f-{uuid.uuid4().hex[:4]}"
    scratch.append(("kvm03", name))
    lab.add_guest("kvm03", name, start=False)
    out = vimtui(lab, tmp_path, "vm", "start", name, "no-such-vm", "cache01")
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(f"kvm03/{name}: done" in line for line in lines)
    assert any("no-such-vm: failed: no VM named 'no-such-vm'" in line for line in lines)
    assert any("cache01: failed: cache01 is running" in line for line in lines)
    assert dom_state(lab, "kvm03", name) == "running"
    outcomes = {r["vm"]: r["outcome"] for r in audit(tmp_path)}
    assert outcomes == {name: "done", "no-such-vm": "refused", "cache01": "refused"}


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
def test_shutdown_waits_and_snapshot_list(lab: Lab, tmp_path: Path, scratch: list[tuple[str, str]]) -> None:
    name = f"s-{uuid.uuid4().hex[:4]}"
    scratch.append(("kvm01", name))
    lab.add_guest("kvm01", name, disk=True)
    wait_until(f"{name} watching its power button", lambda: acpi_ready(lab, "kvm01", name), 180)
    out = vimtui(lab, tmp_path, "vm", "shutdown", name, "--timeout", "600")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "shut down by the guest (ACPI)" in out.stdout, out.stdout
    # libvirt's word: off, and because the guest shut down (not forced)
    assert dom_reason(lab, "kvm01", name) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN)

    out = vimtui(lab, tmp_path, "vm", "snapshot", "create", name, "--name", "base", "--description", "clean")
    assert out.returncode == 0, out.stdout + out.stderr
    out = vimtui(lab, tmp_path, "vm", "snapshot", "create", name, "--name", "next")
    assert out.returncode == 0, out.stdout + out.stderr
    # what libvirt has: base, then next on top of it (current), base with its description
    with lab.connect("kvm01") as conn:
        dom = conn.lookupByName(name)
        snaps = {s.getName(): s for s in dom.listAllSnapshots()}
        assert set(snaps) == {"base", "next"}
        assert snaps["next"].getParent().getName() == "base"
        assert dom.snapshotCurrent().getName() == "next"
        assert "<description>clean</description>" in snaps["base"].getXMLDesc()
        with pytest.raises(libvirt.libvirtError):
            snaps["base"].getParent()
    # and vimtui's list says the same
    out = vimtui(lab, tmp_path, "vm", "snapshot", "list", name, "--json")
    assert out.returncode == 0, out.stderr
    (listed,) = json.loads(out.stdout).values()
    assert [(s["name"], s["parent"], s["current"]) for s in listed] == [
        ("base", None, False),
        ("next", "base", True),
    ]
    out = vimtui(lab, tmp_path, "vm", "snapshot", "list", name)
    assert "base" in out.stdout and "  next (current)" in out.stdout


IGNORE_POWER_BUTTON = (
    "printf '#!/bin/sh\\nexec sleep 100000\\n' > /etc/powerbutton; "
    "for f in $(grep -l -e /etc/powerbutton -e bs=24 /proc/[0-9]*/cmdline 2>/dev/null); "
    "do f=${f#/proc/}; kill ${f%/cmdline} 2>/dev/null; done"
)
"""Typed on a lab guest's console: its power-button watcher is replaced by one that does nothing (busybox
init starts the new one), so the ACPI button is pressed for nobody."""


@pytest.mark.timeout(900)  # generous deadlines inside, on a loaded machine
def test_a_guest_that_ignores_acpi_shutdown_fails_the_wait_then_is_forced(
    lab: Lab, tmp_path: Path, scratch: list[tuple[str, str]]
) -> None:
    name = f"i-{uuid.uuid4().hex[:4]}"
    scratch.append(("kvm03", name))
    lab.add_guest("kvm03", name)
    wait_until(f"{name} watching its power button", lambda: acpi_ready(lab, "kvm03", name), 180)
    assert lab.on_console("kvm03", name, IGNORE_POWER_BUTTON, 120)
    out = vimtui(lab, tmp_path, "vm", "shutdown", name, "--timeout", "15")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "still running after 15 s: the guest did not act on the ACPI power button" in out.stdout
    assert dom_reason(lab, "kvm03", name)[0] == libvirt.VIR_DOMAIN_RUNNING
    # with --force: the same wait, then forced off
    out = vimtui(lab, tmp_path, "vm", "shutdown", name, "--timeout", "15", "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "still running after 15 s: forced off" in out.stdout, out.stdout
    off = (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)
    assert dom_reason(lab, "kvm03", name) == off
    outcomes = [(r["action"], r["outcome"]) for r in audit(tmp_path) if r["vm"] == name]
    assert outcomes == [("shutdown", "failed"), ("shutdown", "done")], outcomes


def dom_reason(lab: Lab, host: str, name: str) -> tuple[int, int]:
    """A guest's state and its reason, as libvirt says (not through vimtui)."""
    with lab.connect(host) as conn:
        state, reason = conn.lookupByName(name).state()
        return state, reason
