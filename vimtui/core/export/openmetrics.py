"""The fleet's metrics for Prometheus: the OpenMetrics 1.0 or classic 0.0.4 text of a FleetState, and a
small HTTP server on asyncio that serves it at /metrics (`vimtui export`).

What is exported, and how:

- Base units: bytes (libvirt's KiB times 1024), seconds (libvirt's ns over 1e9), and ratios from 0 to 1
  where the screen shows a percentage (`vimtui_vm_cpu_usage_ratio` is the screen's CPU % over 100).
  Counters are named `..._total` (OpenMetrics: the family without the suffix, its sample with it).
- Labels: every VM series has host, vm, uuid, group (its host's group) and tenant (`tenant_of(vm)`: the
  tenant in the domain's vimtui metadata, "" when it has none or its details have not arrived yet); every
  host series has host and group. A state or status is an enum-like gauge: one series, value 1, labelled
  with the current one.
- Unknown is left out, never written as 0: a rate needs two polls, memory use needs the guest's balloon
  driver, a disk or network counter needs every device of the VM to report it. While a host is not
  answering, its VMs keep their last known state (with `vimtui_vm_stale` 1) but none of their
  measurements, and the host keeps only what does not go out of date (status, CPUs, memory size, VM
  counts, late ticks).
- The rates are those the screen and `vimtui stats` show (over the last poll interval); for Prometheus'
  own `rate()` use the counters.

Rendering is one pass over the hosts and one over the VMs, then one list of lines per family (the formats
want every sample of a family together). A scrape renders the latest published FleetState once per format
(and encoding): scrapes of the same state share the bytes, and a large fleet is rendered on a worker thread
so the event loop (the polls) never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from collections.abc import Callable
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from vimtui.core.model import DOMAIN_STATES, FleetState, VmState

log = logging.getLogger(__name__)

OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TenantOf = Callable[[VmState], str]


def vm_tenant(vm: VmState) -> str:
    """The VM's tenant from its domain metadata (DomainDetails.tenant); "" when it has none (yet)."""
    d = vm.details
    return (d.tenant or "") if d is not None else ""


# ---------------------------------------------------------------------------------------------- families


class Family(NamedTuple):
    name: str
    """The family's name; a counter's samples add `_total` to it."""
    kind: str
    """gauge or counter"""
    unit: str
    """OpenMetrics UNIT (the name ends with it), or ""."""
    help: str


def _g(name: str, help: str, unit: str = "") -> Family:
    return Family(name, "gauge", unit, help)


def _c(name: str, help: str, unit: str = "") -> Family:
    return Family(name, "counter", unit, help)


HOST_FAMILIES = (
    _g("vimtui_host_up", "1 while vimtui is connected to the host (status up or degraded), else 0."),
    _g(
        "vimtui_host_status",
        "The host's connection status as vimtui shows it (connecting, up, degraded, unreachable, "
        "auth-failed, hostkey-mismatch): 1, labelled with the current one.",
    ),
    _g("vimtui_host_cpus", "Logical CPUs of the host."),
    _g("vimtui_host_memory_total_bytes", "Memory of the host.", "bytes"),
    _g("vimtui_host_memory_free_bytes", "Free memory of the host.", "bytes"),
    _g("vimtui_host_memory_used_bytes", "Memory the host uses: total - free - buffers - cached.", "bytes"),
    _g("vimtui_host_memory_used_ratio", "vimtui_host_memory_used_bytes over the total, 0 to 1.", "ratio"),
    _g(
        "vimtui_host_cpu_usage_ratio",
        "Busy share (kernel + user) of all the host's CPUs between its last two polls, 0 to 1.",
        "ratio",
    ),
    _g(
        "vimtui_host_vms",
        "VMs on the host by libvirt state (the last known while the host is not answering).",
    ),
    _g("vimtui_host_poll_seconds", "How long the host's last poll took.", "seconds"),
    _g(
        "vimtui_host_last_poll_timestamp_seconds",
        "Wall time of the host's last successful poll, in seconds since the epoch.",
        "seconds",
    ),
    _c("vimtui_host_late_ticks", "Ticks at whose deadline the host's poll had not answered."),
)
(
    H_UP,
    H_STATUS,
    H_CPUS,
    H_MEM_TOTAL,
    H_MEM_FREE,
    H_MEM_USED,
    H_MEM_RATIO,
    H_CPU_RATIO,
    H_VMS,
    H_POLL_SECONDS,
    H_LAST_POLL,
    H_LATE,
) = range(len(HOST_FAMILIES))

VM_FAMILIES = (
    _g(
        "vimtui_vm_state",
        "The VM's state by libvirt's name (running, paused, shutoff ...): 1, labelled with the current one; "
        "the last known while its host is not answering.",
    ),
    _g(
        "vimtui_vm_stale",
        "1 while the VM's host is not answering (state is the last known, measurements are left out), "
        "else 0.",
    ),
    _g("vimtui_vm_vcpus", "vCPUs of the VM (vcpu.current)."),
    _g("vimtui_vm_memory_max_bytes", "Maximum memory of the VM (balloon.maximum).", "bytes"),
    _g("vimtui_vm_memory_current_bytes", "Memory the VM has now (balloon.current).", "bytes"),
    _g(
        "vimtui_vm_memory_used_bytes",
        "Memory the guest uses, from its balloon driver (available - usable).",
        "bytes",
    ),
    _g(
        "vimtui_vm_memory_used_ratio",
        "vimtui_vm_memory_used_bytes over the VM's current memory, 0 to 1.",
        "ratio",
    ),
    _g(
        "vimtui_vm_cpu_usage_ratio",
        "CPU time over the last poll interval as a share of the VM's vCPUs, 0 to 1.",
        "ratio",
    ),
    _g(
        "vimtui_vm_cpu_host_ratio",
        "CPU time over the last poll interval as a share of all its host's CPUs, 0 to 1.",
        "ratio",
    ),
    _c("vimtui_vm_cpu_seconds", "CPU time of the VM (cpu.time); starts again at 0 with the VM.", "seconds"),
    _c("vimtui_vm_disk_read_bytes", "Bytes read, summed over the VM's disks.", "bytes"),
    _c("vimtui_vm_disk_write_bytes", "Bytes written, summed over the VM's disks.", "bytes"),
    _c("vimtui_vm_disk_read_ops", "Read requests, summed over the VM's disks."),
    _c("vimtui_vm_disk_write_ops", "Write requests, summed over the VM's disks."),
    _g("vimtui_vm_disk_read_bytes_per_second", "Disk read bytes per second over the last poll interval."),
    _g("vimtui_vm_disk_write_bytes_per_second", "Disk write bytes per second over the last poll interval."),
    _g("vimtui_vm_disk_read_ops_per_second", "Disk read requests per second over the last poll interval."),
    _g("vimtui_vm_disk_write_ops_per_second", "Disk write requests per second over the last poll interval."),
    _c(
        "vimtui_vm_network_receive_bytes",
        "Bytes received, summed over the VM's interfaces (libvirt's net.N.rx.bytes).",
        "bytes",
    ),
    _c(
        "vimtui_vm_network_transmit_bytes",
        "Bytes transmitted, summed over the VM's interfaces (libvirt's net.N.tx.bytes).",
        "bytes",
    ),
    _g(
        "vimtui_vm_network_receive_bytes_per_second",
        "Network rx bytes per second over the last poll interval.",
    ),
    _g(
        "vimtui_vm_network_transmit_bytes_per_second",
        "Network tx bytes per second over the last poll interval.",
    ),
)
(
    V_STATE,
    V_STALE,
    V_VCPUS,
    V_MEM_MAX,
    V_MEM_CURRENT,
    V_MEM_USED,
    V_MEM_RATIO,
    V_CPU_RATIO,
    V_CPU_HOST_RATIO,
    V_CPU_SECONDS,
    V_DISK_RD_BYTES,
    V_DISK_WR_BYTES,
    V_DISK_RD_OPS,
    V_DISK_WR_OPS,
    V_DISK_RD_BPS,
    V_DISK_WR_BPS,
    V_DISK_RD_IOPS,
    V_DISK_WR_IOPS,
    V_NET_RX_BYTES,
    V_NET_TX_BYTES,
    V_NET_RX_BPS,
    V_NET_TX_BPS,
) = range(len(VM_FAMILIES))

FAMILIES = HOST_FAMILIES + VM_FAMILIES


# ---------------------------------------------------------------------------------------------- text


def escape(value: str) -> str:
    """A label value as both formats want it: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


_Num = int | float | None


def _ratio(pct: float | None) -> float | None:
    return None if pct is None or pct - pct != 0 else pct / 100.0  # pct - pct != 0: NaN or infinite


def _finite(x: float | None) -> float | None:
    return None if x is None or x - x != 0 else x


def _kib(kib: int | None) -> int | None:
    return None if kib is None else kib * 1024


def _header(f: Family, openmetrics: bool) -> str:
    if openmetrics:
        unit = f"# UNIT {f.name} {f.unit}\n" if f.unit else ""
        return f"# HELP {f.name} {f.help}\n# TYPE {f.name} {f.kind}\n{unit}"
    # the classic format names a counter's family as its samples are named
    name = f.name + "_total" if f.kind == "counter" else f.name
    return f"# HELP {name} {f.help}\n# TYPE {name} {f.kind}\n"


def render(state: FleetState, *, openmetrics: bool, tenant_of: TenantOf = vm_tenant) -> bytes:
    """The exposition of `state`: OpenMetrics 1.0 (ends with `# EOF`) or the classic text format 0.0.4.

    Every family is written, with its HELP and TYPE (and UNIT in OpenMetrics), even one with no sample;
    series in the state's order (hosts, then VMs by host and name)."""
    hosts = state.hosts
    group_of = {h.name: h.group for h in hosts}
    vms_by_state: dict[str, dict[str, int]] = {h.name: dict.fromkeys(DOMAIN_STATES, 0) for h in hosts}

    # per VM: its labels and one value per family (None: unknown, left out)
    vm_rows: list[tuple[str, list[_Num]]] = []
    vm_states: list[str] = []
    for vm in state.vms.values():
        counts = vms_by_state.get(vm.host)
        if counts is not None:
            counts[vm.state] = counts.get(vm.state, 0) + 1
        labels = (
            f'host="{escape(vm.host)}",vm="{escape(vm.name)}",uuid="{escape(vm.uuid)}",'
            f'group="{escape(group_of.get(vm.host, ""))}",tenant="{escape(tenant_of(vm))}"'
        )
        row: list[_Num] = [None] * len(VM_FAMILIES)
        row[V_STATE] = 1
        row[V_STALE] = 1 if vm.stale else 0
        row[V_VCPUS] = vm.vcpus
        row[V_MEM_MAX] = _kib(vm.mem_max_kib)
        if not vm.stale:
            row[V_MEM_CURRENT] = _kib(vm.mem_current_kib)
            s = vm.sample
            if s is not None:
                cpu = s.cpu_time_ns
                row[V_CPU_SECONDS] = None if cpu is None else cpu / 1e9
                disks = s.disks
                if disks:
                    row[V_DISK_RD_BYTES] = _total([d.rd_bytes for d in disks])
                    row[V_DISK_WR_BYTES] = _total([d.wr_bytes for d in disks])
                    row[V_DISK_RD_OPS] = _total([d.rd_reqs for d in disks])
                    row[V_DISK_WR_OPS] = _total([d.wr_reqs for d in disks])
                nics = s.nics
                if nics:
                    row[V_NET_RX_BYTES] = _total([n.rx_bytes for n in nics])
                    row[V_NET_TX_BYTES] = _total([n.tx_bytes for n in nics])
            r = vm.rates
            if r is not None:
                row[V_MEM_USED] = _kib(r.mem_used_kib)
                row[V_MEM_RATIO] = _ratio(r.mem_pct)
                row[V_CPU_RATIO] = _ratio(r.cpu_pct)
                row[V_CPU_HOST_RATIO] = _ratio(r.cpu_host_pct)
                row[V_DISK_RD_BPS] = _finite(r.disk_rd_bps)
                row[V_DISK_WR_BPS] = _finite(r.disk_wr_bps)
                row[V_DISK_RD_IOPS] = _finite(r.disk_rd_iops)
                row[V_DISK_WR_IOPS] = _finite(r.disk_wr_iops)
                row[V_NET_RX_BPS] = _finite(r.net_rx_bps)
                row[V_NET_TX_BPS] = _finite(r.net_tx_bps)
        vm_rows.append((labels, row))
        vm_states.append(escape(vm.state))

    host_rows: list[tuple[str, list[_Num]]] = []
    host_extra: list[tuple[str, dict[str, int]]] = []
    for h in hosts:
        labels = f'host="{escape(h.name)}",group="{escape(h.group)}"'
        row = [None] * len(HOST_FAMILIES)
        healthy = h.status.healthy
        row[H_UP] = 1 if healthy else 0
        row[H_STATUS] = 1
        info, node, rates = h.info, h.node, h.rates
        row[H_CPUS] = (node.cpus if node is not None and node.cpus else None) or (info.cpus if info else None)
        # the node's own total where it reports one (getInfo's can be one NUMA cell's), as `vimtui hosts`
        total = node.mem_total_kib if node is not None and node.mem_total_kib else None
        row[H_MEM_TOTAL] = _kib(total or (info.memory_kib if info else None))
        row[H_LATE] = h.late_ticks
        if h.last_poll:
            row[H_LAST_POLL] = h.last_poll
        if healthy:
            if node is not None:
                row[H_MEM_FREE] = _kib(node.mem_free_kib)
            if rates is not None:
                row[H_MEM_USED] = _kib(rates.mem_used_kib)
                row[H_MEM_RATIO] = _ratio(rates.mem_pct)
                row[H_CPU_RATIO] = _ratio(rates.cpu_pct)
            if h.last_poll:
                row[H_POLL_SECONDS] = _finite(h.poll_seconds)
        host_rows.append((labels, row))
        host_extra.append((escape(str(h.status)), vms_by_state[h.name]))

    out: list[str] = []
    add = out.append
    for i, f in enumerate(HOST_FAMILIES):
        add(_header(f, openmetrics))
        name = f.name + "_total" if f.kind == "counter" else f.name
        if i == H_STATUS:
            for (labels, _), (status, _) in zip(host_rows, host_extra, strict=True):
                add(f'{name}{{{labels},status="{status}"}} 1\n')
        elif i == H_VMS:
            for (labels, _), (_, counts) in zip(host_rows, host_extra, strict=True):
                for st, n in counts.items():
                    add(f'{name}{{{labels},state="{escape(st)}"}} {n}\n')
        else:
            out += [f"{name}{{{labels}}} {row[i]}\n" for labels, row in host_rows if row[i] is not None]
    for i, f in enumerate(VM_FAMILIES):
        add(_header(f, openmetrics))
        name = f.name + "_total" if f.kind == "counter" else f.name
        if i == V_STATE:
            out += [
                f'{name}{{{labels},state="{st}"}} 1\n'
                for (labels, _), st in zip(vm_rows, vm_states, strict=True)
            ]
        else:
            out += [f"{name}{{{labels}}} {row[i]}\n" for labels, row in vm_rows if row[i] is not None]
    if openmetrics:
        add("# EOF\n")
    # a name that is not valid UTF-8 (a lone surrogate) must not cost the whole scrape
    return "".join(out).encode("utf-8", "replace")


def _total(values: list[int | None]) -> int | None:
    """A VM's counter over its devices: known when every device reports it."""
    total = 0
    for v in values:
        if v is None:
            return None
        total += v
    return total


# ---------------------------------------------------------------------------------------------- HTTP


class HasState(Protocol):
    """A Fleet, or anything else that holds the latest published FleetState."""

    @property
    def state(self) -> FleetState: ...


StateSource = HasState | Callable[[], FleetState]

INLINE_VMS = 500
"""Up to this many VMs a state is rendered on the event loop (a few ms); above it on a worker thread."""
REQUEST_TIMEOUT = 10.0
"""Seconds a client has to send its request line and headers."""
WRITE_TIMEOUT = 60.0
"""Seconds a client has to take the whole response."""
MAX_LINE = 8192
MAX_HEADERS = 100
LINGER_SECONDS = 1.0
MAX_LINGER_BYTES = 1 << 20
MAX_DISCARD = 1 << 16
"""A request body (of a method we refuse) up to this size is read and dropped before answering."""

_INDEX = (
    b"<!DOCTYPE html>\n<html><head><title>vimtui exporter</title></head><body>\n"
    b'<h1>vimtui exporter</h1>\n<p>The fleet\'s metrics: <a href="/metrics">/metrics</a></p>\n'
    b"</body></html>\n"
)


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Request(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names; a repeated header's values joined with ", "."""


class Response(NamedTuple):
    status: int
    content_type: str
    body: bytes
    extra: tuple[tuple[str, str], ...] = ()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    505: "HTTP Version Not Supported",
}


def wants_openmetrics(accept: str) -> bool:
    """Content negotiation for /metrics: OpenMetrics when the Accept header ranks it at least as high as
    the classic text format (what Prometheus sends asks for OpenMetrics first); the classic format
    otherwise, and without an Accept header."""
    best_om = best_text = 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN
                    q = 0.0
        media = media.lower()
        if media == "application/openmetrics-text":
            best_om = max(best_om, q)
        elif media in ("text/plain", "text/*", "*/*"):
            best_text = max(best_text, q)
    return best_om > 0 and best_om >= best_text


def wants_gzip(accept_encoding: str) -> bool:
    """gzip when the scrape accepts it (Prometheus does): a quarter of the bytes, for about 15 ms of a worker
    thread per 1,000 VMs (bench/exporter.py)."""
    for part in accept_encoding.split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        if coding.lower() == "gzip":
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
    return False


class Exporter:
    """Answers HTTP requests for the metrics of the latest FleetState that `source` holds.

    `source` is read on the event loop at each scrape; `tenant_of` runs where the state is rendered, which
    for more than `inline_vms` VMs is a worker thread (it must only read the VmState it is given)."""

    def __init__(
        self,
        source: StateSource,
        *,
        tenant_of: TenantOf = vm_tenant,
        request_timeout: float = REQUEST_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        inline_vms: int = INLINE_VMS,
    ) -> None:
        self._current: Callable[[], FleetState] = (
            source if callable(source) else (lambda: source.state)  # type: ignore[union-attr]
        )
        self.tenant_of = tenant_of
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.inline_vms = inline_vms
        self._cache: dict[tuple[bool, bool], tuple[FleetState, asyncio.Future[bytes]]] = {}
        """(openmetrics, gzip) -> the state last rendered that way, and its bytes (or their making)."""
        self.renders = 0
        """States rendered so far (cache misses)."""

    # -- bodies -----------------------------------------------------------------------------------

    async def metrics(self, *, openmetrics: bool, compress: bool = False) -> bytes:
        """The latest state's exposition, rendered once per state and format however many ask."""
        return await self._body(self._current(), openmetrics, compress)

    def _body(self, state: FleetState, openmetrics: bool, compress: bool) -> asyncio.Future[bytes]:
        key = (openmetrics, compress)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is state and not _failed(hit[1]):
            return asyncio.shield(hit[1])
        future = asyncio.ensure_future(self._make(state, openmetrics, compress))
        self._cache[key] = (state, future)
        # a scrape that goes away (client gone, timeout) leaves the rendering to finish for the next one
        return asyncio.shield(future)

    async def _make(self, state: FleetState, openmetrics: bool, compress: bool) -> bytes:
        if compress:
            plain = await self._body(state, openmetrics, False)
            return await asyncio.to_thread(gzip.compress, plain, 1, mtime=0)
        self.renders += 1
        if len(state.vms) <= self.inline_vms:
            return render(state, openmetrics=openmetrics, tenant_of=self.tenant_of)
        return await asyncio.to_thread(render, state, openmetrics=openmetrics, tenant_of=self.tenant_of)

    # -- HTTP -------------------------------------------------------------------------------------

    async def respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(
                405, "text/plain; charset=utf-8", b"method not allowed\n", (("Allow", "GET, HEAD"),)
            )
        if request.path == "/metrics":
            om = wants_openmetrics(request.headers.get("accept", ""))
            compress = wants_gzip(request.headers.get("accept-encoding", ""))
            body = await self.metrics(openmetrics=om, compress=compress)
            extra = (("Content-Encoding", "gzip"),) if compress else ()
            return Response(200, OPENMETRICS_TYPE if om else TEXT_TYPE, body, (*extra, ("Vary", "Accept")))
        if request.path == "/":
            return Response(200, "text/html; charset=utf-8", _INDEX)
        return Response(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: one request, one response, then close (HTTP/1.1 with Connection: close)."""
        head = False
        unread = True
        """The request was not read to its end: linger before closing (see _linger)."""
        try:
            try:
                async with asyncio.timeout(self.request_timeout):
                    request = await read_request(reader)
                    head = request.method == "HEAD"
                    if request.method not in ("GET", "HEAD"):
                        await _discard_body(reader, request.headers)
                unread = False
            except TimeoutError:
                response = Response(408, "text/plain; charset=utf-8", b"request timeout\n")
            except BadRequest as exc:
                response = Response(exc.status, "text/plain; charset=utf-8", f"{exc}\n".encode())
            else:
                try:
                    response = await self.respond(request)
                except Exception:
                    log.exception("exporter: %s %s", request.method, request.path)
                    response = Response(500, "text/plain; charset=utf-8", b"internal error\n")
            await self._send(writer, response, head)
            if unread:
                await _linger(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the client went away, or did not read its response in time
        except Exception:
            log.exception("exporter: connection failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, response: Response, head: bool) -> None:
        status, ctype, body, extra = response
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in extra),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head:
            writer.write(body)
        async with asyncio.timeout(self.write_timeout):
            await writer.drain()


def _failed(future: asyncio.Future[bytes]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


async def read_request(reader: asyncio.StreamReader) -> Request:
    """The request line and headers (CRLF or bare LF line ends); BadRequest when they are not HTTP/1.x
    or too large; IncompleteReadError when the client closed first."""
    line = await _line(reader)
    parts = line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/"):
        raise BadRequest(400, "bad request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(505, "HTTP/1.0 or HTTP/1.1 only")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await _line(reader)
        if not line:
            break
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "bad header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    else:
        raise BadRequest(431, "too many header lines")
    try:
        path = urlsplit(target).path if "://" in target else target.partition("?")[0]
    except ValueError:
        raise BadRequest(400, "bad request target") from None
    return Request(method.upper(), path, headers)


async def _line(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "request line or header too long") from None
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise BadRequest(400, "request cut short") from None
        raise
    if len(raw) > MAX_LINE:
        raise BadRequest(431, "request line or header too long")
    return raw.rstrip(b"\r\n").decode("latin-1")


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After an error answer to a request not read to its end: send our end of the stream, then drop what
    the client still sends, for a moment. Closing with unread data would reset the connection, and a reset
    can destroy the answer before the client has read it."""
    if not writer.can_write_eof():
        return
    writer.write_eof()
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(LINGER_SECONDS):
            dropped = 0
            while dropped < MAX_LINGER_BYTES and (chunk := await reader.read(1 << 16)):
                dropped += len(chunk)


async def _discard_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
    """Read a small body of a refused request, so that closing does not reset the connection before the
    client has read the answer."""
    length = headers.get("content-length", "")
    if length.isdigit() and 0 < int(length) <= MAX_DISCARD:
        with contextlib.suppress(asyncio.IncompleteReadError):
            await reader.readexactly(int(length))


async def serve(
    source: StateSource,
    host: str | None,
    port: int,
    *,
    tenant_of: TenantOf = vm_tenant,
    request_timeout: float = REQUEST_TIMEOUT,
    write_timeout: float = WRITE_TIMEOUT,
) -> asyncio.Server:
    """Listen on host:port (port 0: any free one; see the server's sockets) and serve the metrics of the
    latest FleetState of `source` (a Fleet, or a function returning a FleetState). The server is serving
    when this returns; close it to stop. OSError when it cannot listen (address in use, unknown host)."""
    exporter = Exporter(
        source, tenant_of=tenant_of, request_timeout=request_timeout, write_timeout=write_timeout
    )
    return await asyncio.start_server(exporter.handle, host, port, limit=MAX_LINE)
