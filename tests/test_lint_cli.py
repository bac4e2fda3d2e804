"""`vimtui lint` on libvirt's test driver (tests/data/fleet.toml): the facts are really collected from each
host, the exit status follows --fail-on, the config switches a rule off, and a bad `[lint]` table is a
usage error naming file, line and key. Each run is a process of its own (see test_cli_vm).

What breaks them: collection that fails on a host (exit 3), --fail-on not compared by severity, `off` not
applied, or a config error without its location."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui.conftest import DATA, stable_data_dir

VIMTUI = str(Path(sys.executable).parent / "vimtui")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    fleet = (DATA / "fleet.toml").read_text().replace("@DATA@", str(stable_data_dir()))
    # the test driver makes up the same addresses for VMs of both hosts
    path = tmp_path / "fleet.toml"
    path.write_text(fleet + '\n[lint]\noff = ["duplicate-ip"]\n')
    return path


def lint(config: Path, *argv: str) -> tuple[int, str, str]:
    out = subprocess.run(
        [VIMTUI, "lint", "--config", str(config), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout, out.stderr


def test_findings_from_both_hosts_and_the_exit_status_follows_fail_on(config: Path) -> None:
    code, out, err = lint(config, "--json")
    assert code == 0, err  # warnings only: below the default --fail-on error
    doc = json.loads(out)
    assert doc["hosts"] == ["kvm-a", "kvm-b"] and doc["failed"] == []
    agentless = {(f["host"], f["vm"]) for f in doc["findings"] if f["rule"] == "no-agent"}
    assert ("kvm-a", "web01") in agentless and ("kvm-b", "win10") in agentless
    assert all(f["rule"] != "duplicate-ip" for f in doc["findings"])
    assert lint(config, "--fail-on", "warning")[0] == 1
    code, out, _ = lint(config, "--host", "kvm-b")
    assert code == 0 and "kvm-a" not in out.replace("2 hosts", "") and "kvm-b/win10  no-agent" in out


def test_a_tenant_sees_only_its_own_vms_findings(config: Path) -> None:
    """The test fleet's VMs belong to no tenant: a view scoped to one has no finding of theirs, nor the
    hosts' own (which the unscoped run has: see above), though every host is still read."""
    code, out, err = lint(config, "--tenant", "acme", "--json", "--fail-on", "info")
    doc = json.loads(out)
    assert code == 0, err
    assert doc["hosts"] == ["kvm-a", "kvm-b"] and doc["findings"] == []
    assert json.loads(lint(config, "--json")[1])["findings"]


def test_a_bad_lint_table_is_a_usage_error_with_its_location(config: Path) -> None:
    config.write_text(config.read_text() + 'snapshot_max_age_days = "old"\n')
    code, _, err = lint(config)
    lines = config.read_text().splitlines()
    line = lines.index('snapshot_max_age_days = "old"') + 1
    assert code == 2 and f"{config}:{line}: lint.snapshot_max_age_days: expected an integer" in err


def test_rules_lists_every_rule(config: Path) -> None:
    code, out, _ = lint(config, "--rules")
    assert code == 0 and "duplicate-mac" in out and "critical-autostart" in out
