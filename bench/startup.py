"""Start to first full paint: vimtui on the three-host lab, against a bare Textual app as the baseline.

    .venv/bin/python bench/startup.py [--runs N]      # as root; brings the demo lab up if it is not

Each run is a fresh interpreter (imports included), timed from just before it starts to the moment the
screen has painted every host's VMs (hosts connected over SSH, first poll done, rows drawn). The baseline
is the same measurement for a Textual app with one Label, so the ratio shows what vimtui adds.
Target: under 1 s. The lab's guests are idled while it is measured (they share this machine's cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD_VIMTUI = r"""
import asyncio, sys, time
t0 = float(sys.argv[1])
from vimtui.core.config.settings import load_config
from vimtui.core.fleet.inventory import build_inventory
from vimtui.ui.app import make_app
from vimtui.ui.widgets.vm_table import VmTable

async def main():
    config = load_config(__import__("pathlib").Path(sys.argv[2]))
    app = make_app(config, build_inventory(config))
    async with app.run_test(size=(120, 40)) as pilot:
        while True:
            st = app.fleet.state
            table = app.screen.query(VmTable)
            if (st.hosts and all(h.last_poll for h in st.hosts) and table
                    and table.first().visible_count == len(st.vms) > 0):
                await pilot.pause()  # the paint that shows them
                print(time.time() - t0, len(st.hosts), len(st.vms))
                return
            await asyncio.sleep(0.005)

asyncio.run(main())
"""

CHILD_BASELINE = r"""
import asyncio, sys, time
t0 = float(sys.argv[1])
from textual.app import App
from textual.widgets import Label

class Bare(App):
    def compose(self):
        yield Label("hello")

async def main():
    app = Bare()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        print(time.time() - t0, 0, 0)

asyncio.run(main())
"""


# As installed, Python keeps compiled modules (__pycache__, or pip's at install); this machine's environment
# sets PYTHONDONTWRITEBYTECODE, which would make each run compile vimtui's sources again.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(child: str, *args: str) -> tuple[float, int, int]:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", child, repr(t0), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=ENV,
    )
    if out.returncode != 0:
        raise SystemExit(f"child failed: {out.stderr[-2000:]}")
    seconds, hosts, vms = out.stdout.split()
    return float(seconds), int(hosts), int(vms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from tests.lab.lab import Lab

    lab = Lab("demo").up(3)
    # The lab's guests share this machine's two cores with what is measured, which a real hypervisor's
    # guests do not: their workload is stopped (idle) for the measurement, and started again after.
    guests = [(h.name, g) for h in lab.hosts for g in h.guests]
    with ThreadPoolExecutor(len(guests)) as pool:
        quiet = list(pool.map(lambda hg: lab.on_console(*hg, "echo idle > /tmp/load"), guests))
    print(f"guests idled for the measurement: {sum(quiet)} of {len(guests)}")
    config = str(lab.config_file)
    run(CHILD_VIMTUI, config)  # warm the OS caches once (and write the compiled modules)
    run(CHILD_BASELINE)
    ours = [run(CHILD_VIMTUI, config) for _ in range(args.runs)]
    bare = [run(CHILD_BASELINE) for _ in range(args.runs)]
    o = statistics.median(r[0] for r in ours)
    b = statistics.median(r[0] for r in bare)
    print(f"start to first full paint, median of {args.runs} fresh processes (imports included)")
    print(f"  vimtui, {ours[0][1]} lab hosts over SSH, {ours[0][2]} VMs : {o * 1000:7.0f} ms")
    print(f"  bare Textual app (one Label)            : {b * 1000:7.0f} ms")
    print(f"  ratio vimtui / bare                     : {o / b:7.2f}x")
    print(f"  target < 1000 ms                        : {'PASS' if o < 1.0 else 'FAIL'}")
    with ThreadPoolExecutor(len(guests)) as pool:
        list(pool.map(lambda hg: lab.on_console(*hg, "echo vary > /tmp/load"), guests))


if __name__ == "__main__":
    main()
