"""`vimtui vm ...` against the lab: bulk across hosts, confirmation, dry run, JSON, exit status, audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.lab import Lab
from tests.lab.support import dom_state

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


def audit(data: Path) -> list[dict[str, object]]:
    """The outcome records (each task that ran also has a "started" record before it)."""
    path = data / "vimtui" / "audit.log"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in records if r["outcome"] != "started"]


def test_bulk_start_and_stop_five_guests_on_two_hosts(
    lab: Lab, tmp_path: Path, scratch: list[tuple[str, str]]
) -> None:
    tag = uuid.uuid4().hex[:4]
    guests = [("kvm02", f"b{tag}-{i}") for i in range(3)] + [("kvm03", f"b{tag}-{i}") for i in range(3, 5)]
    for host, name in guests:
        scratch.append((host, name))
        lab.add_guest(host, name, start=False)
    names = [n for _, n in guests]

    out = vimtui(lab, tmp_path, "vm", "start", *names, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    tasks = json.loads(out.stdout)
    assert [(t["host"], t["vm"], t["state"]) for t in tasks] == [(h, n, "done") for h, n in guests]
    assert all(dom_state(lab, h, n) == "running" for h, n in guests)
    # one lane per host: the two hosts' tasks overlapped in time, each host's ran one after the other
    by_host: dict[str, list[dict[str, float]]] = {}
    for t in tasks:
        by_host.setdefault(t["host"], []).append(t)
    spans = {h: (min(t["started"] for t in ts), max(t["ended"] for t in ts)) for h, ts in by_host.items()}
    assert spans["kvm02"][0] < spans["kvm03"][1] and spans["kvm03"][0] < spans["kvm02"][1]
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


def test_shutdown_waits_and_snapshot_list(lab: Lab, tmp_path: Path, scratch: list[tuple[str, str]]) -> None:
    name = f"s-{uuid.uuid4().hex[:4]}"
    scratch.append(("kvm01", name))
    lab.add_guest("kvm01", name, disk=True, start=False)
    out = vimtui(lab, tmp_path, "vm", "snapshot", "create", name, "--name", "base", "--description", "clean")
    assert out.returncode == 0, out.stdout + out.stderr
    out = vimtui(lab, tmp_path, "vm", "snapshot", "create", name, "--name", "next")
    assert out.returncode == 0, out.stdout + out.stderr
    out = vimtui(lab, tmp_path, "vm", "snapshot", "list", name, "--json")
    assert out.returncode == 0, out.stderr
    (snaps,) = json.loads(out.stdout).values()
    assert [(s["name"], s["parent"], s["current"]) for s in snaps] == [
        ("base", None, False),
        ("next", "base", True),
    ]
    out = vimtui(lab, tmp_path, "vm", "snapshot", "list", name)
    assert "base" in out.stdout and "  next (current)" in out.stdout
