"""What vimtui keeps on disk is private (data dir 0700; audit log, history database and its WAL and SHM
0600, whatever the umask), and a write error of the history that passes does not turn it off for the run:
it keeps the samples and writes them once the file system takes them again."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vimtui.core.config.settings import Config
from vimtui.core.fleet.startup import make_fleet
from vimtui.core.monitor.archive import Archive

T0 = 1_700_000_000.0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def test_the_data_dir_and_its_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "share"), "XDG_RUNTIME_DIR": str(tmp_path)}
    with umask(0o022):
        fleet = make_fleet(Config(), [], env=env, archive=True)
        assert fleet.archive is not None and fleet.tasks.audit is not None
        fleet.archive.add("h/vm", T0, {"cpu": 1.0})
        fleet.archive.flush()
        fleet.tasks.audit.record(time=T0, host="h", vm="vm", action="start", args={}, outcome="started")
        data = tmp_path / "share" / "vimtui"
        db = data / "history.sqlite"
        wal, shm = db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")
        assert wal.exists() and shm.exists()  # (WAL mode: both there while it is open)
        assert mode(data) == 0o700
        assert {p.name: mode(p) for p in (db, wal, shm, data / "audit.log")} == {
            p.name: 0o600 for p in (db, wal, shm, data / "audit.log")
        }
        fleet.archive.close()


def test_files_an_older_vimtui_left_readable_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "share" / "vimtui"
    data.mkdir(parents=True, mode=0o755)
    os.chmod(data, 0o755)
    for name in ("history.sqlite", "audit.log"):
        (data / name).touch()
        os.chmod(data / name, 0o644)
    env = {"XDG_DATA_HOME": str(tmp_path / "share"), "XDG_RUNTIME_DIR": str(tmp_path)}
    fleet = make_fleet(Config(), [], env=env, archive=True)
    assert fleet.archive is not None and fleet.tasks.audit is not None
    fleet.archive.flush()
    fleet.tasks.audit.record(time=T0, host="h", vm="vm", action="start", args={}, outcome="started")
    fleet.archive.close()
    assert mode(data) == 0o700
    assert mode(data / "history.sqlite") == 0o600 and mode(data / "audit.log") == 0o600


def fine_rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM fine").fetchone()[0])


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_file_system_does_not_turn_the_history_off_it_retries(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(fs)], check=True)
    problems: list[str] = []
    archive = Archive(fs / "history.sqlite", on_problem=problems.append)
    filler = fs / "filler"
    try:
        archive.add("h/vm", T0, {"cpu": 1.0})
        archive.flush()
        written = fine_rows(fs / "history.sqlite")
        assert written >= 1
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # the file system fills up (a log, a core dump ...)
            while os.write(fd, b"x" * 65536):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        for i in range(1, 400):  # enough new buckets that the pass needs new pages
            archive.add(f"h/vm{i}", T0 + 10 * i, {"cpu": float(i), "mem": 2.0, "net_rx": 3.0})
        archive.flush()
        assert any("writing failed" in p and "retrying" in p for p in problems), problems
        assert archive.stats().enabled, problems  # still on
        filler.unlink()  # space again
        archive.flush()
        assert fine_rows(fs / "history.sqlite") > written + 300  # what it kept went in
        assert problems[-1].endswith("writing again"), problems
    finally:
        archive.close()
        subprocess.run(["umount", str(fs)], check=True)
