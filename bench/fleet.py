"""The whole app on a large fleet, against the bare bulk calls on the same hosts, in one run:

    .venv/bin/python bench/fleet.py [--settle S] [--measure S] [--sizes 10,25,50] [--per-host N]

Hosts are libvirt's test driver (`test:///...xml`, 200 VMs each, 60 % running), polled every second.

1. sizes: at 10, 25 and 50 hosts (2,000 / 5,000 / 10,000 VMs), four processes start together and are
   then measured in turn, a few windows each while the others are stopped (so a busy machine weighs on
   them alike, and they do not take the cores from each other): the TUI (`vimtui --config`, in a pty of
   120x40), `vimtui export` (core, archive, alerts; no screen), and two baselines: the bare
   `getAllDomainStats` calls of every host once a second on one thread, and the same with `dom.UUID()`
   and `dom.name()` per record, each host on its own thread (the least a lane-per-host poller does). CPU
   is % of one core over its windows, and per poll done ("at full pace": a starved process falls behind
   its ticks, so CPU per poll is what compares); RSS at the end. Targets: TUI < 25 % and < 300 MB at 50
   hosts; export < 3x the bare calls (one thread).
2. screen: a fresh TUI under Textual's test harness (headless, 120x40) on 50 hosts: time from start to
   the first full table (every host polled, every VM a row, and the screen written after that), then keys
   (`j`/`k`) pressed at random moments while it polls, each timed until the screen has handled it and
   repainted.
   Targets: first full table < 3 s; keys < 100 ms. Printed with it, the floor: libvirt's test driver
   alone opening every host and making one bulk call on each (it parses each host's XML file anew, one
   open at a time whatever the threads).
3. where the time goes: the core in this process (as `vimtui export` builds it: archive and alerts) on
   50 hosts, CPU by thread (lanes, the event loop, the archive's writer) and by stage (bulk call, per-
   domain calls, parse, apply, history, archive, publish, alerts), twice: (a) with the test driver's
   records, which carry only `state.*`, and (b) with real-shaped records: each record's stats replaced,
   right after the bulk call returns on the lane, by one of the recorded lab records
   (tests/data/domstats-lab.json) with its counters moved on every poll, so that parsing and rates run
   as on a real host. The cost of making those records is measured and taken out ("make records").
   The figures of part 1 are (a)'s kind: the test driver's records.

The figures depend on the machine's load (printed with them): read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import importlib
import importlib.util
import json
import os
import pty
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid as uuidlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.poll import heading, table, verdict  # noqa: E402

PY = sys.executable
DATA = ROOT / "tests" / "data" / "domstats-lab.json"
PER_HOST = 200
ROUNDS = 3
"""Windows each process is measured in, in turn with the others (see part_sizes)."""
RESUME = 3.0
"""Seconds a process runs after a pause before its window starts."""
INTERVAL = 1.0
RUNNING = 0.6
TARGET_TUI_CPU = 25.0
TARGET_TUI_RSS_MB = 300.0
TARGET_EXPORT_RATIO = 3.0
TARGET_KEY_MS = 100.0
TARGET_FIRST_TABLE_S = 3.0
SCREEN_LIMIT = 300.0
"""Seconds the screen part may take in all."""
CONNECT_LIMIT = 180.0
"""Seconds the in-process core may take to poll every host once before it is measured."""


# ---------------------------------------------------------------------------------------------- hosts


def host_xml(index: int, n: int) -> str:
    """A test-driver host with n VMs (the first 60 % running), each with a disk and a NIC."""
    doms = []
    for i in range(n):
        uuid = uuidlib.UUID(int=(index + 1) << 64 | i, version=4)
        state = 1 if i < int(n * RUNNING) else 5
        doms.append(
            f"<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
            f"<name>h{index:02d}-vm{i:04d}</name><uuid>{uuid}</uuid>"
            "<memory unit='MiB'>1024</memory><currentMemory unit='MiB'>1024</currentMemory><vcpu>2</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os><devices>"
            f"<disk type='file' device='disk'><source file='/images/h{index}-{i}.qcow2'/>"
            "<target dev='vda' bus='virtio'/></disk>"
            f"<interface type='network'><mac address='52:54:00:{index:02x}:{i >> 8:02x}:{i & 255:02x}'/>"
            "<source network='default'/><model type='virtio'/></interface></devices>"
            f"<test:runstate>{state}</test:runstate></domain>"
        )
    return (
        "<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>32</cores><threads>1</threads>"
        "<active>32</active><mhz>2400</mhz><model>x86_64</model></cpu><memory>268435456</memory>"
        "<network><name>default</name><uuid>00000000-0000-4000-8000-0000000a0001</uuid>"
        "<bridge name='virbr0'/><forward/><ip address='192.168.122.1' netmask='255.255.255.0'>"
        "<dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>\n"
        + "\n".join(doms)
        + "\n</node>\n"
    )


@dataclass
class Fleet:
    """A generated fleet: its config file and its hosts' URIs."""

    config: Path
    uris: list[str]


def make_fleet(base: Path, hosts: int, per_host: int) -> Fleet:
    base.mkdir(parents=True, exist_ok=True)
    lines = ["[defaults]", "interval = 1.0", ""]
    uris = []
    for h in range(hosts):
        path = base / f"h{h:02d}.xml"
        if not path.exists():
            path.write_text(host_xml(h, per_host))
        uri = f"test://{path}"
        uris.append(uri)
        lines += ["[[hosts]]", f'name = "h{h:02d}"', f'uri = "{uri}"', ""]
    config = base / f"fleet-{hosts}.toml"
    config.write_text("\n".join(lines))
    return Fleet(config, uris)


def env_for(base: Path, name: str) -> dict[str, str]:
    """Each process its own data dir (the archive takes a lock) and runtime dir."""
    d = base / "xdg" / name
    for sub in ("data", "run", "config"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "run").chmod(0o700)
    env = dict(os.environ)
    env.update(
        XDG_DATA_HOME=str(d / "data"),
        XDG_RUNTIME_DIR=str(d / "run"),
        XDG_CONFIG_HOME=str(d / "config"),
        PYTHONPATH=str(ROOT),
        TERM="xterm-256color",
        COLUMNS="120",
        LINES="40",
    )
    return env


def load_text() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {psutil.cpu_count()} cores"


# ---------------------------------------------------------------------------------------------- 1. sizes

REPORTER = r"""
def report():
    while True:
        with open(path + ".tmp", "w") as f:
            f.write(str(count[0]))
        os.replace(path + ".tmp", path)
        time.sleep(0.25)
threading.Thread(target=report, daemon=True).start()
"""
"""Writes `count[0]` to the file `path` four times a second (in both scripts below)."""

COUNTED = (
    r"""
import os, sys, threading, time
path, argv = sys.argv[1], sys.argv[2:]
count = [0]
try:  # what applies one poll of one host, in this version of the code
    from vimtui.core.poll.host_vms import HostVms as owner
    attr = "apply"
except ImportError:
    from vimtui.core.poll.session import HostSession as owner
    attr = "_apply"
applied = getattr(owner, attr)
def counted(self, *args, **kwargs):
    count[0] += 1
    return applied(self, *args, **kwargs)
setattr(owner, attr, counted)
"""
    + REPORTER
    + r"""from vimtui.cli.main import main
sys.exit(main(argv))
"""
)
"""`vimtui ARGS` with a count of the polls it has applied, written to a file four times a second (CPU
starved by a busy machine, a poller falls behind its ticks: CPU per poll is what compares)."""

BARE = (
    r"""
import sys, threading, time, libvirt
libvirt.registerErrorHandler(lambda *a: None, None)
import os
mode, path, uris = sys.argv[1], sys.argv[2], sys.argv[3:]
STATS = 1 | 2 | 4 | 8 | 16 | 32
NOWAIT = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
conns = [libvirt.open(u) for u in uris]
count = [0]
"""
    + REPORTER
    + r"""print("ready", flush=True)
if mode == "one":
    while True:
        t = time.monotonic()
        for c in conns:
            c.getAllDomainStats(STATS, NOWAIT)
            count[0] += 1
        time.sleep(max(0.0, t + 1.0 - time.monotonic()))
else:
    def lane(c):
        while True:
            t = time.monotonic()
            out = [(d.UUID(), d.name(), s) for d, s in c.getAllDomainStats(STATS, NOWAIT)]
            del out
            count[0] += 1
            time.sleep(max(0.0, t + 1.0 - time.monotonic()))
    for c in conns:
        threading.Thread(target=lane, args=(c,), daemon=True).start()
    threading.Event().wait()
"""
)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    pty_fd: int | None = None
    drained: int = 0
    cpu0: float = 0.0
    t0: float = 0.0
    cpu_pct: float = 0.0
    rss_mb: float = 0.0
    count_file: Path | None = None
    polls0: int = 0
    polls_done: float = 0.0
    """Share of the polls due in the window that were done (1.0: kept pace)."""

    def polls(self) -> int:
        try:
            return int(self.count_file.read_text()) if self.count_file else 0
        except (OSError, ValueError):
            return 0

    @property
    def full_pace_pct(self) -> float:
        """CPU % had it done every poll due (CPU per poll x the polls due)."""
        return self.cpu_pct / self.polls_done if self.polls_done > 0 else float("nan")

    def tree(self) -> list[psutil.Process]:
        try:
            p = psutil.Process(self.popen.pid)
            return [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu(self) -> float:
        total = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss(self) -> float:
        total = 0
        for p in self.tree():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 1e6

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM if self.pty_fd is None else signal.SIGHUP)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.pty_fd is not None:
            os.close(self.pty_fd)
            self.pty_fd = None


def start_tui(config: Path, env: dict[str, str], count_file: Path) -> Proc:
    """The real TUI in a pty of 120x40; what it writes is read and thrown away (as a terminal would)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    popen = subprocess.Popen(
        [PY, "-c", COUNTED, str(count_file), "--config", str(config)],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    proc = Proc("TUI", popen, pty_fd=master, count_file=count_file)

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            proc.drained += len(data)

    threading.Thread(target=drain, daemon=True).start()
    return proc


def start_export(config: Path, env: dict[str, str], count_file: Path) -> Proc:
    popen = subprocess.Popen(
        [PY, "-c", COUNTED, str(count_file), "export", "--config", str(config), "--listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    return Proc("export", popen, count_file=count_file)


def start_bare(mode: str, uris: Sequence[str], env: dict[str, str], count_file: Path) -> Proc:
    popen = subprocess.Popen(
        [PY, "-c", BARE, mode, str(count_file), *uris],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert popen.stdout is not None
    popen.stdout.readline()
    name = "bare calls, one thread" if mode == "one" else "bare + UUID/name, thread per host"
    return Proc(name, popen, count_file=count_file)


def bare_python_mb() -> float:
    out = subprocess.run(
        [PY, "-c", "import libvirt, psutil; print(psutil.Process().memory_info().rss)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout) / 1e6


@dataclass
class SizeResult:
    hosts: int
    vms: int
    procs: dict[str, Proc]
    load: str


def part_sizes(
    base: Path, sizes: Sequence[int], per_host: int, settle: float, measure: float
) -> list[SizeResult]:
    heading(f"1. sizes: CPU (% of one core) and RSS, {per_host} VMs a host, 1-s interval, side by side")
    results = []
    for hosts in sizes:
        fleet = make_fleet(base / "hosts", hosts, per_host)
        env_tui = env_for(base, f"tui-{hosts}")
        env_export = env_for(base, f"export-{hosts}")
        env_bare = env_for(base, "bare")
        counts = base / "counts"
        counts.mkdir(exist_ok=True)
        procs = [
            start_tui(fleet.config, env_tui, counts / f"tui-{hosts}"),
            start_export(fleet.config, env_export, counts / f"export-{hosts}"),
            start_bare("one", fleet.uris, env_bare, counts / f"one-{hosts}"),
            start_bare("threads", fleet.uris, env_bare, counts / f"threads-{hosts}"),
        ]
        try:
            started = time.monotonic()  # all start up together: until TUI and export have polled each host
            while time.monotonic() - started < CONNECT_LIMIT and min(p.polls() for p in procs[:2]) < hosts:
                time.sleep(0.5)
            time.sleep(settle)
            for p in procs:
                os.kill(p.popen.pid, signal.SIGSTOP)
            # then each runs alone in turn, a window at a time, `rounds` times: the machine's load weighs on
            # them alike, and one does not take the cores from another
            cpu: dict[str, float] = defaultdict(float)
            polls: dict[str, int] = defaultdict(int)
            walls: dict[str, float] = defaultdict(float)
            for _ in range(ROUNDS):
                for p in procs:
                    os.kill(p.popen.pid, signal.SIGCONT)
                    time.sleep(RESUME)  # the tick after a pause catches up: not measured
                    c0, n0, t0 = p.cpu(), p.polls(), time.monotonic()
                    time.sleep(measure / ROUNDS)
                    cpu[p.name] += p.cpu() - c0
                    polls[p.name] += p.polls() - n0
                    walls[p.name] += time.monotonic() - t0
                    os.kill(p.popen.pid, signal.SIGSTOP)
            for p in procs:
                os.kill(p.popen.pid, signal.SIGCONT)
                p.cpu_pct = 100 * cpu[p.name] / walls[p.name]
                p.polls_done = polls[p.name] / (hosts * walls[p.name] / INTERVAL)
                p.rss_mb = p.rss()
                if p.popen.poll() is not None:
                    raise RuntimeError(f"{p.name} exited with {p.popen.returncode} at {hosts} hosts")
            load = load_text()
        finally:
            for p in procs:
                p.stop()
        results.append(SizeResult(hosts, hosts * per_host, {p.name: p for p in procs}, load))
        print(f"  {hosts} hosts measured ({load})", flush=True)
    names = list(results[0].procs)
    rows = []
    for name in names:
        row: list[str] = [name]
        for r in results:
            p = r.procs[name]
            row.append(f"{p.cpu_pct:5.1f} %")
            row.append(f"{100 * p.polls_done:3.0f} %")
            row.append(f"{p.full_pace_pct:5.1f} %")
            row.append(f"{p.rss_mb:4.0f} MB")
        rows.append(row)
    bare = "bare calls, one thread"
    for ours in ("TUI", "export"):
        row = [f"{ours} / bare (one thread)"]
        for r in results:
            row += [
                "",
                "",
                f"{r.procs[ours].full_pace_pct / max(r.procs[bare].full_pace_pct, 0.01):5.1f}x",
                "",
            ]
        rows.append(row)
    for ours in ("TUI", "export"):
        row = [f"{ours}, % per 1,000 VMs"]
        for r in results:
            row += ["", "", f"{r.procs[ours].full_pace_pct / (r.vms / 1000):5.2f}", ""]
        rows.append(row)
    headers = ["what runs"]
    for r in results:
        headers += [f"{r.hosts} hosts: CPU", "polls done", "at full pace", "RSS"]
    print(table(headers, rows))
    print(
        "  CPU: % of one core over the window; polls done: of those due (a starved process falls behind);"
        " at full pace: CPU / polls done, the figure the targets and ratios use"
    )
    last = results[-1]
    tui, export, bare_p = last.procs["TUI"], last.procs["export"], last.procs[bare]
    ratio = export.full_pace_pct / max(bare_p.full_pace_pct, 0.01)
    # The test driver's hosts live in the process that opens them: what they hold is counted in every
    # process here. The bare process holds them and little else: the hosts' part is its RSS less that of
    # a Python with libvirt loaded and nothing opened.
    hosts_mb = bare_p.rss_mb - bare_python_mb()
    print(
        f"  RSS less the test hosts' own memory ({hosts_mb:.0f} MB at {last.hosts} hosts: the bare process's"
        " RSS less a bare Python's with libvirt): "
        + ", ".join(f"{n} {last.procs[n].rss_mb - hosts_mb:.0f} MB" for n in ("TUI", "export"))
    )
    tui_rss = tui.rss_mb - hosts_mb
    print(
        f"  at {last.hosts} hosts: TUI {tui.full_pace_pct:.1f} % (target < {TARGET_TUI_CPU:.0f} %) "
        f"{verdict(tui.full_pace_pct < TARGET_TUI_CPU)}; TUI RSS less the hosts' {tui_rss:.0f} MB (target < "
        f"{TARGET_TUI_RSS_MB:.0f}) {verdict(tui_rss < TARGET_TUI_RSS_MB)}; export {ratio:.2f}x the bare "
        f"calls (target < {TARGET_EXPORT_RATIO:.0f}x) {verdict(ratio < TARGET_EXPORT_RATIO)}"
    )
    return results


# ---------------------------------------------------------------------------------------------- 2. screen

SCREEN = r"""
import asyncio, json, random, sys, time
t0 = float(sys.argv[1])
from vimtui.core.config.settings import load_config
from vimtui.core.fleet.inventory import build_inventory
from vimtui.core.fleet.startup import tune_gc
from vimtui.ui.app import make_app
from vimtui.ui.widgets.vm_table import VmTable
from textual import events
from pathlib import Path

async def main():
    config = load_config(Path(sys.argv[2]))
    app = make_app(config, build_inventory(config), archive=True)
    tune_gc()
    out = {}
    async with app.run_test(size=(120, 40)) as pilot:
        painted = []  # when the screen was last written (headless: the write itself is skipped)
        display = app._display
        def timed_display(screen, renderable):
            if renderable is not None:
                painted.append(time.perf_counter())
            return display(screen, renderable)
        app._display = timed_display
        out["first_table"] = None
        while time.time() - t0 < 120:
            st = app.fleet.state
            table = app.screen.query(VmTable)
            if (st.hosts and all(h.last_poll for h in st.hosts) and table
                    and table.first().visible_count == len(st.vms) > 0):
                full = time.perf_counter()
                while not (painted and painted[-1] >= full) and time.perf_counter() - full < 10:
                    await asyncio.sleep(0.0005)  # the paint that shows them
                if painted and painted[-1] >= full:
                    out["first_table"] = time.time() - t0 - (time.perf_counter() - painted[-1])
                break
            await asyncio.sleep(0.005)
        st = app.fleet.state
        failed = [
            e for e in app.fleet.activity.entries() if e.action.startswith("host ") and e.state == "failed"
        ]
        out["host_failures"] = len(failed)
        out["first_failure"] = f"{failed[-1].host}: {failed[-1].message}" if failed else ""
        out["vms"] = len(st.vms)
        out["polled"] = sum(1 for h in st.hosts if h.last_poll)
        out["hosts"] = len(st.hosts)
        print(json.dumps(out), flush=True)
        await asyncio.sleep(3)  # polling at full pace
        table = app.screen.query_one(VmTable)
        rng = random.Random(1)
        lat = []
        for i in range(int(sys.argv[3])):
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            before, key = table.cursor, "j" if i % 2 == 0 else "k"
            t = time.perf_counter()
            app._driver.send_message(events.Key(key, key))
            while table.cursor == before and time.perf_counter() - t < 10:
                await asyncio.sleep(0.0005)
            moved = time.perf_counter()
            while not (painted and painted[-1] >= moved) and time.perf_counter() - t < 10:
                await asyncio.sleep(0.0005)
            print(json.dumps({"key_ms": (painted[-1] - t) * 1000 if painted else 10000.0}), flush=True)

asyncio.run(main())
"""


def part_screen(base: Path, hosts: int, per_host: int, presses: int) -> dict[str, Any]:
    heading(f"2. screen: first full table and key-press-to-repaint, {hosts} hosts, headless 120x40")
    fleet = make_fleet(base / "hosts", hosts, per_host)
    env = env_for(base, "screen")
    t0 = time.time()
    child = subprocess.Popen(
        [PY, "-c", SCREEN, repr(t0), str(fleet.config), str(presses)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert child.stdout is not None
    r: dict[str, Any] = {}
    keys: list[float] = []
    timer = threading.Timer(SCREEN_LIMIT, child.kill)  # a screen that cannot keep up: what it did so far
    timer.start()
    try:
        for line in child.stdout:
            got = json.loads(line)
            if "key_ms" in got:
                keys.append(got["key_ms"])
            else:
                r = got
    finally:
        timer.cancel()
        child.kill()
        child.wait()
    if not r:
        print(f"  the screen did not start within {SCREEN_LIMIT:.0f} s; {load_text()}")
        return r
    unanswered = presses - len(keys)
    keys = sorted(keys) + [float("inf")] * unanswered
    p95 = keys[min(len(keys) - 1, int(0.95 * len(keys)))]
    first = r["first_table"]
    first_text = f"{first:.2f}" if first is not None else f"> 120 ({r['polled']}/{r['hosts']} hosts polled)"
    print(
        table(
            ["what", "figure", "target", ""],
            [
                (
                    "first full table (s)",
                    first_text,
                    f"< {TARGET_FIRST_TABLE_S:.0f}",
                    verdict(first is not None and first < TARGET_FIRST_TABLE_S),
                ),
                ("key to repaint, median (ms)", f"{statistics.median(keys):.1f}", "", ""),
                (
                    "key to repaint, p95 (ms)",
                    f"{p95:.1f}",
                    f"< {TARGET_KEY_MS:.0f}",
                    verdict(p95 < TARGET_KEY_MS),
                ),
                ("key to repaint, max (ms)", f"{keys[-1]:.1f}", "", ""),
            ],
        )
    )
    more = f" ({unanswered} not pressed within {SCREEN_LIMIT:.0f} s)" if unanswered else ""
    print(f"  {r['vms']:,} VMs, {len(keys)} keys{more}; {load_text()}")
    if r.get("host_failures"):  # a loaded machine: opens past connect_timeout, retried (each opens anew)
        print(
            f"  before the first full table, hosts failed {r['host_failures']} times and were retried "
            f"(the first: {r['first_failure']})"
        )
    floor = open_floor(fleet.uris)
    print(
        f"  floor of the first table: the test driver opening every host and one bulk call each, a thread "
        f"per host as the lanes do, takes {floor:.2f} s here (it reads each host's XML file anew)"
    )
    r["open_floor"] = floor
    return r


def open_floor(uris: Sequence[str]) -> float:
    """Seconds for libvirt alone to open every host and make one bulk stats call on each, a thread per
    host started at once (what vimtui's lanes ask of it before the first full table can be drawn)."""
    code = (
        "import sys, threading, time, libvirt\n"
        "libvirt.registerErrorHandler(lambda *a: None, None)\n"
        "def one(u):\n"
        "    c = libvirt.open(u); c.getAllDomainStats(); c.close()\n"
        "t = time.monotonic()\n"
        "ts = [threading.Thread(target=one, args=(u,)) for u in sys.argv[1:]]\n"
        "[x.start() for x in ts]; [x.join() for x in ts]\n"
        "print(time.monotonic() - t)\n"
    )
    out = subprocess.run([PY, "-c", code, *uris], capture_output=True, text=True, check=True, timeout=600)
    return float(out.stdout.strip())


# ---------------------------------------------------------------------------------------------- 3. where


class Stages:
    """CPU seconds (of the thread that ran it) per stage, from wrapped functions. A stage called inside
    another counts its own time, and the outer one the rest (exclusive times). `lane_cpu`: the part of
    each stage run on a thread other than the main one (the lanes)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.lane_cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.on = False
        self._undo: list[Callable[[], None]] = []
        self._local = threading.local()

    def wrap(self, owner: Any, attr: str, stage: str) -> None:
        if not hasattr(owner, attr):
            return
        fn = getattr(owner, attr)
        raw = owner.__dict__.get(attr, fn) if isinstance(owner, type) else fn
        stages = self
        thread_time = time.thread_time
        local = self._local
        main = threading.main_thread()

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not stages.on:
                return fn(*args, **kwargs)
            stack = local.__dict__.setdefault("stack", [])
            stack.append(0.0)  # the time of the stages called inside this one
            t = thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = thread_time() - t
                inner = stack.pop()
                if stack:
                    stack[-1] += spent
                stages.cpu[stage] += spent - inner
                if threading.current_thread() is not main:
                    stages.lane_cpu[stage] += spent - inner
                stages.calls[stage] += 1

        if isinstance(raw, staticmethod):
            setattr(owner, attr, staticmethod(timed))
        else:
            setattr(owner, attr, timed)
        self._undo.append(lambda: setattr(owner, attr, raw))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


class RealShaped:
    """Real-shaped stats: each record of a bulk call replaced by a recorded lab record of its own, with
    the counters moved on at each call (see bench/poll.py make_vms), keyed by the record's place."""

    def __init__(self, per_host: int, stages: Stages) -> None:
        from bench.poll import load_recorded, make_vms

        self.stages = stages
        self.vms = make_vms(load_recorded(DATA), per_host)
        self.calls: dict[int, int] = defaultdict(int)
        self.cpu = 0.0

    def replace(
        self, conn: Any, records: list[tuple[Any, dict[str, Any]]]
    ) -> list[tuple[Any, dict[str, Any]]]:
        t = time.thread_time()
        tick = self.calls[id(conn)]
        self.calls[id(conn)] = tick + 1
        out = []
        vms = self.vms
        for i, (dom, stats) in enumerate(records):
            if stats.get("state.state") != 1:
                out.append((dom, stats))
                continue
            vm = vms[i % len(vms)]
            d = dict(vm.static)
            for key, start, inc in vm.counters:
                d[key] = start + inc * tick
            d["state.state"], d["state.reason"] = stats["state.state"], stats.get("state.reason", 0)
            out.append((dom, d))
        self.cpu += time.thread_time() - t
        if self.stages.on:
            self.stages.cpu["make records"] += time.thread_time() - t
        records[:] = out  # the same list (its kind: domain_refs.Records frees its domains)
        return records


def thread_cpu() -> dict[str, float]:
    """CPU seconds per kind of thread of this process (by the Python thread's name)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    out: dict[str, float] = defaultdict(float)
    for th in psutil.Process().threads():
        name = names.get(th.id, "")
        if th.id == main:
            kind = "event loop (main thread)"
        elif name.startswith("lane-"):
            kind = "lanes (poll/side calls)"
        elif name.startswith("task-"):
            kind = "task lanes"
        elif "archive" in name.lower():
            kind = "archive writer"
        elif name.startswith("asyncio") or name.startswith("ThreadPoolExecutor"):
            kind = "asyncio default executor"
        else:
            kind = f"other ({name or 'native'})"
        out[kind] += th.user_time + th.system_time
    return out


def part_where(
    base: Path, hosts: int, per_host: int, settle: float, measure: float, replay: bool
) -> dict[str, float]:
    import libvirt

    import vimtui.core.fleet.fleet as fleet_mod
    import vimtui.core.monitor.alerts as alerts_mod
    import vimtui.core.monitor.archive as archive_mod
    import vimtui.core.monitor.rings as rings_mod
    import vimtui.core.poll.session as session_mod

    split = importlib.util.find_spec("vimtui.core.poll.host_calls") is not None
    import vimtui.core.poll.stats as stats_mod
    from vimtui.core.config.settings import load_config
    from vimtui.core.fleet.inventory import build_inventory
    from vimtui.core.fleet.startup import make_fleet as core_fleet

    kind = "real-shaped records (replayed)" if replay else "test-driver records (state.* only)"
    heading(f"3{'b' if replay else 'a'}. where the time goes: core in-process, {hosts} hosts, {kind}")
    fleet_files = make_fleet(base / "hosts", hosts, per_host)
    env = env_for(base, f"where-{int(replay)}")
    stages = Stages()
    shaped = RealShaped(per_host, stages) if replay else None
    # the bulk call: domain_refs.bulk_stats (through libvirtmod) where it exists, else the method
    try:
        refs_mod: Any = importlib.import_module("vimtui.core.poll.domain_refs")
        calls: Any = importlib.import_module("vimtui.core.poll.host_calls")
        bulk_owner, bulk_attr = (calls, "bulk_stats") if hasattr(refs_mod, "bulk_stats") else (None, "")
    except ImportError:
        bulk_owner, bulk_attr = None, ""
    if bulk_owner is None:
        bulk_owner, bulk_attr = libvirt.virConnect, "getAllDomainStats"
    bulk = getattr(bulk_owner, bulk_attr)

    def get_all(conn: Any, stats: int = 0, flags: int = 0) -> Any:
        if not stages.on:
            recs = bulk(conn, stats, flags)
        else:
            t = time.thread_time()
            recs = bulk(conn, stats, flags)
            spent = time.thread_time() - t
            stages.cpu["bulk call (libvirt)"] += spent
            stages.lane_cpu["bulk call (libvirt)"] += spent
        return shaped.replace(conn, recs) if shaped is not None else recs

    setattr(bulk_owner, bulk_attr, get_all)
    # (where each stage is, in the code as it is now and as it was before poll/session.py was split)
    calls_mod = importlib.import_module("vimtui.core.poll.host_calls") if split else None
    stages.wrap(stats_mod, "parse_domain_stats", "parse")
    stages.wrap(calls_mod or session_mod, "parse_domain_stats", "parse")
    host_vms_mod = importlib.import_module("vimtui.core.poll.host_vms")
    stages.wrap(host_vms_mod.HostVms, "apply", "apply (VmState, rates)")
    if calls_mod is not None and hasattr(calls_mod, "Unchanged"):
        stages.wrap(calls_mod.Unchanged, "samples", "per-domain calls (UUID, name, free), on the loop")
    else:
        stages.wrap(session_mod.HostSession, "_apply", "apply (VmState, rates)")
    stages.wrap(rings_mod.History, "record_many", "history rings")
    stages.wrap(archive_mod.Archive, "add", "archive (add, on the loop)")
    stages.wrap(archive_mod.Archive, "add_many", "archive (add, on the loop)")
    stages.wrap(fleet_mod.Fleet, "_describe", "archive (describe)")
    stages.wrap(alerts_mod.AlertEngine, "evaluate", "alerts")
    stages.wrap(fleet_mod.Fleet, "publish", "publish (without alerts)")
    if split:
        stages.wrap(session_mod, "read_addresses", "address look-ups")
        stages.wrap(session_mod, "read_details", "details (XML)")
    else:
        stages.wrap(session_mod.HostSession, "_addresses_blocking", "address look-ups")
        stages.wrap(session_mod.HostSession, "_details_blocking", "details (XML)")

    async def run() -> tuple[float, dict[str, float], dict[str, float], float]:
        config = load_config(fleet_files.config)
        specs = build_inventory(config)
        fleet = core_fleet(config, specs, env, archive=True)
        await fleet.start()
        try:
            with contextlib.suppress(TimeoutError):  # every host polled once (a busy machine: minutes)
                await fleet.wait_for(lambda st: all(h.last_poll for h in st.hosts), CONNECT_LIMIT)
            await asyncio.sleep(settle)
            proc = psutil.Process()
            c0 = proc.cpu_times()
            th0 = thread_cpu()
            t0 = time.monotonic()
            stages.on = True
            await asyncio.sleep(measure)
            stages.on = False
            wall = time.monotonic() - t0
            c1 = proc.cpu_times()
            th1 = thread_cpu()
            total = (c1.user + c1.system - c0.user - c0.system) - stages.cpu.get("make records", 0.0)
            threads = {k: th1.get(k, 0.0) - th0.get(k, 0.0) for k in th1}
            return total, threads, dict(stages.cpu), wall
        finally:
            await fleet.stop()

    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("XDG_")})
    try:
        total, threads, st, wall = asyncio.run(run())
    finally:
        os.environ.clear()
        os.environ.update(saved)
        setattr(bulk_owner, bulk_attr, bulk)
        stages.undo()
    lanes = "lanes (poll/side calls)"
    if shaped is not None:
        made = st.pop("make records", 0.0)
        threads[lanes] = threads.get(lanes, 0.0) - made
        print(f"  (making the real-shaped records cost {100 * made / wall:.1f} % of a core: taken out)")
    st["per-domain calls (UUID, name, free) and the rest of the lanes"] = threads.get(lanes, 0.0) - sum(
        stages.lane_cpu.values()
    )
    pct = 100 * total / wall
    done = stages.calls.get("apply (VmState, rates)", 0) / (hosts * wall / INTERVAL)
    print(
        f"  whole process: {pct:.1f} % of one core, {100 * done:.0f} % of the polls due done "
        f"({pct / max(done, 1e-9):.1f} % at full pace); {load_text()}"
    )
    rows = [
        (k, f"{100 * v / wall:5.1f} %") for k, v in sorted(threads.items(), key=lambda kv: -kv[1]) if v > 0
    ]
    print(table(["thread", "CPU"], rows))
    rows = [(k, f"{100 * v / wall:5.1f} %") for k, v in sorted(st.items(), key=lambda kv: -kv[1])]
    print(table(["stage (the thread that runs it)", "CPU"], rows))
    return {"total": pct}


# ---------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settle", type=float, default=20.0, help="seconds of start-up before measuring")
    ap.add_argument("--measure", type=float, default=30.0, help="seconds measured per process and size")
    ap.add_argument("--sizes", default="10,25,50")
    ap.add_argument("--per-host", type=int, default=PER_HOST)
    ap.add_argument("--keys", type=int, default=30)
    ap.add_argument("--skip", default="", help="parts to skip, e.g. sizes,screen,where")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # children stopped on the way out
    sizes = [int(s) for s in args.sizes.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    print(f"vimtui fleet bench: {load_text()}; python {sys.version.split()[0]}")
    base = Path(tempfile.mkdtemp(prefix="vimtui-fleet-"))
    try:
        if "sizes" not in skip:
            part_sizes(base, sizes, args.per_host, args.settle, args.measure)
        if "screen" not in skip:
            part_screen(base, max(sizes), args.per_host, args.keys)
        if "where" not in skip:
            part_where(
                base, max(sizes), args.per_host, min(args.settle, 10.0), min(args.measure, 20.0), False
            )
            part_where(base, max(sizes), args.per_host, min(args.settle, 10.0), min(args.measure, 20.0), True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
