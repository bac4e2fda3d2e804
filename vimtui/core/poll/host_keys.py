"""Host keys on first contact: the key a host offers (read without logging in), what the known_hosts files
say of it (each entry by file and line, hashed and [host]:port entries matched as asyncssh matches them
when it connects), and adding an accepted key to vimtui's own known_hosts.

Only an unknown key may be trusted: a host whose known_hosts entries hold another key (changed) or mark
the offered one revoked is refused, with both fingerprints and the lines to remove, and never offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncssh

from vimtui.core.config.settings import data_dir
from vimtui.core.fleet.audit import AuditError, AuditLog
from vimtui.core.fleet.inventory import HostSpec

OWN_KNOWN_HOSTS = "known_hosts"
"""vimtui's own known_hosts, in its data dir: where a trusted key goes for a host whose config names no
known_hosts file of its own (the operator's ~/.ssh/known_hosts is read, never written)."""

Verdict = Literal["known", "unknown", "changed", "revoked"]
UNKNOWN = "unknown host key"
"""How a host's status message begins to say its key may be trusted (a changed one never says it)."""
TRUST_ACTION = "host.trust_key"
"""The audit record's action for a key trusted (or refused) at the operator's request."""


class HostKeyError(Exception):
    """The host's key could not be read, or could not be trusted; the message says why."""


def own_known_hosts() -> str:
    return str(data_dir() / OWN_KNOWN_HOSTS)


def trust_file(spec: HostSpec) -> str:
    """Where a key trusted for `spec` is written: the host's own `known_hosts` when the config names one
    (it is the only file checked for it), else vimtui's own."""
    if spec.known_hosts:
        return os.path.expanduser(spec.known_hosts)
    return own_known_hosts()


def describe_key(key: asyncssh.SSHKey) -> str:
    """`ssh-ed25519 SHA256:...`: the type, and the fingerprint as `ssh-keygen -l` prints it."""
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


@dataclass(frozen=True, slots=True)
class Listed:
    """One known_hosts entry that applies to the host."""

    file: str
    line: int
    key: str
    """Type and fingerprint (describe_key)."""
    revoked: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class HostKeyCheck:
    """What a host offers and what known_hosts holds for it: the facts a trust prompt shows."""

    spec: HostSpec
    offered: asyncssh.SSHKey
    verdict: Verdict
    listed: tuple[Listed, ...]
    """The entries for this host in the files checked (for a changed key: the lines to remove)."""
    checked: tuple[str, ...]
    addresses: tuple[str, ...]
    """The host's IP addresses (an entry may name one instead of its name)."""

    @property
    def key(self) -> str:
        return describe_key(self.offered)

    @property
    def fingerprint(self) -> str:
        return str(self.offered.get_fingerprint("sha256"))

    @property
    def trust_file(self) -> str:
        return trust_file(self.spec)

    @property
    def where(self) -> str:
        user = f"{self.spec.user}@" if self.spec.user else ""
        return f"{user}{self.spec.address}:{self.spec.port}"

    def describe(self) -> str:
        """One message for the host's status, the screen and the CLI."""
        files = ", ".join(f if os.path.isfile(f) else f"{f} (missing)" for f in self.checked)
        if self.verdict == "known":
            return f"{self.where}: host key {self.key} is trusted ({self.listed[0].where})"
        if self.verdict == "unknown":
            return (
                f"{self.where}: {UNKNOWN} {self.key} (not in known_hosts: {files or 'none'}). "
                f"Compare it with the host's own (ssh-keygen -lf on its /etc/ssh key), then trust it: "
                f"t in the host's detail, or vimtui trust {self.spec.name}"
            )
        if self.verdict == "revoked":
            lines = ", ".join(e.where for e in self.listed if e.revoked)
            return f"{self.where}: host key {self.key} is REVOKED ({lines}): refused"
        held = "; ".join(f"{e.where} holds {e.key}" for e in self.listed if not e.revoked)
        remove = ", ".join(e.where for e in self.listed if not e.revoked)
        return (
            f"{self.where}: host key CHANGED (possible man-in-the-middle): the host offers {self.key}, but "
            f"{held}. Refused. If the host was reinstalled and you have checked its new key, remove "
            f"{remove} and trust it again"
        )


def port_of(spec: HostSpec) -> int | None:
    """The port as known_hosts matching takes it: None for the default (22)."""
    return None if spec.port == 22 else spec.port


def entries_for(
    files: Sequence[str], host: str, addresses: Sequence[str], port: int | None
) -> tuple[list[Listed], set[asyncssh.SSHKey], set[asyncssh.SSHKey]]:
    """The entries of `files` that apply to `host` (its name and addresses), the trusted keys and the
    revoked ones, as asyncssh decides when it connects (its whole-set match, so an entry for another port
    is left out as it leaves it out); each entry with its file and line. Raises HostKeyError for a file
    that cannot be read or parsed (the connection would refuse it too)."""
    texts: list[tuple[str, str]] = []
    for f in files:
        try:
            texts.append((f, Path(f).read_text(errors="replace")))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise HostKeyError(f"cannot read {f}: {exc.strerror or exc}") from exc
    try:
        whole = asyncssh.import_known_hosts("\n".join(t for _, t in texts))
    except ValueError as exc:
        raise HostKeyError(f"known_hosts: {exc}") from exc
    trusted: set[asyncssh.SSHKey] = set()
    revoked: set[asyncssh.SSHKey] = set()
    for addr in addresses or ("",):
        keys, _ca, gone, *_ = whole.match(host, addr, port)
        trusted.update(keys)
        revoked.update(gone)
    listed: list[Listed] = []
    for f, text in texts:
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                one = asyncssh.import_known_hosts(line)
            except ValueError:
                continue
            for addr in addresses or ("",):
                keys, _ca, gone, *_ = one.match(host, addr, port)
                bad = [k for k in gone if k in revoked]
                hit = bad or [k for k in keys if k in trusted]
                if hit:
                    listed.append(Listed(f, n, describe_key(hit[0]), revoked=bool(bad)))
                    break
    return listed, trusted, revoked


def judge(
    spec: HostSpec, files: Sequence[str], offered: asyncssh.SSHKey, addresses: Sequence[str]
) -> tuple[Verdict, list[Listed]]:
    listed, trusted, revoked = entries_for(files, spec.address, addresses, port_of(spec))
    if offered in revoked:
        return "revoked", listed
    if offered in trusted:
        return "known", [e for e in listed if e.key == describe_key(offered)]
    return ("changed" if trusted else "unknown"), listed


async def addresses_of(host: str, port: int) -> tuple[str, ...]:
    """The host's IP addresses (an entry may be keyed by one); none when it does not resolve."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return ()
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


async def offered_key(spec: HostSpec, within: float, algs: Sequence[bytes] = ()) -> asyncssh.SSHKey:
    """The key the host shows in its handshake (nothing is authenticated, nothing trusted). `algs`: the
    key types known_hosts holds for it, which is what a connection asks for first."""
    wanted: list[str] | tuple[()] = [a.decode() for a in algs] or ()
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(spec.address, spec.port, server_host_key_algs=wanted),
            within,
        )
    except (TimeoutError, OSError, asyncssh.Error, ValueError) as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise HostKeyError(f"{spec.address}:{spec.port}: cannot read the host key: {why}") from exc
    if key is None:
        raise HostKeyError(f"{spec.address}:{spec.port}: the host showed no host key")
    return key


async def check_host_key(spec: HostSpec, files: Sequence[str], within: float) -> HostKeyCheck:
    """Read the key `spec`'s host offers and judge it against `files` (the ones its connection checks)."""
    addresses = await addresses_of(spec.address, spec.port)
    _, trusted, _ = entries_for(files, spec.address, addresses, port_of(spec))
    algs = [a for k in trusted for a in k.sig_algorithms]
    offered: asyncssh.SSHKey | None = None
    if algs:  # the type a connection negotiates: compare like with like
        with contextlib.suppress(HostKeyError):
            offered = await offered_key(spec, within, algs)
    if offered is None:
        offered = await offered_key(spec, within)
    verdict, listed = judge(spec, files, offered, addresses)
    return HostKeyCheck(spec, offered, verdict, tuple(listed), tuple(files), addresses)


def known_hosts_line(spec: HostSpec, key: asyncssh.SSHKey) -> str:
    """The entry for `key`: `host type base64`, or `[host]:port type base64` off port 22. Written plain,
    not hashed: the config that names the hosts is beside it, so hashing would hide nothing."""
    name = spec.address if spec.port == 22 else f"[{spec.address}]:{spec.port}"
    algorithm, data = key.export_public_key("openssh").decode().split()[:2]
    return f"{name} {algorithm} {data}"


def trust(check: HostKeyCheck) -> Listed:
    """Append the checked key to the host's trust file (atomically, mode 0600) and return its entry.

    Judged again under a lock, from the files as they are now: a key that another entry contradicts by
    now is refused (HostKeyError), one already trusted is not written twice (its entry is returned)."""
    if check.verdict not in ("unknown", "known"):
        raise HostKeyError(check.describe())
    target = Path(os.path.realpath(check.trust_file))
    with _locked_dir(target.parent):
        verdict, listed = judge(check.spec, check.checked, check.offered, check.addresses)
        if verdict == "known":
            return listed[0]
        if verdict != "unknown":
            raise HostKeyError(
                HostKeyCheck(
                    check.spec, check.offered, verdict, tuple(listed), check.checked, check.addresses
                ).describe()
            )
        try:
            old = target.read_bytes()
        except FileNotFoundError:
            old = b""
        lead = b"" if not old or old.endswith(b"\n") else b"\n"
        line = known_hosts_line(check.spec, check.offered)
        _write_atomically(target, old + lead + line.encode() + b"\n")
    return Listed(str(target), (old + lead).count(b"\n") + 1, check.key)


def trust_recorded(check: HostKeyCheck, audit: AuditLog | None, now: float) -> Listed:
    """trust(), and an audit record of the key trusted or refused (a trust is a security decision worth
    finding later). Blocking: off the event loop. Raises HostKeyError (refused, or not recorded)."""
    args = {"key": check.key, "address": check.where}
    try:
        entry = trust(check)
    except HostKeyError as exc:
        if audit is not None:
            with contextlib.suppress(AuditError):
                audit.record(
                    time=now,
                    host=check.spec.name,
                    vm="",
                    action=TRUST_ACTION,
                    args=args,
                    outcome="refused",
                    error=str(exc),
                )
        raise
    if audit is not None:
        try:
            audit.record(
                time=now,
                host=check.spec.name,
                vm="",
                action=TRUST_ACTION,
                args={**args, "file": entry.where},
                outcome="ok",
            )
        except AuditError as exc:
            raise HostKeyError(f"trusted ({entry.where}), but {exc}") from exc
    return entry


@contextlib.contextmanager
def _locked_dir(directory: Path) -> Iterator[None]:
    """An exclusive lock on the directory (two vimtuis trusting at once must not lose an entry)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomically(target: Path, data: bytes) -> None:
    """Replace `target` with `data`: a 0600 temporary file beside it, flushed to disk, then renamed."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
