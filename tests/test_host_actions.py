"""Host-target actions: the plumbing (refusal, tasks, CLI verbs, key bindings made from the registry) and
host maintenance, on libvirt's test:/// driver and a host that cannot connect.

What breaks each: a mark not written to its file (lost at restart), a host in maintenance still offered by
placement, a host action needing its host run while the host is down, a maintenance mark refused because
the host does not answer, a host action missing from the CLI or the bindings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vimtui.core.actions import Action, operations, register, unregister
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.host_figures import HostFigures
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.fleet.maintenance import Maintenance
from vimtui.core.fleet.placement import Demand, place
from vimtui.core.fleet.tasks import TaskContext
from vimtui.core.poll.session import SessionSettings

HOST = "test-default"


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    broken = tmp_path / "missing.xml"  # the test driver cannot open it: the host ends in error
    specs = [parse_connect("test:///default"), parse_connect(f"test://{broken}")]
    f = Fleet(specs, SessionSettings(interval=0.5), tmp_path / "run")
    f.maintenance = Maintenance(tmp_path / "data" / "maintenance.json", f.figures)
    await f.start(tick=False)
    await f.connected(within=10)
    yield f
    await f.stop()


def _down(fleet: Fleet) -> str:
    return next(h.name for h in fleet.state.hosts if not h.status.healthy)


async def _run(fleet: Fleet, name: str, host: str, **args: object) -> operations.Step:
    state = fleet.publish()
    h = state.host(host)
    assert h is not None
    [step] = operations.plan_hosts(state, name, [h], args)
    tasks = operations.submit(fleet, [step])
    assert await fleet.tasks.wait(tasks, within=20)
    assert tasks[0].ok, tasks[0].error
    return step


async def test_maintenance_is_kept_and_leaves_placement(fleet: Fleet, tmp_path: Path) -> None:
    await _run(fleet, "maintenance", HOST, mode="on")
    state = fleet.publish()
    host = state.host(HOST)
    assert host is not None and host.maintenance is not None
    p = place(state, Demand(vcpus=1, memory_kib=1024))
    assert HOST not in p.hosts
    assert any(x.host == HOST and x.reason.startswith("in maintenance") for x in p.left_out)
    # a restart reads it back from the file
    again = Maintenance(tmp_path / "data" / "maintenance.json", HostFigures())
    again.load()
    assert set(again.marks) == {HOST} and again.problem == ""
    await _run(fleet, "maintenance", HOST, mode="off")
    assert fleet.publish().host(HOST).maintenance is None  # type: ignore[union-attr]
    assert json.loads((tmp_path / "data" / "maintenance.json").read_text()) == {"hosts": {}}


async def test_a_host_that_does_not_answer_can_still_be_marked(fleet: Fleet) -> None:
    down = _down(fleet)
    await _run(fleet, "maintenance", down, mode="on")
    assert fleet.publish().host(down).maintenance is not None  # type: ignore[union-attr]


async def test_a_host_action_needing_its_host_is_refused_while_it_is_down(fleet: Fleet) -> None:
    ran: list[str] = []

    def touch(ctx: TaskContext, host: str) -> str:
        ran.append(host)
        return f"touched {host} over {ctx.conn.getURI()}"

    register(Action("touch", "Touch", "a test host action", touch, target="host", key="ctrl+t"))
    try:
        state = fleet.publish()
        down = _down(fleet)
        refused = operations.plan_hosts(state, "touch", [state.host(down)])  # type: ignore[list-item]
        assert refused[0].refusal is not None and refused[0].refusal.startswith(f"host {down} is unreachable")
        tasks = operations.submit(fleet, refused)
        assert tasks[0].state == "failed" and not ran
        step = await _run(fleet, "touch", HOST)
        assert step.refusal is None and ran == [HOST]
        from vimtui.ui.host_actions import host_action_bindings

        assert "host.touch" in {b.id for b in host_action_bindings()}
        from vimtui.cli.main import build_parser

        args = build_parser().parse_args(["host", "touch", HOST])
        assert (args.command, args.verb, args.host_name) == ("host", "touch", HOST)
    finally:
        unregister("host.touch")


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text('[[hosts]]\nname = "kvm9"\nuri = "qemu+ssh://nobody@192.0.2.1/system"\n')
    env = os.environ | {"XDG_DATA_HOME": str(tmp_path / "share"), "XDG_RUNTIME_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "vimtui", "--config", str(config), *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_cli_host_maintenance(tmp_path: Path) -> None:
    """`vimtui host maintenance H on|off` on a host nobody can reach: vimtui's own mark, no connection."""
    marks = tmp_path / "share" / "vimtui" / "maintenance.json"
    dry = _cli(tmp_path, "host", "maintenance", "kvm9", "on", "--dry-run")
    assert dry.returncode == 0 and "would maintenance kvm9 (mode=on)" in dry.stdout and not marks.exists()
    on = _cli(tmp_path, "host", "maintenance", "kvm9", "on")
    assert on.returncode == 0, on.stderr
    assert "in maintenance" in on.stdout and set(json.loads(marks.read_text())["hosts"]) == {"kvm9"}
    bad = _cli(tmp_path, "host", "maintenance", "kvm9", "maybe")
    assert bad.returncode == 2 and "mode: one of on, off, not 'maybe'" in bad.stderr
    unknown = _cli(tmp_path, "host", "maintenance", "kvm1", "on")
    assert unknown.returncode == 2 and "no host 'kvm1'" in unknown.stderr
    off = _cli(tmp_path, "host", "maintenance", "kvm9", "--mode", "off")
    assert off.returncode == 0 and json.loads(marks.read_text()) == {"hosts": {}}
