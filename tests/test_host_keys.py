"""Trust on first contact, from the known_hosts side: which entries apply to a host (plain, hashed,
[host]:port, patterns, revoked) and at which file and line, the verdict on an offered key, and how a trusted
key is written (only an unknown one; atomically, 0600, the file kept as it was; judged again at write time).
The keys are real (asyncssh makes them); the lab tests read them from real hosts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

import asyncssh
import pytest

from vimtui.core.fleet.audit import AuditLog
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.poll.host_keys import (
    HostKeyCheck,
    HostKeyError,
    Verdict,
    describe_key,
    entries_for,
    judge,
    known_hosts_line,
    own_known_hosts,
    trust,
    trust_file,
    trust_recorded,
)

ADDR = "10.9.0.11"


def new_key(alg: str = "ssh-ed25519") -> asyncssh.SSHKey:
    return asyncssh.import_public_key(asyncssh.generate_private_key(alg).export_public_key())


def entry(pattern: str, key: asyncssh.SSHKey) -> str:
    algorithm, data = key.export_public_key().decode().split()[:2]
    return f"{pattern} {algorithm} {data}"


def hashed(host: str) -> str:
    """A HashKnownHosts entry's host field, as ssh-keygen -H writes it."""
    salt = os.urandom(20)
    digest = hmac.new(salt, host.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def spec(kh: Path | None, port: int = 22) -> HostSpec:
    return HostSpec(
        "kvm01", "ssh", "qemu:///system", address=ADDR, port=port, known_hosts=str(kh) if kh else None
    )


def checked(s: HostSpec, files: list[str], key: asyncssh.SSHKey) -> HostKeyCheck:
    verdict, listed = judge(s, files, key, (ADDR,))
    return HostKeyCheck(s, key, verdict, tuple(listed), tuple(files), (ADDR,))


def test_entries_are_found_by_file_and_line_in_every_form(tmp_path: Path) -> None:
    a, b, c, other = new_key(), new_key(), new_key("ecdsa-sha2-nistp256"), new_key()
    one = tmp_path / "one"
    one.write_text(
        "# comment\n\n"
        + entry("10.9.0.99", other)  # another host: not listed
        + "\n"
        + entry(hashed(ADDR), a)  # line 4: hashed
        + "\n"
    )
    two = tmp_path / "two"
    two.write_text(entry("10.9.0.*", b) + "\n" + entry(f"kvm01,{ADDR}", c) + "\n")  # pattern; a list
    listed, trusted, revoked = entries_for(
        [str(one), str(two), str(tmp_path / "missing")], ADDR, [ADDR], None
    )
    assert [(e.file, e.line, e.key) for e in listed] == [
        (str(one), 4, describe_key(a)),
        (str(two), 1, describe_key(b)),
        (str(two), 2, describe_key(c)),
    ]
    assert trusted == {a, b, c} and not revoked


def test_a_port_entry_applies_to_that_port_only_as_a_connection_decides(tmp_path: Path) -> None:
    on_port, plain = new_key(), new_key()
    kh = tmp_path / "kh"
    kh.write_text(entry(f"[{ADDR}]:2222", on_port) + "\n" + entry(ADDR, plain) + "\n")
    listed, trusted, _ = entries_for([str(kh)], ADDR, [ADDR], 2222)
    assert trusted == {on_port} and [e.line for e in listed] == [1]  # the plain one is not consulted
    listed, trusted, _ = entries_for([str(kh)], ADDR, [ADDR], None)
    assert trusted == {plain} and [e.line for e in listed] == [2]


@pytest.mark.parametrize(
    ("lines", "verdict"),
    [
        ([], "unknown"),
        (["same"], "known"),
        (["other"], "changed"),
        (["other", "same"], "known"),  # as asyncssh: any key listed for the host is accepted
        (["@revoked same"], "revoked"),
    ],
)
def test_the_verdict_on_an_offered_key(tmp_path: Path, lines: list[str], verdict: Verdict) -> None:
    offered, other = new_key(), new_key()
    kh = tmp_path / "kh"
    text = [
        entry(("@revoked " if "@revoked" in line else "") + ADDR, offered if "same" in line else other)
        for line in lines
    ]
    kh.write_text("".join(t + "\n" for t in text))
    assert judge(spec(kh), [str(kh)], offered, [ADDR])[0] == verdict


def test_trusting_an_unknown_key_appends_one_line_atomically_and_privately(tmp_path: Path) -> None:
    key = new_key()
    kh = tmp_path / "kh"
    kh.write_text(
        "# mine\n10.9.0.99 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKkCUg0sT+faKtICK61N1Cl25I4mA2m/K+oTKTJhPmjM"
    )
    kh.chmod(0o644)
    before = kh.read_text()
    c = checked(spec(kh), [str(kh)], key)
    assert c.verdict == "unknown"
    got = trust(c)
    assert (got.file, got.line) == (str(kh), 3)
    assert kh.read_text() == before + "\n" + known_hosts_line(spec(kh), key) + "\n"  # a newline put back
    assert stat.S_IMODE(kh.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["kh"]  # no temporary file left behind
    assert judge(spec(kh), [str(kh)], key, [ADDR])[0] == "known"
    assert trust(checked(spec(kh), [str(kh)], key)) == got  # already there: not written twice
    assert kh.read_text().count(key.export_public_key().decode().split()[1]) == 1


def test_off_port_22_the_entry_names_host_and_port(tmp_path: Path) -> None:
    key = new_key()
    kh = tmp_path / "kh"
    s = spec(kh, port=2222)
    trust(checked(s, [str(kh)], key))
    assert kh.read_text().startswith(f"[{ADDR}]:2222 ssh-ed25519 ")
    assert judge(s, [str(kh)], key, [ADDR])[0] == "known"
    assert judge(spec(kh), [str(kh)], key, [ADDR])[0] == "unknown"  # port 22 is another service


def test_a_changed_or_revoked_key_is_never_written(tmp_path: Path) -> None:
    offered = new_key()
    kh = tmp_path / "kh"
    kh.write_text(entry(ADDR, new_key()) + "\n@revoked * " + " ".join(entry("x", offered).split()[1:]) + "\n")
    before = kh.read_bytes()
    c = checked(spec(kh), [str(kh)], offered)
    assert c.verdict == "revoked"
    with pytest.raises(HostKeyError, match="REVOKED"):
        trust(c)
    kh.write_text(entry(ADDR, new_key()) + "\n")
    before = kh.read_bytes()
    c = checked(spec(kh), [str(kh)], offered)
    assert c.verdict == "changed"
    message = c.describe()
    assert describe_key(offered) in message and f"{kh}:1 holds " in message and f"remove {kh}:1" in message
    with pytest.raises(HostKeyError, match="CHANGED"):
        trust(c)
    assert kh.read_bytes() == before


def test_a_key_contradicted_after_it_was_shown_is_refused_when_written(tmp_path: Path) -> None:
    offered = new_key()
    kh = tmp_path / "kh"
    c = checked(spec(kh), [str(kh)], offered)
    assert c.verdict == "unknown"
    kh.write_text(entry(hashed(ADDR), new_key()) + "\n")  # another key for the host arrives meanwhile
    before = kh.read_bytes()
    with pytest.raises(HostKeyError, match=f"CHANGED.*{kh}:1 holds"):
        trust(c)
    assert kh.read_bytes() == before


def test_without_a_file_of_its_own_a_host_trusts_into_vimtuis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    s = spec(None)
    assert trust_file(s) == own_known_hosts() == str(tmp_path / "data" / "vimtui" / "known_hosts")
    key = new_key()
    got = trust(checked(s, [own_known_hosts()], key))
    assert (got.file, got.line) == (own_known_hosts(), 1)
    assert stat.S_IMODE((tmp_path / "data" / "vimtui").stat().st_mode) == 0o700


def test_a_trust_and_a_refusal_are_both_in_the_audit_log(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log")
    kh = tmp_path / "kh"
    key, other = new_key(), new_key()
    got = trust_recorded(checked(spec(kh), [str(kh)], key), audit, 1000.0)
    refused = checked(spec(kh, port=2222), [str(kh)], other)  # (port 2222 falls back to the port-22 entry)
    assert refused.verdict == "changed"
    with pytest.raises(HostKeyError):
        trust_recorded(refused, audit, 1001.0)
    [ok, no] = list(audit.records())
    assert (ok.host, ok.action, ok.outcome, ok.args["key"], ok.args["file"]) == (
        "kvm01",
        "host.trust_key",
        "ok",
        describe_key(key),
        got.where,
    )
    assert (no.outcome, no.args["key"]) == ("refused", describe_key(other)) and "CHANGED" in no.error
