"""`vimtui vm screenshot` and `vm send-keys` on libvirt's test driver: saved as PNG (or the format the file
name says), PNG on stdout with -o -, refused for a shut-off VM, keys checked before any host is asked."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from PIL import Image

from tests.test_cli_vm import VIMTUI, data_home, vm

__all__ = ["data_home"]  # the fixture: XDG dirs and the test fleet's config


def test_screenshot_saved_to_a_file_and_to_stdout(data_home: Path) -> None:
    out = data_home / "web01.png"
    code, _, err = vm("screenshot", "web01", "-o", str(out))
    assert code == 0 and "1120x832 saved to" in err, err
    assert Image.open(out).format == "PNG" and Image.open(out).size == (1120, 832)
    proc = subprocess.run([VIMTUI, "vm", "screenshot", "web01", "-o", "-"], capture_output=True, timeout=120)
    assert proc.returncode == 0 and Image.open(io.BytesIO(proc.stdout)).size == (1120, 832)


def test_no_screenshot_of_a_shut_off_vm_nor_to_a_pipe_without_a_file() -> None:
    code, _, err = vm("screenshot", "old-app", "-o", "/tmp/never.png")
    assert code == 1 and "only a running (or paused) VM has a screen" in err, err
    code, _, err = vm("screenshot", "web01")
    assert code == 2 and "give -o FILE.png" in err, err


def test_send_keys_checks_its_keys_and_says_what_it_pressed() -> None:
    code, out, err = vm("send-keys", "web01", "hyper+x")
    assert code == 1 and "'hyper' is not a modifier" in out + err, out + err  # refused: nothing sent
    code, out, err = vm("send-keys", "web01", "ctrl+alt+del", "--text", "root")
    assert code == 0 and "4 character(s) typed; pressed ctrl+alt+del" in out + err, out + err
