"""Opening the archive's file: its lock, its schema, a damaged file moved aside."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from vimtui.core.monitor.archive.codec import merge_blobs
from vimtui.core.monitor.archive.schema import (
    KEY_IDS,
    MAGIC,
    MIGRATE_1,
    SCHEMA,
    SCHEMA_VERSION,
    WAL_LIMIT,
    Newer,
    NotOurs,
    is_corrupt,
)
from vimtui.core.monitor.archive.state import ArchiveBase, log
from vimtui.core.private import create_private, private_dir, private_files


class ArchiveFiles(ArchiveBase):
    """The file under an archive: locked against a second writer, created, migrated, or moved aside."""

    def _start(self) -> None:
        """Take the lock file, open the database (moving a damaged one aside) and both connections."""
        try:
            private_dir(self.path.parent)
        except OSError as e:
            self._disable(f"history archive: cannot create {self.path.parent}: {e}; running without it")
            return
        if not self._take_lock():
            return
        try:
            self._connect()
        except Newer as e:
            self._disable(
                f"history archive {self.path} was written by a newer vimtui (schema {e}); running without it"
            )
        except sqlite3.DatabaseError as e:
            if is_corrupt(e):
                self._recover(e)
            else:
                self._disable(f"history archive {self.path} cannot be opened: {e}; running without it")
        except OSError as e:
            self._disable(f"history archive {self.path} cannot be opened: {e}; running without it")

    def _take_lock(self) -> bool:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            self._disable(f"history archive: cannot open {lock_path}: {e}; running without it")
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            except OSError:
                holder = "?"
            os.close(fd)
            self._disable(
                f"history archive {self.path} is in use by another vimtui (pid {holder}); "
                "running without lasting history"
            )
            return False
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        return True

    def _connect(self) -> None:
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(MAGIC))
        except FileNotFoundError:
            head = b""
        if head and head != MAGIC:  # before SQLite opens it: closing would delete a -wal beside it
            raise NotOurs("file is not a database")
        create_private(self.path)  # SQLite gives its -wal and -shm the database file's mode
        private_files(self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise Newer(version)
            if version == 0:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise NotOurs("a database without a vimtui schema")
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before the first table, or it is too late
                db.execute("PRAGMA journal_mode = WAL")
                db.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
            elif version == 1:  # in place: what it holds is kept
                db.executescript(
                    f"BEGIN IMMEDIATE; {MIGRATE_1} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                )
                log.info("history archive %s: schema 1 migrated to %s", self.path, SCHEMA_VERSION)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
            db.execute("PRAGMA secure_delete = OFF")  # pruning need not overwrite old samples with zeros
            db.create_function("vimtui_merge", 2, merge_blobs, deterministic=True)
            self._key_ids = {name: [kid, last] for kid, name, last in db.execute(KEY_IDS)}
            self._metric_ids = {name: mid for mid, name in db.execute("SELECT id, name FROM metrics")}
            self._mids = []
            db.execute("SELECT count(*) FROM (SELECT 1 FROM fine LIMIT 1)").fetchone()
            rdb = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
            rdb.execute("PRAGMA query_only = 1")
        except BaseException:
            db.close()
            raise
        self._db = db
        with self._read_lock:
            self._rdb = rdb

    def _open_read_only(self) -> None:
        if not self.path.exists():
            self._report(f"history archive {self.path} does not exist (yet)")
            return
        rdb: sqlite3.Connection | None = None
        try:
            rdb = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            version = rdb.execute("PRAGMA user_version").fetchone()[0]
            if not 1 <= version <= SCHEMA_VERSION:
                rdb.close()
                what = "a newer vimtui's" if version > SCHEMA_VERSION else "not a vimtui history archive"
                self._report(
                    f"history archive {self.path} is {what} (schema {version}, not {SCHEMA_VERSION})"
                )
                return
            self._label_column = any(row[1] == "label" for row in rdb.execute("PRAGMA table_info(keys)"))
            self._rdb = rdb
        except (sqlite3.Error, OSError) as e:
            if rdb is not None:
                with contextlib.suppress(sqlite3.Error):
                    rdb.close()
            self._report(f"history archive {self.path} cannot be read: {e}")

    def _recover(self, e: BaseException) -> None:
        """Move a damaged database aside and start a new one; off if that fails too."""
        self._close_connections(keep_lock=True)
        try:
            moved = self._move_aside()
        except OSError as err:
            self._disable(f"history archive {self.path} is damaged ({e}) and cannot be moved aside: {err}")
            return
        self._report(
            f"history archive {self.path} was damaged ({e}); moved it to {moved} and started a new one"
        )
        self._pruned = self._keys_pruned = self._scanned_coarse = -(2**62)
        with self._lock:  # the new file has no labels yet
            self._labels_dirty.update(self._labels)
        try:
            self._connect()
        except (sqlite3.Error, OSError, Newer) as err:
            self._disable(f"history archive {self.path}: a new one cannot be made either: {err}")

    def _move_aside(self) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = f"{self.path.name}.corrupt-{stamp}"
        dest = self.path.with_name(base)
        n = 1
        while dest.exists():
            dest = self.path.with_name(f"{base}.{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):  # SQLite's names, so the set opens together for a post-mortem
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{dest}{suffix}")
        return dest
