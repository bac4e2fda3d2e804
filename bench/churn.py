"""VMs coming and going: the core's memory stays flat while thousands are created and removed.

    .venv/bin/python bench/churn.py [--vms N] [--alive N] [--batch N] [--interval S]

One host (libvirt's test:///default, shared by every connection of this process), polled by the core as
`vimtui export` builds it (rings, alerts, events, the activity log; no archive) every `interval` seconds,
while another client of the host keeps `alive` VMs running and, each round, defines and starts `batch`
new ones and destroys and undefines the oldest `batch`. At every 1,000 VMs created it prints the
process's RSS, the history's keys and bytes and how many VMs the session still keeps anything of.
Flat: after the first checkpoint, RSS grows by less than FLAT_MB and the history holds no more keys than
VMs alive (plus those not yet polled away).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import libvirt
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.poll import heading, table, verdict  # noqa: E402
from vimtui.core.fleet.fleet import Fleet  # noqa: E402
from vimtui.core.fleet.inventory import parse_connect  # noqa: E402
from vimtui.core.poll.session import SessionSettings  # noqa: E402

XML = """<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>128</memory>
<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices><interface type='network'>
<source network='default'/><model type='virtio'/></interface></devices></domain>"""
FLAT_MB = 8.0
CHECKPOINT = 1000


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


async def churn(
    total: int, alive: int, batch: int, interval: float
) -> list[tuple[int, float, int, int, int]]:
    fleet = Fleet(
        [parse_connect("test:///default")], SessionSettings(interval=interval), Path(tempfile.mkdtemp())
    )
    await fleet.start()
    await fleet.connected(within=30)
    session = next(iter(fleet.sessions.values()))
    conn = libvirt.open("test:///default")
    live: deque[tuple[libvirt.virDomain, str]] = deque()
    created = 0
    rows: list[tuple[int, float, int, int, int]] = []
    made: list[str] = []
    try:
        while created < total:
            for _ in range(batch):
                uuid = f"00000000-0000-4000-8000-{created:012x}"
                dom = conn.defineXML(XML.format(name=f"churn-{created:06d}", uuid=uuid))
                dom.create()
                live.append((dom, uuid))
                made.append(uuid)
                created += 1
                if created % CHECKPOINT == 0:
                    await asyncio.sleep(3 * interval)  # a few polls: the removed ones are seen gone
                    gc.collect()
                    remembers = getattr(session, "remembers", None)  # (not in the code before it)
                    kept = sum(1 for u in made if remembers(u)) if remembers else -1
                    rows.append(
                        (created, rss_mb(), len(fleet.vm_history), fleet.vm_history.memory_bytes(), kept)
                    )
                    print(f"  {created:6,} created: RSS {rows[-1][1]:.1f} MB", flush=True)
            while len(live) > alive:
                dom, _ = live.popleft()
                dom.destroy()
                dom.undefine()
            await asyncio.sleep(interval)
    finally:
        for dom, _ in live:
            dom.destroy()
            dom.undefine()
        conn.close()
        await fleet.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, default=6000, help="VMs created in all")
    ap.add_argument("--alive", type=int, default=300)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--interval", type=float, default=0.25)
    args = ap.parse_args(argv)
    heading(
        f"churn: {args.vms:,} VMs created and removed on test:///default, {args.alive} alive, "
        f"{args.batch} in and out a round, polled every {args.interval} s"
    )
    t0 = time.monotonic()
    rows = asyncio.run(churn(args.vms, args.alive, args.batch, args.interval))
    print(
        table(
            ["VMs created", "RSS", "history keys", "history bytes", "VMs the session keeps"],
            [(f"{n:,}", f"{r:.1f} MB", k, f"{b / 1e3:.0f} kB", kept) for n, r, k, b, kept in rows],
        )
    )
    growth = rows[-1][1] - rows[0][1]
    keys_ok = all(k <= args.alive + 2 * args.batch + 1 for _, _, k, _, _ in rows)
    kept_ok = all(kept <= args.alive + 2 * args.batch for *_, kept in rows)
    print(
        f"  RSS from {rows[0][0]:,} to {rows[-1][0]:,} created: {growth:+.1f} MB (flat: < {FLAT_MB:.0f} MB) "
        f"{verdict(growth < FLAT_MB)}; history keys within the VMs alive {verdict(keys_ok)}; "
        f"session keeps only VMs alive {verdict(kept_ok)}; {time.monotonic() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
