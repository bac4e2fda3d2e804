"""The shared audit on lab hosts: two operators (two XDG dirs, two user names) act on one host with the CLI;
the host's own file (read inside the host through the lab, not through vimtui) holds both operators'
records in one unbroken chain, and `vimtui audit show --host` shows both; a record that cannot reach the
host's file is recorded in the operator's own log and said; a host file edited on the host is found by
`audit verify --host`. The guest's state is checked with virsh on the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lab.lab import Lab
from vimtui.core.fleet.audit_chain import parse_head
from vimtui.core.fleet.audit_verify import verify_text

pytestmark = pytest.mark.lab

HOST, GUEST = "kvm03", "cache01"
HOST_FILE = "/var/log/vimtui/audit.jsonl"


def vimtui(lab: Lab, home: Path, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "USER": user,
        "LOGNAME": user,
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "vimtui"), "--config", str(lab.config_file), *args],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def host_records(lab: Lab) -> list[dict[str, Any]]:
    text = lab.exec(HOST, ["sh", "-c", f"cat {HOST_FILE} 2>/dev/null || true"])
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def virsh_state(lab: Lab) -> str:
    return lab.exec(HOST, ["virsh", "-c", "qemu:///system", "domstate", GUEST]).strip()


def test_two_operators_records_are_in_the_hosts_file_and_shown_together(lab: Lab, tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    since = time.time()
    done = vimtui(lab, alice, "alice", "vm", "suspend", GUEST)
    assert done.returncode == 0, done.stderr
    assert virsh_state(lab) == "paused"
    done = vimtui(lab, bob, "bob", "vm", "resume", GUEST)
    assert done.returncode == 0, done.stderr
    assert virsh_state(lab) == "running"
    assert "warning" not in done.stderr

    # the host's own file, read inside the host: both operators, one chain, head at its end
    recs = host_records(lab)
    ours = [r for r in recs if r["time"] >= since and r["vm"] == GUEST]
    assert [(r["user"], r["action"], r["outcome"]) for r in ours] == [
        ("alice", "suspend", "started"),
        ("alice", "suspend", "done"),
        ("bob", "resume", "started"),
        ("bob", "resume", "done"),
    ]
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    raw = lab.exec(HOST, ["cat", HOST_FILE]).encode()
    head = parse_head(lab.exec(HOST, ["cat", HOST_FILE + ".head"]))
    assert head is not None and head.seq == len(recs)
    assert verify_text(HOST_FILE, raw, head).intact
    mode = lab.exec(HOST, ["stat", "-c", "%a", HOST_FILE]).strip()
    assert mode == "600"

    # alice's view of the host: bob's records too (they are only in the host's file)
    shown = vimtui(lab, alice, "alice", "audit", "show", "--host", HOST, "--json", "--vm", GUEST)
    assert shown.returncode == 0, shown.stderr
    rows = [r for r in json.loads(shown.stdout)["records"] if r["time"] >= since]
    assert [(r["operator"].split("@")[0], r["found_in"]) for r in rows] == [
        ("alice", ["local", HOST]),
        ("alice", ["local", HOST]),
        ("bob", [HOST]),
        ("bob", [HOST]),
    ]
    text = vimtui(lab, bob, "bob", "audit", "show", "--host", HOST, "--user", "alice", "--since", "1h")
    assert text.returncode == 0, text.stderr
    assert "alice@" in text.stdout and "bob@" not in text.stdout and "suspend" in text.stdout

    verified = vimtui(lab, alice, "alice", "audit", "verify", "--host", HOST)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{HOST}:{HOST_FILE}: intact" in verified.stdout


def test_an_edit_of_the_hosts_file_is_found_at_its_line(lab: Lab, tmp_path: Path) -> None:
    home = tmp_path / "op"
    assert vimtui(lab, home, "carol", "vm", "suspend", GUEST).returncode == 0
    assert vimtui(lab, home, "carol", "vm", "resume", GUEST).returncode == 0
    recs = host_records(lab)
    line = len(recs) - 2  # carol's "resume started"
    assert recs[line - 1]["user"] == "carol"
    lab.exec(HOST, ["sed", "-i", f'{line}s/"carol"/"dave"/', HOST_FILE])
    verified = vimtui(lab, home, "carol", "audit", "verify", "--host", HOST)
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert f"{HOST}:{HOST_FILE}:{line}: edited" in verified.stdout
    lab.exec(HOST, ["sed", "-i", f'{line}s/"dave"/"carol"/', HOST_FILE])  # the next tests' chain
    assert vimtui(lab, home, "carol", "audit", "verify", "--host", HOST).returncode == 0


def test_a_record_the_host_cannot_take_is_recorded_locally_and_said(lab: Lab, tmp_path: Path) -> None:
    home = tmp_path / "op"
    moved = HOST_FILE + ".aside"
    lab.exec(HOST, ["sh", "-c", f"mv {HOST_FILE} {moved} && mkdir {HOST_FILE}"])  # no file can be opened
    try:
        done = vimtui(lab, home, "erin", "vm", "suspend", GUEST)
    finally:
        lab.exec(HOST, ["sh", "-c", f"rmdir {HOST_FILE} && mv {moved} {HOST_FILE}"])
    assert done.returncode == 0, done.stderr  # the action itself ran
    assert virsh_state(lab) == "paused"
    assert f"warning: audit: suspend started not appended to {HOST}:{HOST_FILE}" in done.stderr
    assert "Is a directory" in done.stderr  # the host's own words
    local = [json.loads(x) for x in (home / "data" / "vimtui" / "audit.log").read_text().splitlines()]
    failed = [r for r in local if r["action"] == "audit.host-append"]
    assert {r["args"]["outcome"] for r in failed} == {"started", "done"}
    assert all(r["host"] == HOST and r["outcome"] == "failed" and HOST_FILE in r["error"] for r in failed)
    shown = vimtui(lab, home, "erin", "audit", "show", "--local", "--json")
    assert any(r["action"] == "audit.host-append" for r in json.loads(shown.stdout)["records"])
    assert vimtui(lab, home, "erin", "vm", "resume", GUEST).returncode == 0
    assert virsh_state(lab) == "running"
