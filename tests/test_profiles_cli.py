"""The CLI under a profile: what it may not do is refused with exit 2 before anything is sent (no editor
opened, no console attached), each refusal in the audit log; `--profile` on the command line wins over
the config. On libvirt's test driver, each run a process of its own (as tests/test_cli_vm.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui.conftest import DATA, stable_data_dir

VIMTUI = str(Path(sys.executable).parent / "vimtui")


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    fleet = (DATA / "fleet.toml").read_text().replace("@DATA@", str(stable_data_dir()))
    fleet = 'profile = "operator"\n' + fleet
    (tmp_path / "fleet.toml").write_text(fleet)
    monkeypatch.setenv("VIMTUI_CONFIG", str(tmp_path / "fleet.toml"))
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("EDITOR", "false")  # an editor that would say so if it were opened
    return tmp_path


def vimtui(*argv: str) -> tuple[int, str, str]:
    out = subprocess.run(
        [VIMTUI, *argv], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout, out.stderr


def audited(data_home: Path) -> list[dict[str, object]]:
    log = data_home / "vimtui" / "audit.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_viewer_is_refused_every_verb_with_exit_2(data_home: Path) -> None:
    for argv in (
        ("vm", "start", "batch01"),
        ("vm", "shutdown", "web01", "--timeout", "0"),
        ("vm", "snapshot", "create", "web01", "--name", "s1"),
        ("vm", "delete", "old-app", "--yes"),
        ("vm", "edit", "web01"),
        ("vm", "console", "web01"),
        ("vm", "create", "n1", "--host", "kvm-a", "--template", "old-app"),
        ("vm", "migrate", "web01", "--to", "kvm-b"),
    ):
        code, out, err = vimtui("--profile", "viewer", *argv)
        assert code == 2, (argv, out, err)
        assert "needs the" in err and "(yours on kvm-a: viewer)" in err, (argv, err)
        assert "false" not in err  # the editor was never opened
    refused = audited(data_home)
    assert refused and all(r["outcome"] == "refused" for r in refused), refused
    assert {r["action"] for r in refused} >= {"start", "delete", "edit", "console", "create", "migrate"}


def test_the_config_s_operator_may_not_delete_and_may_list_snapshots(data_home: Path) -> None:
    code, _, err = vimtui("vm", "delete", "old-app", "--yes")
    assert code == 2 and "Delete needs the admin profile (yours on kvm-a: operator)" in err, err
    code, _, err = vimtui("vm", "attach-nic", "web01", "--network", "default")
    assert code == 2 and "needs the admin profile" in err, err
    code, out, err = vimtui("vm", "snapshot", "list", "web01", "--profile", "viewer")
    assert code == 0 and "kvm-a/web01" in out, err  # looking is a viewer's
    code, out, err = vimtui("vm", "resources", "web01", "--profile", "viewer")
    assert code == 0 and "web01" in out, (out, err)
    code, out, err = vimtui("vm", "delete", "old-app", "--dry-run", "--profile", "admin")
    assert code == 0 and out.startswith("would delete kvm-a/old-app"), (out, err)


def test_hosts_json_says_the_profile_and_a_bad_profile_is_a_usage_error() -> None:
    code, out, err = vimtui("hosts", "--json", "--profile", "viewer")
    assert code == 0, err
    assert {(h["name"], h["profile"], h["read_only"]) for h in json.loads(out)} == {
        ("kvm-a", "viewer", True),
        ("kvm-b", "viewer", True),
    }
    code, _, err = vimtui("hosts", "--profile", "root")
    assert code == 2 and "invalid choice: 'root'" in err
    code, _, err = vimtui("--profile", "viewer", "hosts", "--profile", "admin")
    assert code == 2 and "--profile given more than once" in err


def test_a_wall_display_is_a_viewer_unless_told_otherwise() -> None:
    from vimtui.cli.main import build_parser, given_profile

    assert given_profile(build_parser().parse_args(["--wall"])) == "viewer"
    assert given_profile(build_parser().parse_args(["--wall", "--profile", "operator"])) == "operator"
    assert given_profile(build_parser().parse_args([])) is None
    assert given_profile(build_parser().parse_args(["hosts", "--profile", "admin"])) == "admin"
