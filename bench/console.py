"""What a console relay costs the other calls on the same libvirt connection, on a lab (as root).

    .venv/bin/python bench/console.py [--lab NAME] [--calls N]

The console of a lab guest is relayed over the fleet's own connection to its host (vimtui's SSH tunnel),
as the screen does; meanwhile N back-to-back calls (lookup by UUID, then info) go over the same connection.
Baseline: the same N calls, in the same run, with no console open. Figures are wall seconds per call:
median, 90th percentile and worst. A relay that held the connection's I/O while waiting for output showed
here as calls of seconds (and, once, calls that never returned). The lab is brought up when it is not
(VIMTUI_LAB_REUSE semantics are not needed: a lab already up is reused, and left up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.lab.lab import Lab
from tests.lab.support import started
from vimtui.core.actions.console import ESCAPE, open_console, relay

HOST = "kvm01"


def calls(conn: Any, vm_uuid: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.lookupByUUIDString(vm_uuid).info()
        out.append(time.perf_counter() - t)
    return out


def line(label: str, xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[int(0.9 * (len(xs) - 1))]
    return (
        f"{label:<16} median {statistics.median(xs) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   "
        f"worst {xs[-1] * 1000:7.1f} ms"
    )


async def main(lab_name: str, n: int) -> None:
    lab = Lab(lab_name)
    lab.up(3)
    name = f"bcon-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(lab.add_guest, HOST, name)
    with tempfile.TemporaryDirectory() as tmp:
        fleet = await started(lab, Path(tmp) / "run", call_timeout=20.0, keepalive_interval=5.0)
        try:
            state = await fleet.wait_for(lambda s: s.find_vm(name, HOST), 60)
            [vm] = state.find_vm(name, HOST)
            conn = fleet.sessions[HOST].connection()
            alone = await asyncio.to_thread(calls, conn, vm.uuid, n)
            stream, _, _ = await asyncio.to_thread(open_console, conn, vm.uuid)
            in_r, in_w = os.pipe()
            out_r, out_w = os.pipe()
            relaying = asyncio.ensure_future(asyncio.to_thread(relay, stream, in_r, out_w))
            try:
                beside = await asyncio.to_thread(calls, conn, vm.uuid, n)
            finally:
                os.write(in_w, ESCAPE)
                await asyncio.wait_for(relaying, 30)
                for fd in (in_r, in_w, out_r, out_w):
                    os.close(fd)
        finally:
            await fleet.stop()
            await asyncio.to_thread(lab.remove_guest, HOST, name)
    print(f"{n} calls on {HOST}'s connection through vimtui's SSH tunnel (load {os.getloadavg()[0]:.1f})")
    print(line("no console", alone))
    print(line("console relayed", beside))
    ratio = statistics.median(beside) / statistics.median(alone)
    print(f"median beside a relay / alone: {ratio:.2f}x")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lab", default="bench", help="lab name (default: bench)")
    p.add_argument("--calls", type=int, default=200)
    a = p.parse_args()
    asyncio.run(main(a.lab, a.calls))
