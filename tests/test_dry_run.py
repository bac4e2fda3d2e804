"""A dry run makes the same argument checks as the real run: what the task would refuse, the dry run says
it would refuse, with the same words (libvirt's test:/// driver is the host)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VIMTUI = str(Path(sys.executable).parent / "vimtui")


def vm(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp / "config.toml").write_text("")
    return subprocess.run(
        [VIMTUI, "--config", str(tmp / "config.toml"), "vm", *args, "--connect", "test:///default"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "XDG_DATA_HOME": str(tmp / "share")},
    )


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (("attach-nic", "test", "--mac", "zz"), "MAC 'zz': six hex pairs such as 52:54:00:12:34:56"),
        (("attach-nic", "test", "--mac", "03:00:00:00:00:01"), "a multicast address cannot be a NIC's"),
        (("attach-nic", "test", "--model", "e1000;x"), "NIC model 'e1000;x'"),
        (("attach-disk", "test", "--source", "novolume"), "disk source 'novolume': say POOL/VOLUME"),
        (("attach-disk", "test", "--source", "default/v", "--target", "VDB"), "target 'VDB': a device name"),
        (("snapshot", "create", "test", "--name", "a/b"), "bad snapshot name 'a/b'"),
    ],
)
def test_a_dry_run_refuses_what_the_real_run_refuses(
    tmp_path: Path, args: tuple[str, ...], refusal: str
) -> None:
    dry = vm(tmp_path, *args, "--dry-run")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert "REFUSED" in dry.stdout and refusal in dry.stdout, dry.stdout
    real = vm(tmp_path, *args, "--yes")
    assert real.returncode == 1, real.stdout + real.stderr
    assert refusal in real.stdout, real.stdout
    assert "Traceback" not in dry.stderr + real.stderr
