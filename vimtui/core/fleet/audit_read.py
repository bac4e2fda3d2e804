"""Reading the audit back: the operator's own log and the hosts' files (every operator's records about
each host), merged by time, one row per record however many files hold it, filtered as `vimtui audit
show` and the `:audit` view ask. The one door both faces use to reach the hosts' files."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vimtui.core.fleet.audit import AuditLog, AuditRecord
from vimtui.core.fleet.audit_chain import Link, parse_line, read_head
from vimtui.core.fleet.audit_hosts import APPEND_WAIT, host_file_kind
from vimtui.core.fleet.audit_verify import Verdict, verify_text
from vimtui.core.poll.host_audit import HOST_AUDIT_FILE, HostAuditError, read_local, read_over_ssh

if TYPE_CHECKING:
    from vimtui.core.fleet.fleet import Fleet

LOCAL = "local"


@dataclass(frozen=True, slots=True)
class HostFile:
    """One host's audit file as read (or why it could not be)."""

    host: str
    name: str
    """host:path, as messages name it."""
    data: bytes = b""
    head: Link | None = None
    exists: bool = True
    error: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    """One record, and the files it was found in ("local", host names)."""

    record: AuditRecord
    where: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self.record)
        return d | {"operator": self.record.operator, "found_in": list(self.where)}


@dataclass(frozen=True, slots=True)
class Query:
    """What `audit show` and `:audit` filter on; empty fields match everything."""

    hosts: tuple[str, ...] = ()
    vm: str = ""
    since: float | None = None
    """Epoch seconds."""
    user: str = ""
    """A user name, or user@machine."""

    def matches(self, rec: AuditRecord) -> bool:
        if self.hosts and rec.host not in self.hosts:
            return False
        if self.vm and rec.vm != self.vm:
            return False
        if self.since is not None and rec.time < self.since:
            return False
        return not self.user or self.user in (rec.user, rec.operator)


@dataclass(slots=True)
class Gathered:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Files that could not be read, said in a line each."""


def records_in(data: bytes) -> list[AuditRecord]:
    out = []
    for raw in data.split(b"\n"):
        d = parse_line(raw) if raw.strip() else None
        if d is None:
            continue
        with contextlib.suppress(TypeError):
            out.append(AuditRecord(**d))
    return out


def _identity(rec: AuditRecord) -> tuple[Any, ...]:
    """What tells one record from another whichever file holds it (not its place in a chain)."""
    return (rec.time, rec.user, rec.client, rec.run, rec.host, rec.vm, rec.action, rec.outcome, rec.task)


def merge(sources: Iterable[tuple[str, Iterable[AuditRecord]]], query: Query) -> list[Row]:
    """Rows oldest first, one per record, each naming where it was found."""
    found: dict[tuple[Any, ...], tuple[AuditRecord, list[str]]] = {}
    for where, records in sources:
        for rec in records:
            if not query.matches(rec):
                continue
            key = _identity(rec)
            kept = found.get(key)
            if kept is None:
                found[key] = (rec, [where])
            elif where not in kept[1]:
                kept[1].append(where)
    rows = [Row(rec, tuple(where)) for rec, where in found.values()]
    rows.sort(key=lambda r: (r.record.time, r.record.operator, r.record.seq))
    return rows


def hosts_with_files(fleet: Fleet, names: Sequence[str] = ()) -> list[str]:
    """The hosts (those named, else every one) whose audit file can be reached."""
    out = []
    for name, session in fleet.sessions.items():
        if names and name not in names:
            continue
        if host_file_kind(session.spec.transport, session.spec.uri):
            out.append(name)
    return out


async def read_host_file(fleet: Fleet, host: str, path: str = HOST_AUDIT_FILE) -> HostFile:
    """A host's file over its SSH connection (or on this machine for a local host); never raises."""
    name = f"{host}:{path}"
    session = fleet.sessions.get(host)
    if session is None:
        return HostFile(host, name, error=f"{host}: no such host")
    try:
        if host_file_kind(session.spec.transport, session.spec.uri) == "local":
            got = await asyncio.to_thread(read_local, Path(path))
        else:
            conn = session.ssh
            if conn is None:
                return HostFile(host, name, error=f"{host} is {session.status}: its audit file was not read")
            async with asyncio.timeout(APPEND_WAIT * 2):
                got = await read_over_ssh(conn, path)
    except TimeoutError:
        return HostFile(host, name, error=f"{name}: no answer in {APPEND_WAIT * 2:g} s")
    except (HostAuditError, OSError) as exc:
        return HostFile(host, name, error=f"{host}: {exc}")
    if got is None:
        return HostFile(host, name, exists=False)
    return HostFile(host, name, got[0], got[1])


async def gather(fleet: Fleet | None, log: AuditLog, query: Query, *, hosts: bool = True) -> Gathered:
    """The local log and (when `hosts`) the files of the hosts the query names (all, when it names
    none), merged; what could not be read is in `problems`."""
    out = Gathered()
    files: list[HostFile] = []
    if fleet is not None and hosts:
        names = hosts_with_files(fleet, query.hosts)
        files = list(await asyncio.gather(*(read_host_file(fleet, h) for h in names)))
    out.problems = [f.error for f in files if f.error]

    def parse_and_merge() -> list[Row]:  # megabytes of JSON: off the event loop
        sources: list[tuple[str, Iterable[AuditRecord]]] = [(LOCAL, list(log.records()))]
        sources += [(f.host, records_in(f.data)) for f in files if f.exists and not f.error]
        return merge(sources, query)

    out.rows = await asyncio.to_thread(parse_and_merge)
    return out


def verify_local(path: Path) -> Verdict:
    """The verdict on a log on this machine (blocking)."""
    head = read_head(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if head is None:
            return Verdict(str(path), notes=["no such file: nothing recorded yet"])
        data = b""
    return verify_text(str(path), data, head)


def verify_host(f: HostFile) -> Verdict:
    return verify_text(f.name, f.data, f.head)


async def fleet_audit(fleet: Fleet, query: Query) -> Gathered:
    """What the `:audit` view shows: the fleet's own log and its hosts' files, as `gather`."""
    log = fleet.tasks.audit
    if log is None:
        return Gathered(problems=["this vimtui keeps no audit log"])
    return await gather(fleet, log, query)


def parse_words(words: list[str], now: float) -> Query:
    """A Query from `host=H vm=V since=1d user=U` (host repeatable); ValueError saying what is wrong."""
    from vimtui.core.units import parse_duration

    hosts: list[str] = []
    fields: dict[str, str] = {}
    for word in words:
        key, eq, value = word.partition("=")
        key = key.lstrip("-")
        if not eq or key not in ("host", "vm", "since", "user") or not value:
            raise ValueError(f"expected host=H, vm=V, since=1d or user=U: {word!r}")
        if key == "host":
            hosts.append(value)
        else:
            fields[key] = value
    since = None
    if "since" in fields:
        ago = parse_duration(fields["since"])
        if ago is None:
            raise ValueError(f"since: not a duration (90m, 1d, 2h30m): {fields['since']!r}")
        since = now - ago
    return Query(tuple(hosts), fields.get("vm", ""), since, fields.get("user", ""))
