"""`python -m tests.lab up [N] | down | status | cut HOST | heal HOST [--name LAB]`"""

from __future__ import annotations

import argparse
import sys
import time

from tests.lab.lab import Lab, LabError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    p.add_argument("--name", default="demo", help="lab name (default: demo)")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="bring up N hosts (reuses a lab that is already up)")
    up.add_argument("n", type=int, nargs="?", default=3)
    sub.add_parser("down", help="remove the lab and everything it made")
    sub.add_parser("status", help="list the lab's hosts")
    for verb in ("cut", "heal", "stop-libvirtd", "start-libvirtd"):
        sub.add_parser(verb).add_argument("host")
    args = p.parse_args(argv)
    lab = Lab(args.name)
    t0 = time.monotonic()
    try:
        if args.cmd == "up":
            lab.up(args.n)
            print(f"lab {lab.name}: {len(lab.hosts)} hosts up in {time.monotonic() - t0:.1f} s")
            moved = ""
            if lab.octet != lab.preferred_octet:
                moved = f" (10.{lab.preferred_octet}.0.0/24 is taken here)"
            print(f"subnet: 10.{lab.octet}.0.0/24{moved}")
            print(f"config: {lab.config_file}")
        elif args.cmd == "down":
            lab.down()
            print(f"lab {lab.name}: down in {time.monotonic() - t0:.1f} s")
        elif args.cmd == "status":
            state = "up" if lab.is_up() else "down"
            print(f"lab {lab.name}: {state}")
            for h in lab.hosts:
                print(f"  {h.name:8} {h.address:15} guests: {', '.join(h.guests)}")
        else:
            getattr(lab, args.cmd.replace("-", "_"))(args.host)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
