"""The audit log: one JSON line per task or refused action, appended to `<data dir>/audit.log`.

Append-only by construction: the file is only ever opened with O_APPEND and each record is one `write`
of one whole line (atomic for appends of this size on a local file system), so records from concurrent
vimtui processes never interleave and nothing already written is rewritten.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.log"


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
    """done, failed, cancelled, refused."""
    error: str = ""
    task: int | None = None


LONG_ARG = 200


def redact(args: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as logs show them: a long text (a whole domain XML, which may hold secrets) becomes its
    size and digest, enough to tell two edits apart without keeping their content."""
    out: dict[str, Any] = {}
    for k, v in args.items():
        if isinstance(v, str) and len(v) > LONG_ARG:
            digest = hashlib.sha256(v.encode()).hexdigest()[:12]
            out[k] = f"<{len(v)} characters, sha256 {digest}>"
        else:
            out[k] = v
    return out


def local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._user = local_user()
        self._client = socket.gethostname()

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
    ) -> AuditRecord:
        rec = AuditRecord(
            time, self._user, self._client, host, vm, action, redact(args), outcome, error, task
        )
        line = (json.dumps(asdict(rec), sort_keys=True, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return rec

    def records(self) -> Iterator[AuditRecord]:
        """Oldest first; a line that is not a record (a torn write after a crash) is skipped."""
        try:
            f = self.path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        with f:
            for line in f:
                try:
                    d = json.loads(line)
                    yield AuditRecord(**d)
                except (ValueError, TypeError):
                    continue
