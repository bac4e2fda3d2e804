"""The audit file kept on each host (HOST_AUDIT_FILE): every operator's vimtui appends the records that
concern the host to it, over the SSH connection it already holds, so what several operators did to one
host is in one place. The file has its own hash chain and head (audit_chain.py), like each operator's own
log; a host reached locally (qemu:///system without SSH) keeps it on this machine.

An append is one exchange on one SSH channel: a shell on the host takes an exclusive lock on the file
(flock), prints its last lines, reads the new head and the records (chained to them here), appends each
record with one write to the file opened for appending, and replaces the head by a rename. Whoever
appends next waits for the lock, so concurrent operators' records chain one after another.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncssh

from vimtui.core.fleet.audit_chain import (
    Link,
    canonical,
    head_path,
    head_text,
    last_link,
    link_after,
    parse_head,
    read_head,
    record_hash,
    write_head,
)
from vimtui.core.private import private_dir

HOST_AUDIT_FILE = "/var/log/vimtui/audit.jsonl"
TAIL_LINES = 16
"""Lines of the host's file read back to find the record the next one follows (past torn lines)."""
READ_LIMIT = 64 << 20
"""Bytes at most read of a host's file (its end: the newest records)."""
_MARK = b"--vimtui-audit-tail-end--"

_APPEND = """umask 077
f=$1
mkdir -p "$(dirname "$f")" || exit 10
exec 9>>"$f" || exit 11
if command -v flock >/dev/null 2>&1; then
  flock -w 20 9 || { echo "the lock on $f was not free in 20 s" >&2; exit 12; }
fi
tail -n {lines} "$f" || exit 11
printf '\\n%s\\n' '{mark}'
IFS= read -r torn && IFS= read -r head || exit 13
if [ "$torn" = 1 ]; then printf '\\n' >&9 || exit 14; fi
while IFS= read -r line; do printf '%s\\n' "$line" >&9 || exit 14; done
printf '%s\\n' "$head" > "$f.head.tmp" && mv -f "$f.head.tmp" "$f.head"
""".replace("{lines}", str(TAIL_LINES)).replace("{mark}", _MARK.decode())

_READ = """f=$1
[ -e "$f" ] || [ -e "$f.head" ] || exit 20
cat "$f.head" 2>/dev/null
printf '\\n%s\\n' '{mark}'
if [ -e "$f" ]; then tail -c {limit} "$f"; fi
""".replace("{limit}", str(READ_LIMIT)).replace("{mark}", _MARK.decode())


class HostAuditError(Exception):
    """The host's audit file could not be appended to or read; the message says why."""


def _command(script: str, path: str) -> str:
    return f"sh -c {shlex.quote(script)} vimtui-audit {shlex.quote(path)}"


def _chain(lines: list[bytes], records: Sequence[Mapping[str, Any]]) -> tuple[list[bytes], Link]:
    """`records` as lines chained after `lines`, and the chain's end after them."""
    link = link_after(lines)
    out = []
    for record in records:
        body = link.next({k: v for k, v in record.items() if k not in ("prev", "seq")})
        link = Link(body["seq"], record_hash(body))
        out.append(canonical(body) + b"\n")
    return out, link


async def append_over_ssh(
    conn: asyncssh.SSHClientConnection, path: str, records: Sequence[Mapping[str, Any]]
) -> Link:
    """Append `records` to the host's file in one exchange (each chained to the one before, the first to
    the file's last record, each one write); the new chain end. Raises HostAuditError (the caller bounds
    the time)."""
    try:
        async with conn.create_process(_command(_APPEND, path), encoding=None) as proc:
            try:
                tail = await proc.stdout.readuntil(b"\n" + _MARK + b"\n")
            except asyncio.IncompleteReadError:
                raise HostAuditError(_why(await proc.wait(), path)) from None
            text = tail[: -len(_MARK) - 2]
            torn = not text.endswith(b"\n") and bool(text)
            lines = [ln for ln in text.split(b"\n") if ln.strip()]
            chained, link = _chain(lines, records)
            proc.stdin.write(b"%d\n%s" % (int(torn), head_text(link)) + b"".join(chained))
            proc.stdin.write_eof()
            result = await proc.wait()
            if result.exit_status != 0:
                raise HostAuditError(_why(result, path))
            return link
    except (OSError, asyncssh.Error) as exc:
        raise HostAuditError(f"{path}: {exc}") from exc


def _why(result: asyncssh.SSHCompletedProcess, path: str) -> str:
    """What the host's shell said when it failed (its last line on stderr), else how it ended."""
    err = result.stderr if isinstance(result.stderr, bytes) else b""
    said = err.decode(errors="replace").strip().splitlines()
    if said:
        return f"{path}: {said[-1]}"
    if result.exit_status is None:
        return f"{path}: the host closed the channel before the shell ended"
    return f"{path}: the host's shell ended with status {result.exit_status}"


async def read_over_ssh(conn: asyncssh.SSHClientConnection, path: str) -> tuple[bytes, Link | None] | None:
    """The host's file (its last READ_LIMIT bytes) and its head; None when the host has no such file."""
    try:
        result = await conn.run(_command(_READ, path), encoding=None)
    except (OSError, asyncssh.Error) as exc:
        raise HostAuditError(f"{path}: {exc}") from exc
    if result.exit_status == 20:
        return None
    out = result.stdout if isinstance(result.stdout, bytes) else b""
    if result.exit_status != 0:
        raise HostAuditError(_why(result, path))
    head_raw, sep, data = out.partition(b"\n" + _MARK + b"\n")
    if not sep:
        raise HostAuditError(f"{path}: the host's answer was cut short")
    return data, parse_head(head_raw.strip()) if head_raw.strip() else None


def append_local(path: Path, record: Mapping[str, Any]) -> Link:
    """The same append to a file on this machine (a host reached locally); OSError if it cannot be done.
    Blocking: call it off the event loop."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        body = last_link(fd).next({k: v for k, v in record.items() if k not in ("prev", "seq")})
        line = canonical(body) + b"\n"
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        if os.write(fd, line) != len(line):
            raise OSError("short write (disk full?)")
        os.fsync(fd)
        link = Link(body["seq"], record_hash(body))
        write_head(path, link)
        return link
    finally:
        os.close(fd)


def read_local(path: Path) -> tuple[bytes, Link | None] | None:
    """A file on this machine and its head, as read_over_ssh; None when there is none. Blocking."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - READ_LIMIT))
            data = f.read()
    except FileNotFoundError:
        return None
    return data, read_head(path)


__all__ = [
    "HOST_AUDIT_FILE",
    "HostAuditError",
    "append_local",
    "append_over_ssh",
    "head_path",
    "read_local",
    "read_over_ssh",
]
