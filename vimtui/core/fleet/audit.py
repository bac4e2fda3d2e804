"""The audit log: JSON lines appended to `<data dir>/audit.log`, one when an action starts and one when it
ends (or is refused, or abandoned), and the same for console sessions.

Append-only by construction: the file is only ever opened with O_APPEND and each record is one `write`
of one whole line (atomic for appends of this size on a local file system), so records from concurrent
vimtui processes never interleave and nothing already written is rewritten. Each record is flushed to disk
(fsync) before `record` returns: an action runs only once its "started" record is on disk, and when that
cannot be written the action is refused (fail closed). A "started" record with no outcome after it is an
action whose vimtui ended first (quit or killed); the next vimtui records it as abandoned (`settle`).

Tamper-evident (audit_chain.py): each record holds the hash of the one before it and its seq; appends take
an exclusive lock on the file (flock) so that concurrent vimtuis chain their records one after another,
and the head file beside it is replaced after each one. `vimtui audit verify` checks it (audit_verify.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import math
import os
import socket
import stat
import time as _time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from vimtui.core.fleet.audit_chain import Link, canonical, head_path, last_link, record_hash, write_head
from vimtui.core.private import private_dir, private_files

AUDIT_FILE = "audit.log"
STARTED = "started"
ABANDONED = "abandoned"
SETTLE_TAIL = 4 << 20
"""Bytes at the end of the log that `settle` reads for "started" records without an outcome."""


class AuditError(Exception):
    """The audit log cannot be written: what was about to be recorded must not happen."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    time: float
    user: str
    """The local user who ran vimtui."""
    client: str
    """The machine vimtui ran on."""
    host: str
    vm: str
    action: str
    args: Mapping[str, Any]
    outcome: str
    """started, done, failed, cancelled, refused, abandoned; console sessions: started, took-over,
    closed, failed."""
    error: str = ""
    task: int | None = None
    run: str = ""
    """The vimtui process that wrote it (client:pid:its start time): pairs a "started" record with its
    outcome, and tells whether that process still lives."""
    prev: str = ""
    """SHA-256 of the record before it in its file (audit_chain.py); "" in records from before chains."""
    seq: int = 0
    """Its place in its file's chain, from 1; 0 in records from before chains."""

    @property
    def operator(self) -> str:
        """Who did it: user@machine."""
        return f"{self.user}@{self.client}"


LONG_ARG = 200
TYPED_ARGS = frozenset({"text"})
"""Arguments that are text typed into a guest (send-keys): a password at a login prompt, maybe; logs show
their length only."""


def redact(args: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as logs show them: a long text (a whole domain XML, which may hold secrets) becomes its
    size and digest, enough to tell two edits apart without keeping their content; text typed into a guest
    its length; a number that is not finite becomes its text (JSON has no NaN)."""
    out: dict[str, Any] = {}
    for k, v in args.items():
        if k in TYPED_ARGS and isinstance(v, str):
            out[k] = f"<{len(v)} characters typed>"
        elif isinstance(v, str) and len(v) > LONG_ARG:
            digest = hashlib.sha256(v.encode()).hexdigest()[:12]
            out[k] = f"<{len(v)} characters, sha256 {digest}>"
        elif isinstance(v, float) and not math.isfinite(v):
            out[k] = str(v)
        else:
            out[k] = v
    return out


def local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _run_id(client: str, pid: int) -> str:
    try:
        created = int(psutil.Process(pid).create_time())
    except psutil.Error:
        created = 0
    return f"{client}:{pid}:{created}"


def _run_alive(run: str, client: str) -> bool:
    """Whether the vimtui process that wrote `run` may still be running (another machine's: assumed so,
    it is not ours to judge)."""
    parts = run.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != client:
        return True
    try:
        pid, created = int(parts[1]), int(parts[2])
    except ValueError:
        return True
    try:
        return int(psutil.Process(pid).create_time()) == created
    except psutil.Error:
        return False


def _size(fd: int) -> int:
    try:
        return os.fstat(fd).st_size
    except OSError:
        return -1


def _torn(fd: int) -> bool:
    """Whether the file ends inside a line (a record cut short): appended to, the next record would be
    lost with it."""
    try:
        size = os.fstat(fd).st_size
        return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
    except OSError:  # not a regular file (a device in its place): nothing to mend
        return False


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._user = local_user()
        self._client = socket.gethostname()
        self.run = _run_id(self._client, os.getpid())
        self._private = False
        self._end: tuple[int, Link] | None = None
        """The file's size after our last append and the chain's end then (read again when it changed)."""
        self.written: Callable[[AuditRecord], None] | None = None
        """Told of each record once it is on disk (on the writing thread): the hosts' copies."""

    def record(
        self,
        *,
        time: float,
        host: str,
        vm: str,
        action: str,
        args: Mapping[str, Any],
        outcome: str,
        error: str = "",
        task: int | None = None,
        run: str = "",
    ) -> AuditRecord:
        """Append one record and flush it to disk; AuditError when that cannot be done. Blocking (fsync):
        call it off the event loop."""
        rec = AuditRecord(
            time,
            self._user,
            self._client,
            host,
            vm,
            action,
            redact(args),
            outcome,
            error,
            task,
            run or self.run,
        )
        body = json.loads(canonical(asdict(rec)))  # as it reads back (tuples as lists ...)
        try:
            if not self._private:
                private_dir(self.path.parent)
                private_files(self.path, head_path(self.path))
                self._private = True
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # other vimtuis append between our reading and writing
                end = self._chain_end(fd)
                body = end.next(body)
                line = canonical(body) + b"\n"
                if _torn(fd):  # a write cut short by a crash: this record starts a line of its own
                    line = b"\n" + line
                if os.write(fd, line) != len(line):
                    raise OSError("short write (disk full?)")
                os.fsync(fd)
                link = Link(body["seq"], record_hash(body))
                self._end = (_size(fd), link)
                with contextlib.suppress(OSError):  # the record stands; verify names a stale head
                    write_head(self.path, link)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditError(f"the audit log {self.path} cannot be written: {exc.strerror or exc}") from exc
        rec = AuditRecord(**body)
        if self.written is not None:
            self.written(rec)
        return rec

    def _chain_end(self, fd: int) -> Link:
        """The chain's end, from the file unless it is as our last append left it."""
        if self._end is not None and self._end[0] == _size(fd):
            return self._end[1]
        return last_link(fd)

    def records(self, tail: int | None = None) -> Iterator[AuditRecord]:
        """Oldest first (only those of the last `tail` bytes, when given); a line that is not a record (a
        torn write after a crash) is skipped."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return  # a device or a pipe in its place: nothing to read back
            if tail is not None:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - tail))
                if size > tail:
                    f.readline()  # most likely a part of a line
            for raw in f:
                try:
                    d = json.loads(raw)
                    yield AuditRecord(**d)
                except (ValueError, TypeError):
                    continue

    def settle(self) -> list[AuditRecord]:
        """Record as abandoned every action this machine's vimtui started and never recorded the end of,
        whose process is gone (it was killed, or the machine went down). Returns the records written;
        quiet when the log cannot be read or written (then actions are refused anyway)."""
        open_: dict[tuple[str, int | None, str, str], AuditRecord] = {}
        try:
            for rec in self.records(tail=SETTLE_TAIL):
                key = (rec.run, rec.task, rec.host, rec.action)
                if rec.outcome == STARTED:
                    open_[key] = rec
                elif rec.outcome != "took-over":
                    open_.pop(key, None)
        except OSError:
            return []
        written = []
        for rec in open_.values():
            if not rec.run or _run_alive(rec.run, self._client):
                continue
            try:
                written.append(
                    self.record(
                        time=_time.time(),
                        host=rec.host,
                        vm=rec.vm,
                        action=rec.action,
                        args=rec.args,
                        outcome=ABANDONED,
                        error=(
                            f"vimtui (pid {rec.run.split(':')[-2]}) ended while this ran (killed, or its "
                            "machine went down): what it did on the host is not known; check the host"
                        ),
                        task=rec.task,
                        run=rec.run,
                    )
                )
            except AuditError:
                return written
        return written
