"""A host session that meets an unexpected error shows it as the host's state, with the message, and tries
again; it never sits at "connecting" for good. And what the SSH transport decides before it connects: which
known_hosts files it reads, the local socket's path, no agent forwarding."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec, parse_connect
from vimtui.core.model import HostStatus
from vimtui.core.poll.host_keys import own_known_hosts
from vimtui.core.poll.session import SessionSettings
from vimtui.core.poll.transport import (
    GLOBAL_KNOWN_HOSTS,
    SOCKET_PATH_MAX,
    SshTunnel,
    known_hosts_files,
    socket_name,
)


async def errored(fleet: Fleet, attempt: int) -> str:
    """The host's message once it is in the error state at `attempt` (so: it retried)."""
    state = await fleet.wait_for(
        lambda s: s.hosts[0].status == HostStatus.ERROR and f"attempt {attempt})" in s.hosts[0].message, 20
    )
    return state.hosts[0].message


async def test_a_keepalive_libvirt_will_not_take_is_an_error_state_that_retries(tmp_path: Path) -> None:
    fleet = Fleet([parse_connect("test:///default")], SessionSettings(keepalive_interval=1e12), tmp_path)
    await fleet.start(tick=False)
    try:
        first = await errored(fleet, 1)
        assert first.startswith("OverflowError: "), first
        await errored(fleet, 2)  # it tried again, on its own
    finally:
        await fleet.stop()


async def test_an_ssh_host_whose_uri_is_not_the_system_instance_says_so(tmp_path: Path) -> None:
    spec = HostSpec("h", "ssh", "qemu:///session", address="127.0.0.1")
    fleet = Fleet([spec], SessionSettings(backoff_max=1.0), tmp_path)
    await fleet.start(tick=False)
    try:
        message = await errored(fleet, 2)
        assert "only qemu:///system can be reached through the SSH transport" in message, message
    finally:
        await fleet.stop()


def test_known_hosts_files_follow_the_ssh_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        "Host special\n  UserKnownHostsFile ~/kh1 %d/kh2\n  GlobalKnownHostsFile /etc/g\n"
        "Host off\n  UserKnownHostsFile none\n"
        "Host *\n  User someone\n"
    )
    home = str(Path.home())
    ours = own_known_hosts()  # vimtui's own, where trusted keys go, is read too
    spec = HostSpec("s", "ssh", "qemu:///system", address="special")
    assert known_hosts_files(spec, (str(config),)) == [f"{home}/kh1", f"{home}/kh2", "/etc/g", ours]
    other = HostSpec("o", "ssh", "qemu:///system", address="other")
    assert known_hosts_files(other, (str(config),)) == [
        f"{home}/.ssh/known_hosts",
        f"{home}/.ssh/known_hosts2",
        *GLOBAL_KNOWN_HOSTS,
        ours,
    ]
    off = HostSpec("n", "ssh", "qemu:///system", address="off")
    assert known_hosts_files(off, (str(config),)) == [*GLOBAL_KNOWN_HOSTS, ours]
    own = HostSpec("s", "ssh", "qemu:///system", address="special", known_hosts="~/mine")
    assert known_hosts_files(own, (str(config),)) == [f"{home}/mine"]  # the host's own file wins


@pytest.mark.parametrize("name", ["kvm01", "x" * 300, "a/b c"])
def test_the_local_socket_path_fits_whatever_the_host_name(name: str) -> None:
    runtime = Path("/run/user/1000/vimtui")  # (not created: only the path is made)
    path = socket_name(runtime, name)
    assert len(path.encode()) <= SOCKET_PATH_MAX
    assert Path(path).parent == runtime
    assert socket_name(runtime, name) != socket_name(runtime, name)  # fresh each time


def test_a_runtime_directory_too_deep_for_a_socket_falls_back_to_a_short_one() -> None:
    """Seen under pytest-xdist, whose temporary directories are deeper: 'AF_UNIX path too long', every
    SSH host unreachable."""
    deep = Path("/tmp") / ("d" * 120) / "vimtui"  # (not created: only the path is made)
    path = socket_name(deep, "kvm01")
    assert len(path.encode()) <= SOCKET_PATH_MAX
    short = Path(path).parent
    assert short == Path(f"/tmp/vimtui-{os.geteuid()}")
    assert short.is_dir() and stat.S_IMODE(short.stat().st_mode) == 0o700


def test_no_agent_forwarding_whatever_the_ssh_config(tmp_path: Path) -> None:
    tunnel = SshTunnel(HostSpec("h", "ssh", "qemu:///system", address="h"), tmp_path)
    assert tunnel._connect_kwargs()["agent_forwarding"] is False
