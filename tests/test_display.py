"""The graphical console, short of the network: what a domain's XML says of its displays (read through
libvirt's test driver where a connection is needed), what the operator is told, which viewer is started
and how it is given the address, and the CLI's refusals. The forward itself crosses SSH: the lab tests it
(tests/lab/test_display_lab.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import libvirt
import pytest

from vimtui.core.actions.base import ActionError
from vimtui.core.actions.display import (
    display_refusal,
    graphics_of,
    notes,
    read_display,
    url,
)
from vimtui.core.actions.display_viewer import graphical, viewer_command
from vimtui.core.model import HostState, HostStatus, VmState

VIMTUI = str(Path(sys.executable).parent / "vimtui")


def domain(devices: str, name: str = "g") -> str:
    return (
        f"<domain type='test'><name>{name}</name><memory>131072</memory><os><type>hvm</type></os>"
        f"<devices>{devices}</devices></domain>"
    )


def test_the_live_xml_says_where_each_display_listens() -> None:
    shown, others = graphics_of(
        domain(
            "<graphics type='sdl'/>"
            "<graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>"
            "<listen type='address' address='127.0.0.1'/></graphics>"
            "<graphics type='spice' tlsPort='5902' autoport='yes' listen='0.0.0.0' passwd='s3cret'>"
            "<listen type='address' address='0.0.0.0'/></graphics>"
            "<graphics type='vnc' socket='/run/vnc.sock'><listen type='socket' socket='/run/vnc.sock'/>"
            "</graphics><graphics type='vnc'><listen type='none'/></graphics>"
        )
    )
    assert others == ["sdl", "vnc (listens nowhere)"]
    vnc, spice, sock = shown
    assert (vnc.protocol, vnc.target, vnc.remote_port, vnc.loopback_only, vnc.password) == (
        "vnc",
        "127.0.0.1",
        5901,
        True,
        False,
    )
    assert vnc.where == "127.0.0.1:5901" and url(vnc, "127.0.0.1", 40001) == "vnc://127.0.0.1:40001"
    # every address: reached through the host's loopback, and said to be open beyond it
    assert (spice.target, spice.loopback_only, spice.tls_only, spice.remote_port) == (
        "127.0.0.1",
        False,
        True,
        5902,
    )
    assert spice.password is True and url(spice, "127.0.0.1", 40002) == "spice://127.0.0.1?tls-port=40002"
    assert (sock.socket, sock.loopback_only, sock.remote_port) == ("/run/vnc.sock", True, None)
    v6, _ = graphics_of(domain("<graphics type='vnc' port='5900' listen='::'/>"))
    assert v6[0].target == "::1" and not v6[0].loopback_only and v6[0].where == "[::]:5900"
    # a specific address is where the forward goes: 127.0.0.1 would not answer there
    lan, _ = graphics_of(domain("<graphics type='vnc' port='5900' listen='10.1.2.3'/>"))
    assert lan[0].target == "10.1.2.3"


def test_an_expired_password_is_told_apart() -> None:
    xml = domain("<graphics type='vnc' port='5900' passwd='x' passwdValidTo='2020-01-01T00:00:00'/>")
    (before,), _ = graphics_of(xml, now=time.mktime((2019, 1, 1, 0, 0, 0, 0, 0, 0)))
    (after,), _ = graphics_of(xml, now=time.time())
    assert not before.password_expired and after.password_expired
    said = notes(after, "kvm01", "web01", "127.0.0.1:1")
    assert said[0].startswith("its password has expired")


def test_notes_say_what_protects_the_display() -> None:
    (plain,), _ = graphics_of(domain("<graphics type='vnc' port='5900' listen='127.0.0.1'/>"))
    said = notes(plain, "kvm01", "web01", "127.0.0.1:40001")
    assert said == ["no password: while the forward is open, anyone on this machine can use 127.0.0.1:40001"]
    (wide,), _ = graphics_of(domain("<graphics type='vnc' port='5900' listen='0.0.0.0' passwd='p'/>"))
    said = notes(wide, "kvm01", "web01", "127.0.0.1:40001")
    assert "the viewer prompts for it" in said[0] and "dumpxml --security-info web01" in said[0]
    assert "0.0.0.0:5900 of kvm01, beyond its loopback" in said[1]
    assert "could not be read" in notes(replace(plain, password=None), "kvm01", "web01", "x")[0]


@pytest.fixture
def conn(tmp_path: Path) -> libvirt.virConnect:
    node = tmp_path / "node.xml"
    node.write_text(
        "<node>"
        + domain("<graphics type='vnc' port='5907' autoport='no' listen='127.0.0.1' passwd='pw'/>", "gfx")
        + domain("", "plain")
        + domain("<graphics type='egl-headless'/>", "headless")
        + "</node>"
    )
    c = libvirt.open(f"test://{node}")
    yield c
    c.close()


def test_the_display_is_read_from_the_running_domain(conn: libvirt.virConnect) -> None:
    gfx = conn.lookupByName("gfx")
    shown = read_display(conn, gfx.UUIDString())
    assert (shown.protocol, shown.remote_port, shown.password) == ("vnc", 5907, True)
    with pytest.raises(ActionError, match="plain has no graphical display"):
        read_display(conn, conn.lookupByName("plain").UUIDString())
    with pytest.raises(ActionError, match=r"headless has no VNC or SPICE display .*egl-headless"):
        read_display(conn, conn.lookupByName("headless").UUIDString())
    gfx.destroy()
    with pytest.raises(ActionError, match="gfx is not running"):
        read_display(conn, gfx.UUIDString())


def _vm(state: str = "running", stale: bool = False) -> VmState:
    return VmState("u-1", "web01", "kvm01", state, 1, None, None, None, None, None, None, stale=stale)


def _host(profile: str = "operator", transport: str = "ssh", uri: str = "qemu:///system") -> HostState:
    return HostState("kvm01", "", "kvm01", uri, transport, HostStatus.UP, "", 0.0, profile=profile)  # type: ignore[arg-type]


def test_refusals_say_why() -> None:
    assert display_refusal(_vm(), _host()) is None
    assert display_refusal(_vm(), _host(transport="direct")) is None  # this machine's own libvirt
    assert "viewer" in (display_refusal(_vm(), _host(profile="viewer")) or "")
    assert "not answering" in (display_refusal(_vm(stale=True), _host()) or "")
    assert "web01 is shutoff" in (display_refusal(_vm("shutoff"), _host()) or "")
    why = display_refusal(_vm(), _host(transport="direct", uri="qemu+tls://kvm01/system"))
    assert why is not None and "not over vimtui's SSH connection" in why


def test_the_first_viewer_installed_is_given_the_address_its_way(tmp_path: Path) -> None:
    def install(name: str) -> str:
        path = tmp_path / name
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    old = os.environ["PATH"]
    os.environ["PATH"] = str(tmp_path)
    try:
        assert viewer_command("vnc", "127.0.0.1", 40001, "vnc://127.0.0.1:40001") is None
        tiger = install("xtigervncviewer")
        assert viewer_command("vnc", "127.0.0.1", 40001, "u") == [tiger, "127.0.0.1::40001"]
        assert viewer_command("spice", "127.0.0.1", 40001, "u") is None  # a VNC viewer shows no SPICE
        rv = install("remote-viewer")
        assert viewer_command("vnc", "127.0.0.1", 40001, "vnc://x:1") == [rv, "vnc://x:1"]
        # the operator's own: a known one its way, another one given the URL
        assert viewer_command("vnc", "h", 1, "vnc://h:1", program="xtigervncviewer") == [tiger, "h::1"]
        assert viewer_command("vnc", "h", 1, "vnc://h:1", program=f"{rv} --full-screen") == [
            rv,
            "--full-screen",
            "vnc://h:1",
        ]
        assert viewer_command("vnc", "h", 1, "u", program="nonesuch") is None
    finally:
        os.environ["PATH"] = old
    assert graphical({"DISPLAY": ":0"}) and graphical({"WAYLAND_DISPLAY": "wayland-0"})
    assert graphical({}) == (sys.platform == "darwin")


def test_the_cli_refuses_a_host_without_ssh_and_a_viewer_profile(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("VIMTUI_CONFIG", None)
    (tmp_path / "none.toml").write_text("")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [VIMTUI, "--config", str(tmp_path / "none.toml"), "--connect", "test:///default", *argv],
            capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    out = run("vm", "display", "test")
    assert out.returncode == 1 and "not over vimtui's SSH connection" in out.stderr, out.stderr
    out = run("--profile", "viewer", "vm", "display", "test")
    assert out.returncode == 2 and "viewer" in out.stderr and "operator" in out.stderr, out.stderr
    audit = (tmp_path / "vimtui" / "audit.log").read_text()
    assert '"action":"display"' in audit and '"outcome":"refused"' in audit
    out = run("vm", "display", "nonesuch")
    assert out.returncode == 2 and "nonesuch" in out.stderr and "Traceback" not in out.stderr


def test_what_the_display_offered_when_probed_corrects_and_adds_to_the_notes() -> None:
    from vimtui.core.actions.display_probe import Probe, probe_notes

    (plain,), _ = graphics_of(domain("<graphics type='vnc' port='5900' listen='127.0.0.1'/>"))
    unknown = replace(plain, password=None)  # the secure XML was refused: the probe tells
    assert "the viewer prompts for it" in notes(unknown, "kvm01", "web01", "l", ("VNC password",))[0]
    assert notes(unknown, "kvm01", "web01", "l", ("none",))[0].startswith("no password")
    # TLS or SASL set in the host's qemu.conf: not open to anyone on this machine, and what the viewer needs
    assert notes(plain, "kvm01", "web01", "l", ("VeNCrypt", "SASL")) == []
    said = probe_notes(Probe("RFB 003.008", ("VeNCrypt", "SASL")), "kvm01")
    assert "TLS (VeNCrypt)" in said[0] and "vnc_tls_x509_cert_dir" in said[0] and "SASL" in said[1]
    assert probe_notes(Probe(error="Connection refused"), "kvm01") == [
        "the display did not answer through SSH: Connection refused"
    ]


def test_a_forward_knows_its_vm_ran_again_when_the_stop_was_never_published() -> None:
    """Seen in a parallel lab run: a guest stopped and started between two publishes was never published
    stopped, and its forward stayed open to a display that was no longer the one it had opened. A new time
    in the running state is a new run; from paused it is only the resume."""
    from vimtui.core.actions.display_forward import Forward, _ran_again

    vm = replace(_vm(), state_since=100.0)
    forward = Forward(vm, None, "127.0.0.1", 5900, 0.0)  # type: ignore[arg-type]
    assert not _ran_again(forward, vm)
    assert _ran_again(forward, replace(vm, state_since=200.0))
    forward.seen = ("paused", 150.0)
    assert not _ran_again(forward, replace(vm, state_since=200.0))  # resumed
    forward.seen = ("running", 200.0)
    assert not _ran_again(forward, replace(vm, state_since=200.0))
    assert _ran_again(forward, replace(vm, state_since=300.0))
    # seen in run e: restarted between two publishes, a poll caught it paused while starting up (a new
    # QEMU), then running; read as a pause and its resume, the forward stayed open to a display now gone
    starting = replace(vm, state="paused", reason=libvirt.VIR_DOMAIN_PAUSED_STARTING_UP, state_since=400.0)
    assert _ran_again(forward, starting)
    assert not _ran_again(forward, replace(vm, state="paused", reason=libvirt.VIR_DOMAIN_PAUSED_USER))
