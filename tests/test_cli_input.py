"""Bad input on the command line: a usage error (exit 2) or a failed action (exit 1) in one line, never a
traceback; --connect and --config wherever they are given. Each runs the real CLI against test:///."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vimtui.cli.exits import Exit
from vimtui.cli.reach import Unreachable, connected
from vimtui.core.config.settings import parse_config
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import parse_connect
from vimtui.core.poll.session import SessionSettings

VIMTUI = str(Path(sys.executable).parent / "vimtui")


def run(tmp: Path, *args: str, config: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp / "config.toml"
    path.write_text(config)
    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    environ = dict(
        os.environ,
        VIMTUI_CONFIG=str(path),
        XDG_DATA_HOME=str(tmp / "data"),
        XDG_RUNTIME_DIR=str(run_dir),
        **env,
    )
    return subprocess.run(
        [VIMTUI, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=environ
    )


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    """The error said, checked to be no traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    return out.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("stats", "--interval", "nan"), "--interval: must be a finite number"),
        (("stats", "--interval", "inf"), "--interval: must be a finite number"),
        (("stats", "--interval", "0"), "--interval: must be more than 0 seconds"),
        (("stats", "--interval", "soon"), "--interval: not a duration"),
        (("export", "--interval", "-1"), "--interval: must be more than 0 seconds"),
        (("vm", "shutdown", "--timeout", "-5", "test"), "vm shutdown: timeout: between 0 and 86400"),
        (("vm", "shutdown", "--timeout", "nan", "test"), "vm shutdown: timeout: a finite number"),
        (("vm", "migrate", "--to", "h", "--bandwidth", "-1", "test"), "vm migrate: bandwidth_mib: between 0"),
        (
            ("vm", "create", "x", "--host", "h", "--template", "t", "--vcpus", "0"),
            "--vcpus: must be at least 1",
        ),
        (("report", "--since", "@nan"), "--since: not epoch seconds"),
        (("report", "--top", "-1"), "--top: must be at least 0"),
        (("report", "--top", "2.5"), "--top: not a whole number"),
        (("--connect", "ssh://[::1", "hosts"), "Invalid IPv6 URL"),
    ],
)
def test_bad_numbers_and_uris_are_usage_errors(tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    out = run(tmp_path, *args)
    assert out.returncode == Exit.USAGE, out.stderr
    assert said in one_line_error(out)


def test_durations_are_read_one_way(tmp_path: Path) -> None:
    """--interval takes seconds or a duration, as the config does."""
    out = run(tmp_path, "stats", "--interval", "1s", "--count", "1", "--json", "--connect", "test:///default")
    assert out.returncode == Exit.OK, out.stderr


def test_a_failing_editor_fails_the_edit_without_a_traceback(tmp_path: Path) -> None:
    out = run(tmp_path, "--connect", "test:///default", "vm", "edit", "test", EDITOR="false")
    assert out.returncode == Exit.FAILED
    assert "the editor 'false' exited with status 1" in one_line_error(out)


def test_a_console_on_a_driver_without_consoles_fails_without_a_traceback(tmp_path: Path) -> None:
    out = run(tmp_path, "--connect", "test:///default", "vm", "console", "test")
    assert out.returncode == Exit.FAILED
    assert "cannot attach to its serial console" in one_line_error(out)


def test_connect_before_and_after_the_subcommand_are_merged(tmp_path: Path) -> None:
    out = run(tmp_path, "--connect", "test:///default", "hosts", "--connect", "test:///default", "--json")
    assert out.returncode == Exit.OK, out.stderr
    assert [h["name"] for h in json.loads(out.stdout)] == ["test-default", "test-default-2"]
    out = run(tmp_path, "--connect", "test:///default", "vm", "--connect", "test:///default", "list")
    # a verb that does not exist: still a usage error, and --connect on three levels parse
    assert out.returncode == Exit.USAGE


def test_config_before_and_after_the_subcommand(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("[defaults]\ninterval = 7\n")
    same = run(
        tmp_path, "--config", str(other), "vms", "--config", str(other), "--connect", "test:///default"
    )
    assert same.returncode == Exit.OK, same.stderr
    out = run(tmp_path, "--config", str(tmp_path / "config.toml"), "vms", "--config", str(other))
    assert out.returncode == Exit.USAGE
    assert "--config given more than once" in one_line_error(out)
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\ninterval = -1\n")
    out = run(tmp_path, "vms", "--config", str(bad), "--connect", "test:///default")
    assert out.returncode == Exit.USAGE, "a --config after the subcommand is read, not dropped"
    assert f"{bad}:2: defaults.interval" in one_line_error(out)


async def test_hosts_still_connecting_at_the_deadline_are_named(tmp_path: Path) -> None:
    """A headless command's wait for its hosts ends in Unreachable (exit 3) naming them."""
    config = parse_config("")
    fleet = Fleet([parse_connect("test:///default")], SessionSettings(interval=0.5), tmp_path / "run")
    await fleet.start(tick=False)
    try:
        with pytest.raises(Unreachable) as caught:
            await connected(fleet, config, within=0.0)
        assert caught.value.hosts == ["test-default"]
        assert "test-default: no answer within 0 s" in str(caught.value)
        state = await connected(fleet, config, within=30.0)
        assert state.hosts[0].status != "connecting"
    finally:
        await fleet.stop()
