"""Resource changes checked before anything is sent: the refusals and their numbers (sizing.refusal), which
sides a change goes to, the undo of what was done when a later call is refused (side_changes), the sizes
and CPU lists an operator types, and the CLI verbs made from the declarations (on libvirt's test driver)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest

from tests.ui.conftest import DATA, stable_data_dir
from vimtui.core.actions import REGISTRY
from vimtui.core.actions.resources import parse_disk_size
from vimtui.core.actions.side_changes import Change, apply_all
from vimtui.core.actions.sizing import HostRoom, Request, Sizing, refusal, sides_for, size_text
from vimtui.core.actions.tuning import cpus_text, parse_cpus
from vimtui.core.fleet.tasks import ActionError

GIB = 1024**2  # KiB
HOST = HostRoom("kvm02", cpus=8, memory_kib=16 * GIB, free_kib=int(2.1 * GIB))
LIVE = Sizing(vcpus=2, max_vcpus=4, memory_kib=2 * GIB, max_memory_kib=8 * GIB)


def test_every_resource_action_needs_admin() -> None:
    for name in ("vm.set", "vm.resize-disk", "vm.pin", "vm.tune"):
        assert REGISTRY[name].needs == "admin"


@pytest.mark.parametrize(
    ("req", "sides", "why"),
    [
        (
            Request(memory_mib=6 * 1024),
            {"live": LIVE},
            "6 GiB asked (4 GiB more than now), 2.1 GiB free on kvm02",
        ),
        (Request(vcpus=6), {"live": LIVE}, "6 vCPUs asked, web's maximum on the running VM is 4"),
        (Request(vcpus=9), {"live": LIVE}, "vCPUs 9 asked, kvm02 has 8 CPUs"),
        (Request(max_vcpus=16), {"config": LIVE}, "maximum vCPUs 16 asked, kvm02 has 8 CPUs"),
        (
            Request(memory_mib=9 * 1024),
            {"live": LIVE},
            "9 GiB asked, web's maximum memory on the running VM is 8 GiB",
        ),
        (
            Request(max_memory_mib=32 * 1024),
            {"config": LIVE},
            "maximum memory 32 GiB asked, kvm02 has 16 GiB in all",
        ),
        (
            Request(max_vcpus=1),
            {"config": LIVE},
            "web has 2 vCPUs in the config, above the 1 asked as its maximum: give vcpus too",
        ),
        (
            Request(max_vcpus=4),
            {"live": LIVE},
            "web: a maximum changes only in the config (from the next boot): add --config",
        ),
        (Request(), {"live": LIVE}, "nothing to change: give vcpus, memory, max_vcpus or max_memory"),
    ],
)
def test_refusals_say_the_numbers(req: Request, sides: dict, why: str) -> None:  # type: ignore[type-arg]
    assert refusal("web", req, sides, HOST) == why


def test_what_fits_passes_and_unknowns_are_left_to_the_task() -> None:
    assert refusal("web", Request(vcpus=4, memory_mib=4 * 1024), {"live": LIVE}, HOST) is None
    # a config change is not held to what is free now, only to what the host has
    assert refusal("web", Request(memory_mib=6 * 1024), {"config": LIVE}, HOST) is None
    assert refusal("web", Request(vcpus=64, memory_mib=10**6), {"live": Sizing()}, HostRoom("h")) is None


def test_sides_as_virsh_means_its_flags() -> None:
    assert sides_for(True, True, False, False) == (["live"], None)
    assert sides_for(False, True, False, False) == (["config"], None)
    assert sides_for(True, True, True, True) == (["config", "live"], None)
    assert (
        sides_for(False, True, True, False)[1]
        == "it is not running: there is no live side to change (use --config)"
    )
    assert (
        sides_for(True, False, False, True)[1] == "it is transient: it has no config to change (use --live)"
    )


def test_sizes_and_cpu_lists() -> None:
    assert parse_disk_size("+10G") == (True, 10 * 2**30)
    assert parse_disk_size("20g") == (False, 20 * 2**30)
    assert parse_disk_size("512") == (False, 512 * 2**20)
    with pytest.raises(ValueError, match="grow by"):
        parse_disk_size("-5G")
    assert parse_cpus("0-3,^2") == {0, 1, 3} and cpus_text({0, 1, 3, 5, 6}) == "0-1,3,5-6"
    assert cpus_text((True, True, False, True)) == "0-1,3"
    with pytest.raises(ValueError, match="leaves no CPU"):
        parse_cpus("1,^1")
    assert size_text(112 * 1024) == "112 MiB" and size_text(int(2.1 * GIB)) == "2.1 GiB"


def _refuse() -> None:
    raise libvirt.libvirtError("invalid argument: no")


def test_a_refused_call_puts_back_what_was_done_and_says_what_holds() -> None:
    log: list[str] = []
    steps = [
        Change("config", "vCPUs 1 -> 2", lambda: log.append("config 2"), lambda: log.append("config 1")),
        Change("live", "vCPUs 1 -> 2", _refuse, lambda: log.append("never")),
    ]
    with pytest.raises(ActionError) as exc:
        apply_all(steps)
    assert log == ["config 2", "config 1"]
    assert str(exc.value).startswith("libvirt refused vCPUs 1 -> 2 on the running VM: ")
    assert str(exc.value).endswith("put back (the config: vCPUs 1 -> 2): nothing holds")

    stuck = [
        Change("config", "memory 1 GiB -> 2 GiB", lambda: None, _refuse),
        Change("live", "memory 1 GiB -> 2 GiB", _refuse, lambda: None),
    ]
    with pytest.raises(ActionError, match="failed .*so this holds: the config: memory 1 GiB -> 2 GiB$"):
        apply_all(stuck)


# -- the CLI on the test driver (a process each: see test_cli_vm.py) ----------------------------------

VIMTUI = str(Path(sys.executable).parent / "vimtui")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    import os

    fleet = (DATA / "fleet.toml").read_text().replace("@DATA@", str(stable_data_dir()))
    (tmp_path / "fleet.toml").write_text(fleet)
    (tmp_path / "run").mkdir(mode=0o700)
    return os.environ | {
        "XDG_DATA_HOME": str(tmp_path),
        "VIMTUI_CONFIG": str(tmp_path / "fleet.toml"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
    }


def vm(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    out = subprocess.run(
        [VIMTUI, "vm", *argv], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout, out.stderr


def test_cli_verbs(env: dict[str, str]) -> None:
    code, out, _ = vm(env, "set", "--help")
    assert code == 0 and "--max-memory SIZE" in out and "--config, --no-config" in out
    code, out, _ = vm(env, "resize-disk", "--help")
    assert code == 0 and "NAME DISK SIZE" in out.replace("[", "").replace("]", "")
    code, _, err = vm(env, "set", "web01", "--vcpus", "0")
    assert code == 2 and "vcpus: between 1 and 4096, not 0" in err
    code, out, _ = vm(env, "set", "old-app", "--vcpus", "2", "--max-vcpus", "2", "--config", "--dry-run")
    assert code == 0 and "config: max vCPUs 1 -> 2, vCPUs 1 -> 2" in out, out
    code, out, _ = vm(env, "set", "web01", "--max-vcpus", "4")
    assert code == 1 and "a maximum changes only in the config" in out
    code, out, _ = vm(env, "set", "web01", "--vcpus", "64")
    assert code == 1 and "vCPUs 64 asked, kvm-a has 16 CPUs" in out
    code, out, _ = vm(env, "pin", "web01", "--vcpu", "0", "--cpus", "0-99")
    assert code == 1 and "CPU 99 asked, kvm-a has CPUs 0-15" in out


def test_cli_resources_live_beside_config(env: dict[str, str]) -> None:
    code, out, _ = vm(env, "resources", "old-app", "--json")
    assert code == 0
    sizes = {r["what"]: r for r in json.loads(out)["kvm-a/old-app"]["vCPUs and memory"]}
    assert sizes["vCPUs"]["live"] is None and sizes["vCPUs"]["config"] == "1"  # shut off: no live side
