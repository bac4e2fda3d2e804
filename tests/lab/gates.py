"""Gates a test holds on a lab host: an operation that waits, inside the host, until the test lets it go.

A test that must act "while X is under way" cannot hope X is slow enough on whatever machine runs it; it
holds X at a gate instead, does what it tests, and opens the gate. Two gates:

- `hook_gate(lab, host, guest, "prepare")`: libvirt's qemu hook on every lab host (tests/lab/qemu-hook,
  installed at lab up) waits at the start of that operation on that guest ("prepare": before QEMU starts).
- `copy_gate(lab, host)`: `qemu-img convert` on the host (libvirt's volume copy, createXMLFrom) waits
  before it copies.

Each is a FIFO in the host's own /run/vtgate: whoever waits reads a line from it, and says so first by
making `<gate>.held`, which the test reads as libvirt's side of the story (the operation really began).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from tests.lab.lab import Lab, LabError

_COPY_WRAPPER = """\
#!/bin/sh
# qemu-img on a lab host while a test holds copies (tests/lab/gates.py): `convert` waits for a line on the
# FIFO /run/vtgate/copy; everything else runs at once.
if [ "$1" = convert ] && [ -p /run/vtgate/copy ]; then
    : > /run/vtgate/copy.held
    read -r _ < /run/vtgate/copy
fi
exec /run/vtgate/qemu-img.real "$@"
"""


class Gate:
    """A FIFO in a lab host's /run/vtgate that something on the host waits at (see the module's doc)."""

    def __init__(self, lab: Lab, host: str, name: str) -> None:
        self.dir = Path(f"/proc/{lab.host(host).pid}/root/run/vtgate")
        self.fifo = self.dir / name
        self.marker = self.dir / f"{name}.held"

    def __enter__(self) -> Gate:
        self.dir.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.marker.unlink()
        os.mkfifo(self.fifo)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        for p in (self.fifo, self.marker):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def held(self) -> bool:
        """Something reached the gate and waits (or waited) there."""
        return self.marker.exists()

    def release(self) -> bool:
        """Let whatever waits go on; False when nothing waits."""
        deadline = time.monotonic() + 5
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except FileNotFoundError:
                return False
            except OSError:  # ENXIO: no reader (yet: the marker comes just before the read)
                if not self.held() or time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
                continue
            try:
                os.write(fd, b"go\n")
            finally:
                os.close(fd)
            return True


def hook_gate(lab: Lab, host: str, guest: str, operation: str = "prepare") -> Gate:
    """Holds `operation` of libvirt's qemu hook on `guest` ("prepare": the start, before QEMU runs)."""
    return Gate(lab, host, f"{guest}.{operation}")


@contextlib.contextmanager
def copy_gate(lab: Lab, host: str) -> Iterator[Gate]:
    """While in the block, `qemu-img convert` on `host` waits at a gate before copying: the host's
    /usr/bin/qemu-img is covered (a bind mount in the host's own mount namespace) by a wrapper."""
    wrapper = Path(lab.host(host).dir) / "qemu-img-gate"
    wrapper.write_text(_COPY_WRAPPER)
    wrapper.chmod(0o755)
    real = "/run/vtgate/qemu-img.real"
    lab.exec(host, ["sh", "-c", f"mkdir -p /run/vtgate && : > {real}"])
    lab.exec(host, ["mount", "--bind", "/usr/bin/qemu-img", real])
    try:
        lab.exec(host, ["mount", "--bind", str(wrapper), "/usr/bin/qemu-img"])
        try:
            with Gate(lab, host, "copy") as gate:
                yield gate
        finally:
            lab.exec(host, ["umount", "/usr/bin/qemu-img"])
    finally:
        lab.exec(host, ["umount", real], check=False)


def wait_held(gate: Gate, what: str, within: float = 120) -> None:
    """Until something waits at `gate`; LabError naming `what` at the deadline."""
    deadline = time.monotonic() + within
    while not gate.held():
        if time.monotonic() > deadline:
            raise LabError(f"{what} never reached its gate within {within:.0f} s")
        time.sleep(0.1)


@contextlib.contextmanager
def cpu_share(lab: Lab, host: str, shares: int = 8192) -> Iterator[None]:
    """While in the block, the lab's cgroup and the host's under it weigh `shares` (1024 by default) against
    what else runs on the machine, where every process outside a cgroup weighs 1024 on its own: on a machine
    with tens of runnable processes a busy guest otherwise gets a few % of a CPU, as much as an idle one
    nearly. Holds a load the test makes; restored after (cgroup v1's cpu.shares)."""
    knobs = [
        hier / rel / "cpu.shares"
        for hier in Path("/sys/fs/cgroup").iterdir()
        for rel in (f"vtlab-{lab.name}", f"vtlab-{lab.name}/{host}")
        if (hier / rel / "cpu.shares").exists()
    ]
    before = [k.read_text() for k in knobs]
    try:
        for k in knobs:
            k.write_text(str(shares))
        yield
    finally:
        for k, v in zip(knobs, before, strict=True):
            with contextlib.suppress(OSError):
                k.write_text(v)
