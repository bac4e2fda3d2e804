"""The exporter's HTTP side: a small server on asyncio that serves the latest FleetState's metrics at
/metrics (`vimtui export`), rendered by openmetrics.py.

A scrape renders the latest published FleetState once per format (and encoding): scrapes of the same
state share the bytes, and a large fleet is rendered on a worker thread so the event loop (the polls)
never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from collections.abc import Callable
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from vimtui.core.export.openmetrics import OPENMETRICS_TYPE, TEXT_TYPE, TenantOf, render, vm_tenant
from vimtui.core.model import FleetState

log = logging.getLogger(__name__)

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
ACCEPT_BATCH = 16
"""The listen backlog, which is also how many connections asyncio accepts at each wake-up before any of
their handlers runs: with its default (100), 300 connections arriving at once were all accepted (300
descriptors) before the cap below could turn one away."""
MAX_CONNECTIONS = 64
"""Connections served at once; one more is answered 503 and closed at once. Idle sockets (each held up to
REQUEST_TIMEOUT) must not take the file descriptors that polling, SSH and the history's SQLite need:
300 idle sockets under a 256-descriptor limit stopped scrapes and flooded the log before this cap."""

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
    503: "Service Unavailable",
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
        max_connections: int = MAX_CONNECTIONS,
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
        self.max_connections = max_connections
        self.open = 0
        """Connections being served now."""
        self.turned_away = 0
        """Connections answered 503 because `max_connections` were open."""

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
        """One connection: one request, one response, then close (HTTP/1.1 with Connection: close); 503
        at once when `max_connections` are open already."""
        if self.open >= self.max_connections:
            self.turned_away += 1
            self._turn_away(writer)
            return
        self.open += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.open -= 1

    def _turn_away(self, writer: asyncio.StreamWriter) -> None:
        """Answer 503 without reading the request (it may never come) and close: the descriptor is free
        at once (the small answer sits in the socket's buffer; no waiting on the client)."""
        body = b"too many connections; try again later\n"
        head = (
            f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(Exception):
            writer.write(head.encode("latin-1") + body)
            if writer.can_write_eof():
                writer.write_eof()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
        except (asyncio.IncompleteReadError, OSError):
            # the client went away (a reset, or a socket no longer connected: ENOTCONN is no
            # ConnectionError), or did not read its response in time (TimeoutError is an OSError)
            pass
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
    try:
        writer.write_eof()
    except OSError:
        return  # the client is gone already: nothing to linger for
    with contextlib.suppress(OSError):
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
    max_connections: int = MAX_CONNECTIONS,
) -> asyncio.Server:
    """Listen on host:port (port 0: any free one; see the server's sockets) and serve the metrics of the
    latest FleetState of `source` (a Fleet, or a function returning a FleetState). The server is serving
    when this returns; close it to stop. OSError when it cannot listen (address in use, unknown host)."""
    exporter = Exporter(
        source,
        tenant_of=tenant_of,
        request_timeout=request_timeout,
        write_timeout=write_timeout,
        max_connections=max_connections,
    )
    return await asyncio.start_server(exporter.handle, host, port, limit=MAX_LINE, backlog=ACCEPT_BATCH)
