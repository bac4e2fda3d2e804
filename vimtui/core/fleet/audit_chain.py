"""The audit's hash chain: each record holds the SHA-256 of the one before it (`prev`) and its place in the
file's chain (`seq`), so that an edited, removed, inserted or reordered record breaks a link somewhere, and
a head file beside the log (the last record's seq and hash, replaced atomically after each append) tells a
file cut short at its end from one that simply ends.

The hash is over a canonical form (JSON with sorted keys, no spaces, ASCII), the form lines are written
in: a record whose text is re-spaced but not changed keeps its hash. The first record of a chain holds
ANCHOR, or, in a file an older vimtui began, the hash of the last record written before the chain (those
records carry no link and cannot be checked: `verify` says where the chain starts).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANCHOR = hashlib.sha256(b"vimtui audit chain v1").hexdigest()
"""`prev` of the first record of a file's chain."""
HEAD_SUFFIX = ".head"
SCAN_BACK = 4 << 20
"""Bytes from the end of a log searched for its last record (past torn lines a crash left)."""


def canonical(record: Mapping[str, Any]) -> bytes:
    """The one text of a record that its hash is taken over (and its line is written as)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def chained(record: Mapping[str, Any]) -> bool:
    """Whether a record carries a link (records from before the chain do not)."""
    seq, prev = record.get("seq"), record.get("prev")
    return isinstance(seq, int) and seq > 0 and isinstance(prev, str) and bool(prev)


def parse_line(raw: bytes | str) -> dict[str, Any] | None:
    """A record from one line, or None when the line is not one (torn, or damaged)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Link:
    """Where a chain stands: the last record's seq (0 before the first) and the hash the next one holds."""

    seq: int
    hash: str

    def next(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """`record` as the next one of this chain (its `prev` and `seq` set)."""
        return {**record, "prev": self.hash, "seq": self.seq + 1}


START = Link(0, ANCHOR)


def link_after(lines: list[bytes]) -> Link:
    """The chain's end after `lines` (oldest first): after its last record (a torn or damaged line at the
    end is passed over; the records before it are what the next one follows)."""
    for raw in reversed(lines):
        rec = parse_line(raw)
        if rec is None:
            continue
        return Link(rec["seq"] if chained(rec) else 0, record_hash(rec))
    return START


def last_link(fd: int, limit: int = SCAN_BACK) -> Link:
    """The chain's end of the open log `fd`, read from its end (up to `limit` bytes back)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return START
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return START
    size = st.st_size
    start = max(0, size - limit)
    data = os.pread(fd, size - start, start)
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # most likely a part of a line
    return link_after([ln for ln in lines if ln.strip()])


def head_path(log: Path) -> Path:
    return log.with_name(log.name + HEAD_SUFFIX)


def head_text(link: Link) -> bytes:
    return canonical({"seq": link.seq, "hash": link.hash}) + b"\n"


def parse_head(text: bytes | str) -> Link | None:
    value = parse_line(text)
    if value is None:
        return None
    seq, digest = value.get("seq"), value.get("hash")
    if not isinstance(seq, int) or not isinstance(digest, str):
        return None
    return Link(seq, digest)


def write_head(log: Path, link: Link) -> None:
    """Replace the head file atomically (a temporary file, flushed, renamed over it); OSError if not."""
    head = head_path(log)
    tmp = head.with_name(head.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, head_text(link))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, head)


def read_head(log: Path) -> Link | None:
    try:
        return parse_head(head_path(log).read_bytes())
    except OSError:
        return None
