"""Soak: the whole app (core and screen, Textual's headless run) watching the lab at a 1-s interval for half
an hour or more, with a fault injected every few minutes.

    .venv/bin/python bench/soak.py [--minutes 35] [--every 180] [--lab NAME] [--json out.json]

As root; brings the lab (default: $VIMTUI_TEST_LAB or "soak") up with three hosts if it is not. The faults
go round in turn: a host's link cut for 20 s and healed, libvirtd stopped and started again, a guest's QEMU
killed (a crash, as libvirt sees it) and the guest started again, a guest created and then deleted. Each is
made behind vimtui's back (through the lab, never through vimtui) and counts as recovered once the app's own
published state shows the host up, polled since the fault ended, with the guests libvirt says it has.

Figures: RSS over time and its growth after the first five minutes (target under 5 %), ticks missed (the
1-s tick that did not happen on time) and polls late, the event loop's worst lag, each fault's recovery
time, and every warning or error logged or raised anywhere (loop, threads, Textual). Target: every fault
recovered, no exception.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab.lab import Lab  # noqa: E402
from vimtui.core.config.settings import load_config  # noqa: E402
from vimtui.core.fleet.inventory import build_inventory  # noqa: E402
from vimtui.core.model import FleetState, HostStatus  # noqa: E402
from vimtui.ui.app import VimApp, make_app  # noqa: E402

LAG_NOTED = 1.0
STALL = 5.0
FAULT_WITHIN = 120.0
"""Seconds a fault has to be recovered in before it counts as not recovered."""
CUT_FOR = 20.0


@dataclass
class Fault:
    kind: str
    host: str
    detail: str
    injected: float
    """Seconds since the soak started."""
    noticed_s: float | None = None
    """From injection to the app showing it (the host not up, the guest shut off or present)."""
    recovered_s: float | None = None
    """From the end of the fault (heal, libvirtd back, guest restarted, guest deleted) to the app showing
    everything as it is again."""
    error: str = ""


@dataclass
class Problems:
    """Everything logged at WARNING or above, or raised where nobody caught it."""

    lines: list[str] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        self.lines.append(f"{time.strftime('%H:%M:%S')} {where}: {text}")


class _Collect(logging.Handler):
    def __init__(self, problems: Problems) -> None:
        super().__init__(logging.WARNING)
        self.problems = problems

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += " | " + logging.Formatter().formatException(record.exc_info).replace("\n", " | ")
        self.problems.add(f"log {record.name} {record.levelname}", text)


class Soak:
    def __init__(self, lab: Lab, app: VimApp, minutes: float, every: float) -> None:
        self.lab = lab
        self.app = app
        self.fleet = app.fleet
        self.minutes = minutes
        self.every = every
        self.t0 = time.monotonic()
        self.rss: list[tuple[float, int]] = []
        self.faults: list[Fault] = []
        self.loop_lag_max = 0.0
        self.lags: list[tuple[float, float]] = []
        """(when, seconds) of every loop lag over LAG_NOTED."""
        self.stalls: list[str] = []
        """Where the event loop's thread was when it had not come round for STALL seconds."""
        self._beat = time.monotonic()
        self.serial = 0

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    # -- the app's view -----------------------------------------------------------------------------

    async def until(self, pred: Callable[[FleetState], object], within: float) -> float:
        """Seconds until the app's published state satisfies `pred`; TimeoutError past `within`."""
        start = time.monotonic()
        await self.fleet.wait_for(pred, within)
        return time.monotonic() - start

    def host_whole(
        self, host: str, since_wall: float, guests: dict[str, str]
    ) -> Callable[[FleetState], bool]:
        """The host up, polled after `since_wall`, every guest in the state libvirt gives, none stale."""

        def pred(s: FleetState) -> bool:
            h = s.host(host)
            if h is None or h.status != HostStatus.UP or (h.last_poll or 0) <= since_wall:
                return False
            vms = {v.name: v for v in s.vms_on(host)}
            return set(vms) == set(guests) and all(
                not v.stale and v.state == guests[v.name] for v in vms.values()
            )

        return pred

    def guests(self, host: str) -> dict[str, str]:
        """name -> state, straight from libvirt (not through vimtui)."""
        from vimtui.core.model import state_name

        with self.lab.connect(host) as conn:
            return {d.name(): state_name(d.state()[0]) for d in conn.listAllDomains()}

    # -- faults -------------------------------------------------------------------------------------

    async def cut(self, host: str) -> Fault:
        f = Fault("cut", host, f"link down {CUT_FOR:.0f} s, then healed", self.now())
        start = time.monotonic()
        await asyncio.to_thread(self.lab.cut, host)
        try:
            await self.until(lambda s: s.host(host).status not in (HostStatus.UP,), CUT_FOR)  # type: ignore[union-attr]
            f.noticed_s = round(time.monotonic() - start, 3)
        except TimeoutError:
            f.error = "the cut was not noticed while it lasted"
        await asyncio.sleep(max(0.0, CUT_FOR - (time.monotonic() - start)))
        healed = time.time()
        await asyncio.to_thread(self.lab.heal, host)
        guests = await asyncio.to_thread(self.guests, host)
        await self.until(self.host_whole(host, healed, guests), FAULT_WITHIN)
        f.recovered_s = round(time.time() - healed, 3)
        return f

    async def libvirtd_restart(self, host: str) -> Fault:
        f = Fault("libvirtd-restart", host, "libvirtd stopped, then started", self.now())
        start = time.monotonic()
        guests = await asyncio.to_thread(self.guests, host)
        await asyncio.to_thread(self.lab.stop_libvirtd, host)
        try:
            await self.until(lambda s: s.host(host).status != HostStatus.UP, 30)  # type: ignore[union-attr]
            f.noticed_s = round(time.monotonic() - start, 3)
        except TimeoutError:
            f.error = "libvirtd's stop was not noticed"
        back = time.time()
        await asyncio.to_thread(self._start_libvirtd, host)
        await self.until(self.host_whole(host, back, guests), FAULT_WITHIN)
        f.recovered_s = round(time.time() - back, 3)
        return f

    def _start_libvirtd(self, host: str) -> None:
        """Start it again; while the old one still ends (it holds its pidfile a moment after its socket
        has gone, longer on a loaded machine) the start is refused: try again for a while."""
        from tests.lab.lab import LabError

        deadline = time.monotonic() + 60
        while True:
            try:
                self.lab.start_libvirtd(host)
                return
            except LabError as exc:
                if "pidfile" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(1.0)  # (the lab's own pace, not a synchronisation of vimtui)

    async def guest_crash(self, host: str, guest: str) -> Fault:
        f = Fault("guest-crash", host, f"{guest}'s QEMU killed, then the guest started again", self.now())
        start = time.monotonic()
        pid = (
            await asyncio.to_thread(self.lab.exec, host, ["cat", f"/run/libvirt/qemu/{guest}.pid"])
        ).strip()
        await asyncio.to_thread(self.lab.exec, host, ["kill", "-9", pid])

        def crashed(s: FleetState) -> bool:
            vms = s.find_vm(guest, host)
            return bool(vms) and vms[0].state != "running"

        await self.until(crashed, 60)
        f.noticed_s = round(time.monotonic() - start, 3)

        def start_guest() -> None:
            with self.lab.connect(host) as conn:
                conn.lookupByName(guest).create()

        restarted = time.time()
        await asyncio.to_thread(start_guest)
        guests = await asyncio.to_thread(self.guests, host)
        await self.until(self.host_whole(host, restarted, guests), FAULT_WITHIN)
        f.recovered_s = round(time.time() - restarted, 3)
        return f

    async def create_delete(self, host: str) -> Fault:
        self.serial += 1
        name = f"soak{self.serial:03d}"
        f = Fault("create-delete", host, f"{name} defined and started, then deleted", self.now())
        start = time.monotonic()
        await asyncio.to_thread(self.lab.add_guest, host, name, mib=96)

        def shown(s: FleetState) -> bool:
            vms = s.find_vm(name, host)
            return bool(vms) and vms[0].state == "running"

        await self.until(shown, 60)
        f.noticed_s = round(time.monotonic() - start, 3)
        gone = time.time()
        await asyncio.to_thread(self.lab.remove_guest, host, name)
        guests = await asyncio.to_thread(self.guests, host)
        await self.until(self.host_whole(host, gone, guests), FAULT_WITHIN)
        f.recovered_s = round(time.time() - gone, 3)
        return f

    def plan(self) -> list[Callable[[], Awaitable[Fault]]]:
        return [
            lambda: self.cut("kvm03"),
            lambda: self.libvirtd_restart("kvm02"),
            lambda: self.guest_crash("kvm01", "db01"),
            lambda: self.create_delete("kvm03"),
        ]

    # -- the run ------------------------------------------------------------------------------------

    async def sample_rss(self) -> None:
        proc = psutil.Process()
        while True:
            self.rss.append((self.now(), proc.memory_info().rss))
            await asyncio.sleep(10)

    async def watch_loop(self) -> None:
        """The event loop's lag: how late a 0.5-s sleep wakes up."""
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            self._beat = time.monotonic()
            await asyncio.sleep(0.5)
            lag = loop.time() - t - 0.5
            self.loop_lag_max = max(self.loop_lag_max, lag)
            if lag > LAG_NOTED:
                self.lags.append((round(self.now(), 1), round(lag, 3)))

    def watchdog(self, loop_thread: int, stop: threading.Event) -> None:
        """On a thread of its own: when the loop has not come round for STALL seconds, where its thread
        is (once per stall), and how busy the machine is then."""
        import traceback

        dumped = False
        while not stop.wait(1.0):
            stalled = time.monotonic() - self._beat
            if stalled < STALL:
                dumped = False
                continue
            if dumped:
                continue
            dumped = True
            frame = sys._current_frames().get(loop_thread)
            where = "".join(traceback.format_stack(frame)[-12:]) if frame is not None else "?"
            load = os.getloadavg()
            self.stalls.append(f"at {self.now():.0f} s, loop silent {stalled:.1f} s, load {load}:\n{where}")

    async def run(self, problems: Problems) -> None:
        end = self.minutes * 60
        plan = self.plan()
        n = 0
        next_fault = min(self.every, 120.0)
        while self.now() < end:
            await asyncio.sleep(max(0.0, min(next_fault, end) - self.now()))
            if self.now() >= end:
                break
            make = plan[n % len(plan)]
            n += 1
            try:
                fault = await make()
            except TimeoutError:
                fault = self._timed_out(n - 1)
            except Exception as exc:  # a lab step failed: say so, carry on
                fault = Fault(f"fault {n}", "?", "", self.now(), error=f"{type(exc).__name__}: {exc}")
            self.faults.append(fault)
            print(f"[{self.now() / 60:5.1f} min] {json.dumps(asdict(fault))}", flush=True)
            next_fault = fault.injected + self.every

    def _timed_out(self, index: int) -> Fault:
        kinds = ["cut", "libvirtd-restart", "guest-crash", "create-delete"]
        state = [(h.name, str(h.status), h.message) for h in self.fleet.state.hosts]
        return Fault(
            kinds[index % len(kinds)], "?", "", self.now(), error=f"not recovered within the limit: {state}"
        )


def summary(soak: Soak, problems: Problems, ticks: int, late: int) -> dict[str, Any]:
    rss = soak.rss
    after5 = [r for t, r in rss if t >= 300]
    base = after5[0] if after5 else rss[0][1]
    last = rss[-1][1]
    elapsed = soak.now()
    interval = soak.fleet.settings.interval
    recovered = [f for f in soak.faults if f.recovered_s is not None and not f.error]
    return {
        "minutes": round(elapsed / 60, 1),
        "interval_s": interval,
        "hosts": len(soak.fleet.state.hosts),
        "vms": len(soak.fleet.state.vms),
        "rss_mib": {f"{t / 60:.0f}min": round(r / 2**20, 1) for t, r in rss if int(t) % 300 < 10},
        "rss_start_mib": round(rss[0][1] / 2**20, 1),
        "rss_at_5min_mib": round(base / 2**20, 1),
        "rss_end_mib": round(last / 2**20, 1),
        "rss_max_after_5min_mib": round(max(after5 or [last]) / 2**20, 1),
        "rss_growth_after_5min_pct": round(100 * (last - base) / base, 2),
        "ticks": ticks,
        "ticks_expected": int(elapsed / interval),
        "ticks_missed": max(0, int(elapsed / interval) - ticks),
        "polls_late": late,
        "loop_lag_max_s": round(soak.loop_lag_max, 3),
        "loop_lags_over_1s": soak.lags,
        "loop_stalls": soak.stalls,
        "load_avg_end": os.getloadavg(),
        "faults": [asdict(f) for f in soak.faults],
        "faults_recovered": f"{len(recovered)}/{len(soak.faults)}",
        "problems": problems.lines,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    lab = Lab(args.lab)
    await asyncio.to_thread(lab.up, 3)
    work = Path(tempfile.mkdtemp(prefix="vimtui-soak-"))
    os.environ["XDG_DATA_HOME"] = str(work / "data")
    text = lab.config_file.read_text().replace("interval = 2.0", f"interval = {args.interval}")
    (work / "vimtui.toml").write_text(text)
    config = load_config(work / "vimtui.toml")
    app = make_app(config, build_inventory(config), archive=True)

    problems = Problems()
    logging.getLogger().addHandler(_Collect(problems))
    logging.getLogger().setLevel(logging.WARNING)
    threading.excepthook = lambda a: problems.add(
        f"thread {a.thread.name if a.thread else '?'}", repr(a.exc_value)
    )
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(
        lambda _l, ctx: problems.add("loop", str(ctx.get("exception") or ctx["message"]))
    )

    soak: Soak | None = None
    async with app.run_test(size=(140, 45)) as pilot:
        await app.fleet.connected(within=60)
        soak = Soak(lab, app, args.minutes, args.every)
        ticks0 = app.fleet.ticks
        late0 = sum(h.late_ticks for h in app.fleet.state.hosts)
        side = [loop.create_task(soak.sample_rss()), loop.create_task(soak.watch_loop())]
        stop = threading.Event()
        dog = threading.Thread(target=soak.watchdog, args=(threading.get_ident(), stop), daemon=True)
        dog.start()
        try:
            await soak.run(problems)
        finally:
            stop.set()
            for t in side:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*side)
        ticks = app.fleet.ticks - ticks0
        late = sum(h.late_ticks for h in app.fleet.state.hosts) - late0
        await pilot.pause()
    if app.return_code not in (None, 0):
        problems.add("app", f"exited with {app.return_code}")
    return summary(soak, problems, ticks, late)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=35.0)
    p.add_argument("--every", type=float, default=180.0, help="seconds between faults")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--lab", default=os.environ.get("VIMTUI_TEST_LAB", "soak"))
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args()
    result = asyncio.run(main_async(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    ok = (
        result["rss_growth_after_5min_pct"] < 5
        and all(f["recovered_s"] is not None and not f["error"] for f in result["faults"])
        and not result["problems"]
    )
    print("soak:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
