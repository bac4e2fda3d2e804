"""Which hosts are in maintenance: vimtui's own mark, kept in a small JSON file in its data dir (beside the
audit log), so it survives a restart and the screen and the CLI of the same user agree.

Kept here, not on the host: the mark says where vimtui places work, which libvirt has no notion of, and a
host must be able to go into maintenance while it does not answer (that is often why). It is written
whole to a temporary file and renamed over the old one, so a crash leaves the old marks or the new ones.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from vimtui.core.fleet.host_figures import HostFigures

MAINTENANCE_FILE = "maintenance.json"


class MaintenanceError(Exception):
    """The marks could not be written; the message says where and why."""


class Maintenance:
    def __init__(self, path: Path | None, figures: HostFigures) -> None:
        self.path = path
        """None: kept in memory only (tests, a fleet made without a data dir)."""
        self._figures = figures
        self._lock = threading.Lock()
        self.problem = ""
        """Why the file could not be read ("" when it could, or there is none)."""
        self._marks: dict[str, float] = {}

    @property
    def marks(self) -> Mapping[str, float]:
        """Host -> wall time it went into maintenance."""
        return dict(self._marks)

    def load(self) -> None:
        """Read the marks; a file that cannot be read leaves none and says why in `problem`."""
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text())
            marks = {str(h): float(v["since"]) for h, v in data.get("hosts", {}).items()}
        except FileNotFoundError:
            marks = {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            self.problem = f"cannot read the maintenance marks in {self.path}: {exc}"
            marks = {}
        self._set(marks)

    def set(self, host: str, on: bool, now: float) -> bool:
        """Put `host` in maintenance (`on`) or back in service; False when it already was. Safe from any
        thread (tasks run on the hosts' lanes). Raises MaintenanceError when the file cannot be written
        (the mark is then unchanged)."""
        with self._lock:
            marks = dict(self._marks)
            if (host in marks) == on:
                return False
            if on:
                marks[host] = now
            else:
                del marks[host]
            self._write(marks)
            self._set(marks)
            return True

    def _set(self, marks: dict[str, float]) -> None:
        self._marks = marks
        self._figures.maintenance = dict(marks)  # replaced whole: a publish reads it on the loop

    def _write(self, marks: Mapping[str, float]) -> None:
        if self.path is None:
            return
        doc = {"hosts": {h: {"since": t} for h, t in sorted(marks.items())}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise MaintenanceError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
