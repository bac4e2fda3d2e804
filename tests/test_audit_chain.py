"""The audit's hash chain: records written by AuditLog, then tampered with as someone with the file would
(edit, delete, insert, reorder, truncate), each found by `vimtui audit verify` at the record it touched.

Each tampering test breaks if the verdict names another line or kind, or if verify calls the file intact
(exit 0); the intact test breaks if a correct log is called broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.audit_chain import ANCHOR, head_path
from vimtui.core.fleet.audit_read import verify_local
from vimtui.core.fleet.audit_verify import Verdict

VIMTUI = str(Path(sys.executable).parent / "vimtui")
N = 8


def write_log(path: Path, n: int = N, start: float = 1000.0) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.record(time=start + i, host="h1", vm=f"vm{i}", action="vm.start", args={"i": i}, outcome="done")
    return log


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def put(path: Path, rows: list[str]) -> None:
    path.write_text("".join(r + "\n" for r in rows))


def cli_verify(data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(data / "cfg")}
    return subprocess.run(
        [VIMTUI, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "vimtui" / "audit.log"
    write_log(path)
    return path


def only(v: Verdict) -> tuple[int, str]:
    assert len(v.problems) == 1, v.problems
    return v.problems[0].line, v.problems[0].kind


def test_records_are_chained_from_the_anchor(log_path: Path) -> None:
    recs = [json.loads(x) for x in lines(log_path)]
    assert [r["seq"] for r in recs] == list(range(1, N + 1))
    assert recs[0]["prev"] == ANCHOR
    assert len({r["prev"] for r in recs}) == N
    v = verify_local(log_path)
    assert v.intact and v.records == N and v.chain_start == 1


def test_an_intact_log_verifies_with_exit_0(log_path: Path) -> None:
    done = cli_verify(log_path.parent.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intact: 8 records" in done.stdout


def test_an_edited_record_is_found_at_its_line(log_path: Path) -> None:
    rows = lines(log_path)
    rows[2] = rows[2].replace('"vm2"', '"vm9"')
    put(log_path, rows)
    assert only(verify_local(log_path)) == (3, "edited")
    done = cli_verify(log_path.parent.parent)
    assert done.returncode == 1
    assert f"{log_path}:3: edited:" in done.stdout


def test_an_edited_last_record_is_found_through_the_head(log_path: Path) -> None:
    rows = lines(log_path)
    rows[-1] = rows[-1].replace('"done"', '"failed"')
    put(log_path, rows)
    assert only(verify_local(log_path)) == (N, "edited")


def test_a_removed_record_is_found_where_it_was(log_path: Path) -> None:
    rows = lines(log_path)
    del rows[4]  # seq 5
    put(log_path, rows)
    line, kind = only(verify_local(log_path))
    assert (line, kind) == (5, "removed")  # the record that followed it now stands at line 5
    assert "seq 5 removed" in verify_local(log_path).problems[0].message


def test_records_removed_from_the_start_are_found(log_path: Path) -> None:
    put(log_path, lines(log_path)[2:])
    v = verify_local(log_path)
    assert only(v) == (1, "removed")
    assert "seq 1-2 removed from the start" in v.problems[0].message


def test_an_inserted_record_is_found_at_its_line(log_path: Path) -> None:
    rows = lines(log_path)
    forged = json.loads(rows[3])
    forged["vm"] = "forged"
    rows.insert(4, json.dumps(forged, sort_keys=True, separators=(",", ":")))  # links to seq 3, as seq 4
    put(log_path, rows)
    assert only(verify_local(log_path)) == (5, "inserted")


def test_an_inserted_unchained_record_is_found(log_path: Path) -> None:
    rows = lines(log_path)
    rows.insert(6, json.dumps({"time": 1.0, "user": "x", "client": "y", "host": "h1", "vm": "v"}))
    put(log_path, rows)
    assert only(verify_local(log_path)) == (7, "inserted")


def test_a_copied_record_is_found_as_inserted(log_path: Path) -> None:
    rows = lines(log_path)
    rows.insert(6, rows[1])
    put(log_path, rows)
    assert only(verify_local(log_path)) == (7, "inserted")


def test_reordered_records_are_found(log_path: Path) -> None:
    rows = lines(log_path)
    moved = rows.pop(1)  # seq 2 moved to after seq 6
    rows.insert(5, moved)
    put(log_path, rows)
    v = verify_local(log_path)
    assert only(v) == (6, "reordered")
    assert "seq 2" in v.problems[0].message


def test_two_swapped_records_are_found(log_path: Path) -> None:
    rows = lines(log_path)
    rows[3], rows[4] = rows[4], rows[3]
    put(log_path, rows)
    line, kind = only(verify_local(log_path))
    assert kind == "reordered" and line in (4, 5)


def test_a_truncated_log_is_found_through_its_head(log_path: Path) -> None:
    put(log_path, lines(log_path)[:5])
    v = verify_local(log_path)
    assert only(v) == (5, "truncated")
    assert "seq 6-8 missing" in v.problems[0].message
    done = cli_verify(log_path.parent.parent)
    assert done.returncode == 1 and f"{log_path}:5: truncated" in done.stdout


def test_a_log_cut_inside_its_last_record_is_truncated(log_path: Path) -> None:
    data = log_path.read_bytes()
    log_path.write_bytes(data[: len(data) - 40])
    assert only(verify_local(log_path)) == (N, "truncated")


def test_a_removed_head_is_said(log_path: Path) -> None:
    head_path(log_path).unlink()
    assert only(verify_local(log_path)) == (0, "truncated")


def test_a_crash_torn_line_is_a_note_and_the_chain_passes_over_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = write_log(path, 3)
    with path.open("ab") as f:
        f.write(b'{"time": 5, "user": "cut')  # a write a crash cut short
    log.record(time=2000.0, host="h1", vm="v", action="vm.stop", args={}, outcome="done")
    v = verify_local(path)
    assert v.intact, v.problems
    assert any("line 4 is not a record" in n for n in v.notes)
    assert json.loads(lines(path)[4])["seq"] == 4


def test_an_older_log_says_where_the_chain_starts(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    old = [{"time": float(i), "user": "u", "client": "c", "host": "h", "vm": "v", "action": "a", "args": {},
            "outcome": "done", "error": "", "task": None, "run": ""} for i in range(3)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    write_log(path, 2)
    v = verify_local(path)
    assert v.intact and v.chain_start == 4 and v.legacy == 3
    assert any("before 4 hold 3 records" in n for n in v.notes)


def test_concurrent_writers_chain_one_after_another(tmp_path: Path) -> None:
    """Two AuditLogs (two vimtuis) on one file, from threads at once: one unbroken chain."""
    path = tmp_path / "audit.log"
    a, b = AuditLog(path), AuditLog(path)

    def write(log: AuditLog, tag: str) -> None:
        for i in range(25):
            log.record(time=float(i), host="h", vm=tag, action="vm.start", args={}, outcome="done")

    threads = [threading.Thread(target=write, args=(lg, t)) for lg, t in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    v = verify_local(path)
    assert v.intact and v.records == 50, v.problems


def test_a_hosts_file_kept_locally_is_chained_across_operators(tmp_path: Path) -> None:
    """append_local (a host reached on this machine): records of two operators, a torn line between
    them, one chain with its head; and _chain, the SSH side's, continues it the same way."""
    from vimtui.core.fleet.audit_chain import read_head, write_head
    from vimtui.core.poll.host_audit import _chain, append_local

    path = tmp_path / "log" / "vimtui" / "audit.jsonl"
    append_local(path, {"time": 1.0, "user": "alice", "prev": "x", "seq": 99})  # its own link replaced
    with path.open("ab") as f:
        f.write(b'{"time": 2.0, "user": "cu')  # a write a crash cut short
    append_local(path, {"time": 3.0, "user": "bob"})
    rows = [json.loads(x) for x in lines(path) if x.startswith('{"') and x.endswith("}")]
    assert [(r["user"], r["seq"]) for r in rows] == [("alice", 1), ("bob", 2)]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    more, link = _chain(path.read_bytes().split(b"\n"), [{"time": 4.0, "user": "carol"}])
    with path.open("ab") as f:
        f.write(b"".join(more))
    assert link.seq == 3
    head = read_head(path)
    assert head is not None and head.seq == 2  # (the SSH side writes its head itself)
    write_head(path, link)
    v = verify_local(path)
    assert v.intact and v.last_seq == 3, v.problems
    assert any("line 2 is not a record" in n for n in v.notes)
