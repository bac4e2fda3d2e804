"""The archive's file: its SQL, its versions, and how SQLite's errors are told apart."""

from __future__ import annotations

import json
import sqlite3

SCHEMA_VERSION = 2
"""`PRAGMA user_version` of the files this code writes; a file with a higher one is left alone. 2: the
keys' labels (version 1 had none; it is migrated in place)."""
WAL_LIMIT = 4 * 2**20
MAGIC = b"SQLite format 3\x00"
CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary codes)
BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED

SCHEMA = """
CREATE TABLE keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, last INTEGER NOT NULL, label TEXT);
CREATE TABLE metrics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE fine (t INTEGER NOT NULL, key INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (t, key))
    WITHOUT ROWID;
CREATE TABLE coarse (t INTEGER NOT NULL, key INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (t, key))
    WITHOUT ROWID;
CREATE TABLE events (t REAL NOT NULL, key INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL);
CREATE INDEX events_t ON events (t);
"""

MIGRATE_1 = "ALTER TABLE keys ADD COLUMN label TEXT;"
"""Version 1 -> 2: the keys' labels."""
KEY_IDS = "SELECT id, name, last FROM keys"

UPSERT = (
    "INSERT INTO {} (t, key, data) VALUES (?, ?, ?) "
    "ON CONFLICT (t, key) DO UPDATE SET data = vimtui_merge(data, excluded.data)"
)
SERIES = (
    "WITH RECURSIVE s(t) AS (SELECT ?1 UNION ALL SELECT t + ?2 FROM s WHERE t + ?2 <= ?3) "
    "SELECT r.t, r.data FROM s CROSS JOIN {} AS r ON r.t = s.t AND r.key = ?4"
)


class NotOurs(sqlite3.DatabaseError):
    """Not a SQLite database, or not an archive (no user_version, other tables): moved aside like damage."""


class Newer(Exception):
    """Written by a newer vimtui: left alone."""


def parse_labels(text: str) -> dict[str, str] | None:
    """A key's stored labels; None for anything but a JSON object (damage, a hand edit)."""
    try:
        info = json.loads(text)
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in info.items()}


def is_corrupt(e: BaseException) -> bool:
    if isinstance(e, NotOurs):
        return True
    code = getattr(e, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in CORRUPT_CODES


def is_busy(e: BaseException) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in BUSY_CODES
