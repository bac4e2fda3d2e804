"""`vimtui access`: what a host's answers mean (sockets that open, polkit's answers per permission) and
the command on libvirt's test driver, opened directly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.poll.access import ACL_PERMISSIONS, HostAccess, SocketAccess, _built, _parse

VIMTUI = str(Path(sys.executable).parent / "vimtui")
SSH = HostSpec("kvm01", "ssh", "qemu:///system", "10.0.0.1", profile="operator")

ANSWERS = """\
user ops
groups ops wheel
sock /run/libvirt/libvirt-sock-ro srwxrwxrwx root:root
sock /run/libvirt/libvirt-sock srwxrwx--- root:libvirt
conf /etc/libvirt/libvirtd.conf access_drivers [ "polkit" ]
conf /etc/libvirt/libvirtd.conf auth_unix_rw "polkit"
unreadable /etc/libvirt/virtproxyd.conf
"""


def answered(acl: dict[str, str], rw: bool = True) -> HostAccess:
    facts: dict[str, object] = {}
    _parse(ANSWERS + "".join(f"acl {p} {code}\n" for p, code in acl.items()), facts)
    return _built(SSH, facts, (True, "libvirt 9.0.0"), (rw, "libvirt 9.0.0" if rw else "Permission denied"))


def all_perms(code: str, *profiles: str) -> dict[str, str]:
    return {p: code for profile in profiles for p in ACL_PERMISSIONS[profile]}  # type: ignore[index]


def test_polkit_answers_decide_what_the_account_can() -> None:
    operator = answered(all_perms("0", "viewer", "operator") | all_perms("1", "admin"))
    assert operator.acl_driver == "polkit" and operator.account == "ops" and operator.groups == "ops wheel"
    assert operator.sockets[1] == SocketAccess(
        "/run/libvirt/libvirt-sock", False, "srwxrwx--- root:libvirt", True, "libvirt 9.0.0"
    )
    assert operator.can == "operator" and operator.enough
    text = "\n".join(operator.lines())
    assert "ACLs: polkit: domain.getattr yes" in text and "domain.delete no" in text
    assert "/etc/libvirt/virtproxyd.conf: not readable by this account" in text
    assert "can: operator; the config's profile here: operator (enough)" in text
    looker = answered(all_perms("0", "viewer") | all_perms("2", "operator", "admin"))
    assert looker.can == "viewer" and not looker.enough
    assert "domain.start needs authentication" in "\n".join(looker.lines())
    assert answered(all_perms("0", "viewer", "operator", "admin")).can == "admin"


def test_without_the_read_write_socket_an_account_only_looks() -> None:
    ro_only = answered({}, rw=False)
    assert ro_only.can == "viewer" and not ro_only.enough
    assert (
        "read-write socket /run/libvirt/libvirt-sock  [srwxrwx--- root:libvirt]  does not open"
        in "\n".join(ro_only.lines())
    )
    assert HostAccess("h", "viewer", error="no route").lines() == ["h: cannot be asked: no route"]


def test_access_on_the_test_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("VIMTUI_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    run = [VIMTUI, "--connect", "test:///default", "--profile", "viewer", "access"]
    done = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (found,) = json.loads(done.stdout)
    assert found["profile"] == "viewer" and found["can"] == "admin" and found["enough"]
    assert [s["opens"] for s in found["sockets"]] == [True, True]
    done = subprocess.run([*run, "nope"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no host 'nope'" in done.stderr
