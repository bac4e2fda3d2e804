"""Checking an audit file's hash chain (audit_chain.py): which record was edited, removed, inserted or
moved, or where the file was cut short, by line number.

A record is linked when its `prev` is the hash of the record whose seq is one less (or the chain's start),
and vouched for when the record after it in the chain (or the head) holds its hash. Links do not depend on
where records stand in the file, so each kind of tampering leaves its own trace:
- edited: a record linked but not vouched for, though its successor is there (content changed after the
  next one was written), or the head's record with another hash;
- removed: a seq missing from the run (at the start, in the middle), the next record's line named;
- inserted: a record neither linked nor vouched, or a second record at a seq a vouched one holds;
- reordered: vouched records out of seq order in the file (those outside the longest run in order);
- truncated: the head says a later seq than the file's last record.
A line that is not a record is a write a crash cut short when the chain passes over it (a note), else the
damaged record.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from vimtui.core.fleet.audit_chain import ANCHOR, Link, chained, parse_line, record_hash


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    """1-based line of the file (each record is one line); 0 for the file as a whole."""
    kind: str
    """edited, removed, inserted, reordered, truncated, damaged, unlinked."""
    message: str


@dataclass(slots=True)
class Verdict:
    name: str
    """The file, as messages name it (a path, or host:path)."""
    records: int = 0
    chain_start: int | None = None
    """Line of the chain's first record (None: no chained record)."""
    legacy: int = 0
    """Records before the chain began (written before records were chained): not verifiable."""
    last_seq: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "intact": self.intact,
            "records": self.records,
            "chain_start": self.chain_start,
            "unchained": self.legacy,
            "last_seq": self.last_seq,
            "problems": [{"line": p.line, "kind": p.kind, "message": p.message} for p in self.problems],
            "notes": self.notes,
        }


@dataclass(slots=True)
class _Rec:
    line: int
    seq: int
    prev: str
    hash: str


def _ranges(seqs: list[int]) -> str:
    if len(seqs) == 1:
        return f"seq {seqs[0]}"
    return f"seq {seqs[0]}-{seqs[-1]}"


def verify_lines(name: str, lines: list[bytes], head: Link | None) -> Verdict:
    """The verdict on a file's lines (without their newlines) and its head (None: no head file)."""
    v = Verdict(name)
    recs: list[_Rec] = []
    damaged: list[int] = []
    copies: list[Problem] = []
    seen: dict[str, _Rec] = {}
    legacy_hash: dict[str, int] = {}
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        d = parse_line(raw)
        if d is None:
            damaged.append(i)
            continue
        v.records += 1
        if not chained(d):
            if recs:
                copies.append(
                    Problem(
                        i,
                        "inserted",
                        f"line {i}: a record without a chain link after the chain began at line "
                        f"{recs[0].line}: inserted (or its link removed)",
                    )
                )
            else:
                v.legacy += 1
                legacy_hash = {record_hash(d): i}  # only the last one before the chain can start it
            continue
        r = _Rec(i, d["seq"], d["prev"], record_hash(d))
        copy = seen.get(r.hash)
        if copy is not None:
            copies.append(
                Problem(i, "inserted", f"line {i}: a copy of line {copy.line} (seq {r.seq}): inserted")
            )
            continue
        recs.append(r)
        seen[r.hash] = r
    if not recs:
        if head is not None and head.seq > 0:
            v.problems.append(
                Problem(
                    0, "truncated", f"no chained record left, but the head says seq {head.seq} was written"
                )
            )
        _damaged_notes(v, damaged, [])
        return v
    v.chain_start = recs[0].line
    if v.legacy:
        v.notes.append(
            f"lines before {recs[0].line} hold {v.legacy} records written before the chain: not verifiable"
        )
    by_hash = {r.hash: r for r in recs}
    by_seq: dict[int, list[_Rec]] = {}
    for r in recs:
        by_seq.setdefault(r.seq, []).append(r)

    def linked(r: _Rec) -> bool:
        if r.seq == 1:
            return r.prev == ANCHOR or r.prev in legacy_hash
        p = by_hash.get(r.prev)
        return p is not None and p.seq == r.seq - 1

    successors = {r.prev for r in recs}

    def vouched(r: _Rec) -> bool:
        return r.hash in successors or (head is not None and head.seq == r.seq and head.hash == r.hash)

    found: dict[int, Problem] = {p.line: p for p in copies}
    good = [r for r in recs if linked(r) or vouched(r)]
    held = {r.seq for r in recs if vouched(r) or linked(r)}
    for r in recs:
        if r in good:
            continue
        twin = [o for o in by_seq.get(r.seq, []) if o is not r and (linked(o) or vouched(o))]
        why = (
            f"a second record at seq {r.seq} (line {twin[0].line} is the chained one)"
            if twin
            else ("its link matches no record of the file")
        )
        found[r.line] = Problem(r.line, "inserted", f"line {r.line}: not part of the chain ({why}): inserted")
    # edited: linked, not vouched, though the chain goes on after it
    last_seq = max((r.seq for r in good), default=0)
    v.last_seq = last_seq
    for r in good:
        if r.line in found or vouched(r):
            continue
        twin = [o for o in by_seq.get(r.seq, []) if o is not r and vouched(o)]
        if twin:
            found[r.line] = Problem(
                r.line,
                "inserted",
                f"line {r.line}: not part of the chain (a second record at seq {r.seq}; line "
                f"{twin[0].line} is the chained one): inserted",
            )
            continue
        nxt = [o for o in by_seq.get(r.seq + 1, []) if o.line not in found]
        if nxt:
            found[r.line] = Problem(
                r.line,
                "edited",
                f"line {r.line} (seq {r.seq}): changed after it was written: line {nxt[0].line} "
                f"(seq {r.seq + 1}) holds another hash for it",
            )
        elif head is not None and head.seq == r.seq:
            found[r.line] = Problem(
                r.line,
                "edited",
                f"line {r.line} (seq {r.seq}): changed after it was written (the head holds another hash)",
            )
    # removed: seqs missing from the run
    present = sorted(held)
    top = max(last_seq, head.seq if head is not None else 0)
    missing = [s for s in range(1, top + 1) if s not in held]
    for run in _runs(missing):
        after = [r for r in good if r.seq == run[-1] + 1]
        if after:
            at = after[0].line
            where = "from the start of the chain" if run[0] == 1 else f"before line {at}"
            gap = [ln for ln in damaged if _between(ln, recs, run)]
            if gap:
                found[gap[0]] = Problem(
                    gap[0], "damaged", f"line {gap[0]}: {_ranges(run)} damaged (no longer a record)"
                )
            else:
                found[at] = Problem(at, "removed", f"{_ranges(run)} removed {where} (line {at} follows them)")
        else:
            assert head is not None
            end = max((r.line for r in good), default=0)
            cut = [ln for ln in damaged if ln > end]
            at = cut[0] if cut else end
            how = f"cut short inside seq {run[0]}" if cut else f"ends after seq {run[0] - 1}"
            if cut:
                damaged.remove(at)
            found.setdefault(
                at,
                Problem(
                    at,
                    "truncated",
                    f"line {at}: truncated: the file {how}, the head says seq {head.seq} was written "
                    f"({_ranges(run)} missing)",
                ),
            )
    # reordered: vouched records outside the longest run in seq order
    ordered = [r for r in good if r.line not in found]
    keep = _longest_increasing(ordered)
    for r in ordered:
        if r.line not in keep:
            found[r.line] = Problem(
                r.line,
                "reordered",
                f"line {r.line} (seq {r.seq}): out of order: it was written "
                + _neighbour_text(r, ordered, keep),
            )
    first = by_seq.get(1, [])
    if v.legacy and first and first[0].prev not in legacy_hash and first[0].line not in found:
        before = max(legacy_hash.values(), default=0)
        found[before] = Problem(
            before, "edited", f"line {before}: the record before the chain's first was changed or removed"
        )
    if head is None:
        found[0] = Problem(
            0,
            "truncated",
            "the head file is missing: records removed from the end of the chain could not be told",
        )
    _damaged_notes(v, [ln for ln in damaged if ln not in found], present)
    v.problems.extend(found[k] for k in sorted(found))
    return v


def _between(line: int, recs: list[_Rec], run: list[int]) -> bool:
    """Whether a damaged `line` stands where the missing seqs `run` would (between their neighbours)."""
    before = [r.line for r in recs if r.seq == run[0] - 1]
    after = [r.line for r in recs if r.seq == run[-1] + 1]
    lo = before[0] if before else 0
    hi = after[0] if after else 1 << 62
    return lo < line < hi


def _damaged_notes(v: Verdict, damaged: list[int], _present: list[int]) -> None:
    for ln in damaged:
        v.notes.append(f"line {ln} is not a record (a write a crash cut short): the chain passes over it")


def _runs(values: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for s in values:
        if runs and runs[-1][-1] == s - 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


def _longest_increasing(recs: list[_Rec]) -> set[int]:
    """Lines of the longest run of records in seq order (patience sort)."""
    tails: list[int] = []
    tail_idx: list[int] = []
    parent = [-1] * len(recs)
    for i, r in enumerate(recs):
        k = bisect.bisect_left(tails, r.seq)
        if k == len(tails):
            tails.append(r.seq)
            tail_idx.append(i)
        else:
            tails[k] = r.seq
            tail_idx[k] = i
        parent[i] = tail_idx[k - 1] if k else -1
    out: set[int] = set()
    i = tail_idx[-1] if tail_idx else -1
    while i >= 0:
        out.add(recs[i].line)
        i = parent[i]
    return out


def _neighbour_text(r: _Rec, ordered: list[_Rec], keep: set[int]) -> str:
    before = [o for o in ordered if o.line in keep and o.seq < r.seq]
    if before:
        b = max(before, key=lambda o: o.seq)
        return f"after line {b.line} (seq {b.seq})"
    after = [o for o in ordered if o.line in keep and o.seq > r.seq]
    a = min(after, key=lambda o: o.seq)
    return f"before line {a.line} (seq {a.seq})"


def verify_text(name: str, data: bytes, head: Link | None) -> Verdict:
    return verify_lines(name, data.split(b"\n"), head)
