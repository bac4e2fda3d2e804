"""Volume upload and download: a local file to or from a volume of a host's storage pool, through a libvirt
stream on the host's own connection (over SSH for a remote host: no second channel, no scp).

Run inside a task (the blocking functions `upload_file` and `download_file` take its TaskContext): the
local file is read or written on the task's thread, and the stream goes chunk by chunk, each chunk one
short call on the host's lane (vol_stream.py), sized to take about CHUNK_SECONDS. Polls and other actions
on the host go on between chunks; cancelling stops the transfer at the next chunk. Progress says bytes,
percent, rate and time left. Holes of a sparse file are sent as holes into a volume the upload makes
(raw), and a download writes the volume's holes as holes.

What a failed or cancelled transfer leaves, it says: a volume the upload made is deleted; an existing
volume is partly overwritten (its first bytes are the file's); a download's local file is written under a
temporary name and renamed at the end, so a failed one leaves no file."""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from vimtui.core.actions import vol_stream
from vimtui.core.actions.base import ActionError
from vimtui.core.actions.vol_stream import Opened, Piece
from vimtui.core.fleet.tasks import TaskCancelled, TaskContext
from vimtui.core.units import format_bytes, format_duration

FORMATS = ("raw", "qcow2")
"""Formats an upload can make a volume in."""
QCOW2_MAGIC = b"QFI\xfb"
CHUNK_SECONDS = 0.2
"""Each chunk is sized to take about this long on the host's lane (a poll waits at most that for it)."""
FIRST_CHUNK = 1024 * 1024
MIN_CHUNK = 256 * 1024
MAX_CHUNK = 16 * 1024 * 1024
MAX_REACH = 64 * 1024**3
"""The furthest one chunk of a download reads while the volume shows only holes (it stops once it has a
chunk's worth of data)."""
PROGRESS_EVERY = 0.5
RATE_WINDOW = 5.0
"""Seconds of recent progress the rate and time left are worked out from."""
PART_SUFFIX = ".vimtui-part"


# -- the local file ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalImage:
    """A local file to upload, as far as the upload needs to know it."""

    path: Path
    size: int
    format: str
    """qcow2 when it starts with the qcow2 magic, else raw."""
    virtual_size: int
    """The disk size a qcow2 image's header gives (its length for raw)."""
    allocated: int
    """Bytes the file takes on disk (less than `size`: it has holes)."""


def inspect_file(path: str | Path) -> LocalImage:
    """What `path` is; ActionError when it cannot be uploaded (missing, not a file, unreadable, empty)."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
        if not p.is_file():
            raise ActionError(f"{p} is not a regular file")
        with p.open("rb") as f:
            head = f.read(32)
    except OSError as exc:
        raise ActionError(f"cannot read {p}: {exc.strerror or exc}") from exc
    if st.st_size == 0:
        raise ActionError(f"{p} is empty")
    fmt, virtual = "raw", st.st_size
    if head[:4] == QCOW2_MAGIC and len(head) >= 32:
        fmt, virtual = "qcow2", int.from_bytes(head[24:32], "big")
    allocated = min(st.st_blocks * 512, st.st_size) if hasattr(st, "st_blocks") else st.st_size
    return LocalImage(p, st.st_size, fmt, virtual, allocated)


def upload_format(image: LocalImage, fmt: str | None) -> str:
    """The format of the volume an upload makes: the one asked, which must be the file's, else the file's."""
    if fmt is None or fmt == "":
        return image.format
    if fmt not in FORMATS:
        raise ActionError(f"format {fmt!r}: an upload makes a {' or '.join(FORMATS)} volume")
    if fmt != image.format:
        raise ActionError(
            f"{image.path} is a {image.format} image, not {fmt}: "
            f"use --format {image.format}, or leave --format out"
        )
    return fmt


def upload_refusal(source: str | Path, create: bool = False, fmt: str | None = None) -> str | None:
    """Why `source` cannot be uploaded (None: it can), from the local file alone; touches nothing."""
    try:
        image = inspect_file(source)
        if create:
            upload_format(image, fmt)
    except ActionError as exc:
        return str(exc)
    return None


def download_target(dest: str | Path, volume: str, force: bool = False) -> Path:
    """The file a download writes: `dest`, or `dest/VOLUME` when it is a directory. ActionError when it
    exists (unless `force`) or its directory does not."""
    p = Path(dest).expanduser()
    if p.is_dir():
        p = p / volume
    if p.exists() and not force:
        raise ActionError(f"{p} exists: choose another file, or overwrite it with --force")
    if p.exists() and not p.is_file():
        raise ActionError(f"{p} is not a regular file")
    if not p.parent.is_dir():
        raise ActionError(f"no directory {p.parent}")
    if not os.access(p.parent, os.W_OK):
        raise ActionError(f"cannot write in {p.parent}")
    return p


def download_refusal(dest: str | Path, volume: str, force: bool = False) -> str | None:
    """Why a download of `volume` cannot go to `dest` (None: it can); touches nothing."""
    try:
        download_target(dest, volume, force)
    except ActionError as exc:
        return str(exc)
    return None


def _segments(fd: int, size: int) -> Iterator[tuple[int, int, bool]]:
    """(offset, length, is data) of the file's data and holes, in order (all data where the file system
    cannot say)."""
    pos = 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole up to the end
                yield pos, size - pos, False
                return
            yield pos, size - pos, True  # no SEEK_DATA here
            return
        data = min(data, size)
        if data > pos:
            yield pos, data - pos, False
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
        if hole <= data:
            return
        yield data, hole - data, True
        pos = hole


class _Reader:
    """The local file in chunks of pieces: data read, holes as lengths (when `sparse`)."""

    def __init__(self, f: Any, size: int, sparse: bool) -> None:
        self._f = f
        self._size = size
        self._segments = _segments(f.fileno(), size) if sparse else iter([(0, size, True)])
        self._current: tuple[int, int, bool] | None = None

    def chunk(self, limit: int) -> tuple[list[Piece], int]:
        """Pieces with at most `limit` bytes of data, and how many bytes of the file they cover."""
        pieces: list[Piece] = []
        data = covered = holes = 0
        while data < limit and holes < vol_stream.HOLES_PER_CHUNK:
            if self._current is None:
                self._current = next(self._segments, None)
                if self._current is None:
                    break
            offset, length, is_data = self._current
            if not is_data:
                pieces.append(length)
                holes += 1
                covered += length
                self._current = None
                continue
            n = min(length, limit - data)
            self._f.seek(offset)
            block = self._f.read(n)
            if len(block) != n:
                raise ActionError(f"the file changed while it was read (short read at byte {offset})")
            pieces.append(block)
            data += n
            covered += n
            self._current = (offset + n, length - n, True) if n < length else None
        return pieces, covered


# -- progress and pace -------------------------------------------------------------------------------


class Meter:
    """Progress of a transfer as the task shows it: bytes, percent, rate and time left (at most every
    PROGRESS_EVERY seconds)."""

    def __init__(self, ctx: TaskContext, total: int, label: str, span: tuple[float, float]) -> None:
        self._ctx = ctx
        self.total = total
        self.label = label
        self._span = span
        self.started = time.monotonic()
        self._last = 0.0
        self._window: deque[tuple[float, int]] = deque([(self.started, 0)])

    def rate(self, now: float) -> float | None:
        t0, d0 = self._window[0]
        t1, d1 = self._window[-1]
        return (d1 - d0) / (t1 - t0) if t1 - t0 >= 0.2 else None

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        self._window.append((now, done))
        while len(self._window) > 2 and now - self._window[1][0] >= RATE_WINDOW:
            self._window.popleft()
        if not force and now - self._last < PROGRESS_EVERY:
            return
        self._last = now
        frac = done / self.total if self.total else 1.0
        low, high = self._span
        self._ctx.progress(low + (high - low) * min(frac, 1.0), self.text(done, now))

    def text(self, done: int, now: float) -> str:
        pct = 100.0 * done / self.total if self.total else 100.0
        text = f"{self.label}: {format_bytes(done)} of {format_bytes(self.total)} ({pct:.0f} %)"
        rate = self.rate(now)
        if rate is not None and rate > 0:
            left = (self.total - done) / rate
            text += f", {format_bytes(rate)}/s, {format_duration(left)} left"
        return text


class Pace:
    """Chunk sizes that take about CHUNK_SECONDS each, from how long the last one took."""

    def __init__(self) -> None:
        self.size = FIRST_CHUNK

    def took(self, nbytes: int, seconds: float) -> None:
        if nbytes <= 0:
            return
        want = nbytes * CHUNK_SECONDS / max(seconds, 1e-3)
        self.size = int(min(MAX_CHUNK, max(MIN_CHUNK, (self.size + want) / 2)))


# -- transfers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transferred:
    """What a finished transfer did."""

    host: str
    pool: str
    volume: str
    path: str
    """The volume's path on the host."""
    local: Path
    length: int
    """Bytes of the file (holes included)."""
    data: int
    """Bytes that crossed the connection (holes went as lengths)."""
    seconds: float
    created: bool
    format: str
    capacity: int

    @property
    def rate(self) -> float:
        """Bytes of data a second through the connection."""
        return self.data / self.seconds if self.seconds > 0 else 0.0

    def summary(self, verb: str) -> str:
        """`uploaded 1.2G in 31.0s (40M/s), 200M of holes sent as holes`."""
        took = f"in {format_duration(self.seconds, tenths=True)} ({format_bytes(self.rate)}/s)"
        holes = self.length - self.data
        sparse = f", {format_bytes(holes)} of holes sent as holes" if holes > 0 else ""
        return f"{verb} {format_bytes(self.length)} {took}{sparse}"


def upload_file(
    ctx: TaskContext,
    source: str | Path,
    pool: str,
    volume: str,
    *,
    create: bool = False,
    fmt: str | None = None,
    span: tuple[float, float] = (0.0, 100.0),
    label: str = "",
) -> Transferred:
    """Upload local file `source` into volume `volume` of storage pool `pool` on the task's host.

    `create`: make the volume first (refused if it exists), in format `fmt` (raw or qcow2; default: the
    file's own), sized for the file (a qcow2 image's disk size from its header); a failed or cancelled
    upload deletes it again. Else the volume must exist, hold the file (raw) and not be a disk of a running
    VM; a failed or cancelled upload says how much of it was overwritten. `span`: the part of the task's
    progress it fills (for a task that does more). Raises ActionError (what failed and what it left) or
    TaskCancelled (the same, cancelled)."""
    image = inspect_file(source)
    host = ctx.host
    label = label or f"uploading {image.path.name}"
    create_as: tuple[str, int] | None = None
    sparse = False
    if create:
        fmt = upload_format(image, fmt)
        create_as = (fmt, image.virtual_size if fmt == "qcow2" else image.size)
        sparse = fmt == "raw" and image.allocated < image.size
    ctx.check_cancelled()
    ctx.progress(span[0], f"{label}: opening the volume")
    opened: Opened = ctx.on_lane(
        vol_stream.open_upload, host, pool, volume, image.size, create_as, sparse, image.format
    )
    meter = Meter(ctx, image.size, label, span)
    pace = Pace()
    done = data = 0
    try:
        with image.path.open("rb") as f:
            reader = _Reader(f, image.size, opened.volume.sparse)
            while done < image.size:
                ctx.check_cancelled()
                pieces, covered = reader.chunk(pace.size)
                if covered == 0:
                    raise ActionError(f"{image.path} is shorter than when the upload began")
                t = time.monotonic()
                ctx.on_lane(vol_stream.send_chunk, opened.volume, done, pieces)
                sent = sum(len(p) for p in pieces if isinstance(p, bytes))
                pace.took(sent, time.monotonic() - t)
                done += covered
                data += sent
                meter.update(done)
        meter.update(done, force=True)
    except BaseException as exc:
        left = _undo_upload(ctx, opened, pool, volume, image.path, data)
        _fail(exc, f"upload stopped at {format_bytes(done)} of {format_bytes(image.size)}", left)
    seconds = time.monotonic() - meter.started
    fmt_now, capacity, _alloc = ctx.on_lane(vol_stream.refreshed_volume, host, pool, volume)
    return Transferred(
        host,
        pool,
        volume,
        opened.path,
        image.path,
        image.size,
        data,
        seconds,
        opened.created,
        fmt_now or opened.format,
        capacity,
    )


def download_file(
    ctx: TaskContext,
    pool: str,
    volume: str,
    dest: str | Path,
    *,
    force: bool = False,
    span: tuple[float, float] = (0.0, 100.0),
    label: str = "",
) -> Transferred:
    """Download volume `volume` of storage pool `pool` on the task's host into local file `dest` (or
    `dest/VOLUME` for a directory; an existing file only with `force`). Its holes are written as holes.
    The file is written under a temporary name beside it and renamed when complete: a failed or cancelled
    download leaves no file. Raises ActionError or TaskCancelled."""
    target = download_target(dest, volume, force)
    host = ctx.host
    label = label or f"downloading to {target}"
    ctx.check_cancelled()
    ctx.progress(span[0], f"{label}: opening the volume")
    opened: Opened = ctx.on_lane(vol_stream.open_download, host, pool, volume)
    part = target.with_name(f".{target.name}{PART_SUFFIX}")
    total = opened.length
    meter = Meter(ctx, total, label, span)
    pace = Pace()
    reach = pace.size  # how far a chunk reads: further while the volume shows only holes
    done = data = 0
    try:
        free = shutil.disk_usage(target.parent).free
        if opened.allocation > free:
            raise ActionError(
                f"{target.parent} has {format_bytes(free)} free, the volume holds "
                f"{format_bytes(opened.allocation)}"
            )
        with part.open("wb") as f:
            while done < total:
                ctx.check_cancelled()
                t = time.monotonic()
                span_now = min(max(reach, pace.size), total - done)
                pieces = ctx.on_lane(vol_stream.recv_chunk, opened.volume, done, span_now, pace.size)
                got = covered = 0
                for piece in pieces:
                    if isinstance(piece, int):
                        f.seek(piece, os.SEEK_CUR)
                        covered += piece
                    else:
                        f.write(piece)
                        got += len(piece)
                        covered += len(piece)
                if covered == 0:
                    raise ActionError(f"the volume ended at byte {done}, {total} were expected")
                pace.took(got, time.monotonic() - t)
                reach = min(2 * covered, MAX_REACH) if got == 0 else pace.size
                done += covered
                data += got
                meter.update(done)
            f.truncate(done)  # a hole at the end is a length, not bytes written
        meter.update(done, force=True)
        ctx.check_cancelled()
        os.replace(part, target)
    except BaseException as exc:
        part.unlink(missing_ok=True)
        stopped = f"download stopped at {format_bytes(done)} of {format_bytes(total)}"
        _fail(exc, stopped, "no file written")
    seconds = time.monotonic() - meter.started
    return Transferred(
        host, pool, volume, opened.path, target, done, data, seconds, False, opened.format, opened.capacity
    )


def _undo_upload(ctx: TaskContext, opened: Opened, pool: str, volume: str, source: Path, sent: int) -> str:
    """Undo what can be: the words for what the failed upload leaves."""
    where = f"{pool}/{volume}"
    if opened.created:
        why = _lane_quietly(ctx, vol_stream.delete_volume, ctx.host, pool, volume)
        if why is None:
            return f"the volume {where} it made was deleted"
        return (
            f"the volume {where} it made is left ({why}): "
            f"delete it with `vimtui vol delete {ctx.host}/{where}`"
        )
    if sent == 0:
        return f"volume {where} is unchanged"
    return (
        f"volume {where} is partly overwritten: up to its first {format_bytes(sent)} are from {source.name}"
    )


def _fail(exc: BaseException, stopped: str, left: str) -> None:
    """Raise the end of a failed transfer: what stopped it, where, and what it left."""
    if isinstance(exc, TaskCancelled):
        raise TaskCancelled(f"{stopped}; {left}") from None
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc
    raise ActionError(f"{_why(exc)} ({stopped}; {left})") from exc


def _why(exc: BaseException) -> str:
    if isinstance(exc, libvirt.libvirtError):
        return (exc.get_error_message() or str(exc)).strip()
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _lane_quietly(ctx: TaskContext, fn: Callable[..., object], *args: Any) -> str | None:
    """A clean-up call: None when it went, else why not (it never raises)."""
    try:
        ctx.on_lane(fn, *args)
    except Exception as exc:
        return _why(exc)
    return None
