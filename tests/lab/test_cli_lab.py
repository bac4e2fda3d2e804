"""The headless CLI against the lab: `vimtui hosts|vms|stats`, their JSON and exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.lab import Lab

pytestmark = pytest.mark.lab


def direct_names(lab: Lab, host: str) -> set[str]:
    with lab.connect(host) as conn:
        return {d.name() for d in conn.listAllDomains()}


def vimtui(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "vimtui"
    return subprocess.run(
        [str(exe), "--config", str(lab.config_file), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_cli_hosts_json(lab: Lab) -> None:
    out = vimtui(lab, "hosts", "--json")
    assert out.returncode == 0, out.stderr
    hosts = json.loads(out.stdout)
    assert [h["name"] for h in hosts] == ["kvm01", "kvm02", "kvm03"]
    assert all(h["status"] == "up" and h["hostname"] == h["name"] for h in hosts)
    assert [h["vms"] for h in hosts] == [len(direct_names(lab, h["name"])) for h in hosts]


def test_cli_vms_on_one_host(lab: Lab) -> None:
    out = vimtui(lab, "vms", "--host", "kvm02", "--json")
    assert out.returncode == 0, out.stderr
    assert {v["name"] for v in json.loads(out.stdout)} == direct_names(lab, "kvm02")
    text = vimtui(lab, "vms")
    assert text.returncode == 0 and "web01" in text.stdout and "cache01" in text.stdout


def test_cli_stats_gives_rates(lab: Lab) -> None:
    out = vimtui(lab, "stats", "--count", "2", "--interval", "1", "--json")
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(docs) == 2
    running = [v for v in docs[-1]["vms"] if v["state"] == "running"]
    assert running and all(v["cpu_pct"] is not None and 0 <= v["cpu_pct"] <= 100 for v in running)


def test_cli_exit_3_when_a_host_is_unreachable(lab: Lab) -> None:
    out = vimtui(lab, "hosts", "--connect", f"ssh://root@10.{lab.octet}.0.98")
    assert out.returncode == 3
    assert f"10.{lab.octet}.0.98" in out.stderr and "unreachable" in out.stderr
    assert "kvm01" in out.stdout  # the others are still listed


def test_cli_unknown_host_is_a_usage_error(lab: Lab) -> None:
    out = vimtui(lab, "vms", "--host", "nosuch")
    assert out.returncode == 2 and "no such host: nosuch" in out.stderr


def test_cli_direct_libvirt_uri(lab: Lab) -> None:
    exe = Path(sys.executable).parent / "vimtui"
    out = subprocess.run(
        [str(exe), "--config", "/dev/null", "vms", "--connect", "test:///default", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [v["name"] for v in json.loads(out.stdout)] == ["test"]
