"""`vimtui vm` on libvirt's test driver: verbs and options made from the action declarations,
values checked before any host is asked (exit 2, the parameter named), and a dry run that says what a
delete would remove, exiting 1 when the host says it cannot be done (a disk the VM does not have).

Each run is a process of its own: in-process, a run left libvirt's shared test:///default driver with its
event timer on a closed loop, and a later event test in the same process timed out."""

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
    (tmp_path / "fleet.toml").write_text(fleet)
    monkeypatch.setenv("VIMTUI_CONFIG", str(tmp_path / "fleet.toml"))
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    return tmp_path


def vm(*argv: str) -> tuple[int, str, str]:
    """The real CLI in a process of its own (libvirt's event loop and its test driver are per process)."""
    out = subprocess.run(
        [VIMTUI, "vm", *argv], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout, out.stderr


def test_options_come_from_the_declarations() -> None:
    code, out, _ = vm("autostart", "--help")
    assert code == 0 and "--enable, --no-enable" in out
    code, out, _ = vm("shutdown", "--help")
    assert code == 0 and "--timeout S" in out and "0..86400" in out and "--force, --no-force" in out
    code, out, _ = vm("snapshot", "revert", "--help")
    assert code == 0 and "--name SNAP" in out and "(required)" in out


def test_a_bad_value_is_a_usage_error_naming_the_parameter() -> None:
    code, _, err = vm("shutdown", "web01", "--timeout", "99999")
    assert code == 2 and err.strip() == "vimtui: error: vm shutdown: timeout: between 0 and 86400, not 99999"
    code, _, err = vm("migrate", "web01", "--to", "elsewhere")
    assert code == 2 and "dest: one of kvm-b, not 'elsewhere'" in err
    code, _, err = vm("attach-disk", "web01", "--source", "default/x", "--bus", "floppy")
    assert code == 2 and "bus: one of virtio, scsi, sata, usb, ide, fdc, not 'floppy'" in err


def test_a_delete_dry_run_lists_what_goes_and_fails_when_the_host_says_it_cannot(data_home: Path) -> None:
    code, out, _ = vm("delete", "old-app", "--dry-run")
    assert code == 0, out
    assert out.startswith("would delete kvm-a/old-app\n")
    assert "the definition of old-app" in out and "kept: vda" in out
    code, out, _ = vm("delete", "old-app", "--remove-storage", "vdz", "--dry-run", "--json")
    assert code == 1, out
    (row,) = json.loads(out)
    assert row["refused"] is None and row["preview"][0].startswith("cannot: not a disk of old-app: vdz")
    assert not (data_home / "vimtui" / "audit.log").exists()  # a dry run touches nothing, records nothing


def test_create_from_a_template_checks_its_declared_parameters() -> None:
    code, _, err = vm("create", "new1", "--host", "kvm-a", "--template", "web01", "--vcpus", "5000")
    assert code == 2 and "vm create: vcpus: between 1 and 4096, not 5000" in err
    code, out, _ = vm("create", "new1", "--host", "kvm-a", "--template", "web01", "--dry-run")
    assert code == 1 and "(name=new1 start=True): REFUSED: web01 is running" in out
