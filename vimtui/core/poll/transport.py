"""SSH transport: one asyncssh connection per remote host, carrying libvirt over a forwarded unix socket.

The connection honours ~/.ssh/config, the agent and an identity file, checks the host key strictly against
known_hosts (the host's own file if the config names one, else the ssh config's UserKnownHostsFile and
GlobalKnownHostsFile, else ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, as OpenSSH does, and vimtui's
own known_hosts, where `vimtui trust` writes; an unknown or changed key is refused, with its fingerprint in
the message; nothing is accepted silently: see host_keys.py), never forwards
the agent, and keeps itself alive (asyncssh sends no keepalives unless asked). libvirt then opens
`qemu+unix:///system?socket=<local>` where <local> is a private (0600) socket in a per-user runtime dir
forwarded to the host's `libvirt-sock` (or `libvirt-sock-ro` for a read-only host).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncssh

from vimtui.core.config.paths import runtime_dir as runtime_dir_of
from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.poll.host_keys import HostKeyError, check_host_key, own_known_hosts

_SOCKETS = {
    "system": ("/run/libvirt/libvirt-sock", "/run/libvirt/libvirt-sock-ro"),
}


class TransportError(Exception):
    """The host could not be reached; `kind` says how (it drives the host's state)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "unreachable" | "auth-failed" | "hostkey-mismatch"


@functools.cache
def _prefer_gcm() -> bool:
    """AES-GCM first when the CPU has AES instructions: every libvirt RPC is a few SSH packets, and in
    asyncssh GCM costs half of chacha20-poly1305's CPU per packet there (0.43 against 0.89 ms per small
    RPC on the lab). Not when an ssh config names its own `Ciphers`: the operator's choice stands."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if not re.search(r"^flags\s*:.*\baes\b", flags, re.M):
        return False
    for config in (Path.home() / ".ssh" / "config", Path("/etc/ssh/ssh_config")):
        with contextlib.suppress(OSError):
            if re.search(r"^\s*ciphers\b", config.read_text(), re.M | re.I):
                return False
    return True


USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
SSH_CONFIGS = ("~/.ssh/config", "/etc/ssh/ssh_config")
SOCKET_PATH_MAX = 100
"""Bytes a unix socket's path may take (sun_path holds 108 with its NUL; a margin for the suffix)."""


def _expand(path: str, user: str) -> str:
    home = os.path.expanduser("~")
    return os.path.expanduser(path.replace("%d", home).replace("%u", user))


def known_hosts_files(spec: HostSpec, configs: tuple[str, ...] = SSH_CONFIGS) -> list[str]:
    """The known_hosts files a host's key is checked against: the host's own (`known_hosts` in vimtui's
    config) alone, else those OpenSSH picks (the ssh config's UserKnownHostsFile and GlobalKnownHostsFile
    for this host, each defaulting as OpenSSH's do) and vimtui's own, where trusted keys are added."""
    local = _local_user()
    if spec.known_hosts:
        return [_expand(spec.known_hosts, local)]
    user: list[str] | None = None
    glob: list[str] | None = None
    paths = [p for p in (os.path.expanduser(c) for c in configs) if os.path.isfile(p)]
    if paths:
        try:
            config = asyncssh.config.SSHClientConfig.load(
                None, paths, False, False, False, local, spec.user or (), spec.address, spec.port
            )
            found = config.get("UserKnownHostsFile")
            user = list(found) if found is not None else None  # type: ignore[call-overload]
            found = config.get("GlobalKnownHostsFile")
            glob = list(found) if found is not None else None  # type: ignore[call-overload]
        except (OSError, asyncssh.Error, ValueError):
            pass  # an unreadable or broken ssh config: the defaults (ssh itself would refuse to run)
    files = [*(USER_KNOWN_HOSTS if user is None else user), *(GLOBAL_KNOWN_HOSTS if glob is None else glob)]
    return [*(_expand(f, local) for f in files if f.lower() != "none"), own_known_hosts()]


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def socket_name(runtime_dir: Path, host: str) -> str:
    """A fresh socket path for `host` in `runtime_dir`: its name when the path fits a unix socket's limit
    and the name is plain, else a digest of it (a long or odd host name must not break the tunnel); in
    /tmp/vimtui-UID when even that does not fit (a runtime directory too deep must not break it either)."""
    tag = uuid.uuid4().hex[:8]
    path = str(runtime_dir / f"{host}-{tag}.sock")
    if len(path.encode()) <= SOCKET_PATH_MAX and re.fullmatch(r"[A-Za-z0-9._-]+", host):
        return path
    digest = hashlib.sha256(host.encode()).hexdigest()[:16]
    path = str(runtime_dir / f"h-{digest}-{tag}.sock")
    if len(path.encode()) <= SOCKET_PATH_MAX:
        return path
    # the runtime directory itself is too deep (a long $XDG_RUNTIME_DIR): the short one under /tmp, made
    # and checked as the runtime directory is (ours, 0700, no symlink)
    return str(runtime_dir_of({}) / f"h-{digest}-{tag}.sock")


def remote_socket(uri: str, read_only: bool) -> str:
    """The libvirt socket on the remote host for a URI such as qemu:///system."""
    parts = urlsplit(uri)
    path = parts.path.strip("/") or "system"
    if parts.scheme != "qemu" or path not in _SOCKETS:
        raise ValueError(f"{uri}: only qemu:///system can be reached through the SSH transport")
    rw, ro = _SOCKETS[path]
    return ro if read_only else rw


def local_uri(socket_path: str, read_only: bool) -> str:
    """The libvirt URI that talks to the forwarded socket."""
    return f"qemu+unix:///system?socket={socket_path}"


@dataclass(slots=True)
class SshOptions:
    """Connection settings shared by every host (from the config's [defaults])."""

    connect_timeout: float = 10.0
    keepalive_interval: float = 5.0
    keepalive_count_max: int = 3


class SshTunnel:
    """An SSH connection to one host and the unix socket forwarded through it to libvirtd."""

    def __init__(self, spec: HostSpec, runtime_dir: Path, options: SshOptions | None = None) -> None:
        self.spec = spec
        self.options = options or SshOptions()
        self.runtime_dir = runtime_dir
        self.known_hosts_files = known_hosts_files(spec)
        self.socket_path = socket_name(runtime_dir, spec.name)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._listener: asyncssh.SSHListener | None = None

    @property
    def uri(self) -> str:
        return local_uri(self.socket_path, self.spec.read_only)

    def _connect_kwargs(self) -> dict[str, object]:
        spec, opt = self.spec, self.options
        kwargs: dict[str, object] = {
            "port": spec.port,
            "connect_timeout": opt.connect_timeout,
            "keepalive_interval": opt.keepalive_interval,
            "keepalive_count_max": opt.keepalive_count_max,
            # strict: the files OpenSSH would read, those that exist; none at all is an empty list (every
            # key unknown, refused with its fingerprint), never None (that disables the check)
            "known_hosts": self._known_hosts(),
            "agent_forwarding": False,  # whatever ForwardAgent says: the hosts are not to use our keys
        }
        if spec.user:
            kwargs["username"] = spec.user
        if spec.identity:
            kwargs["client_keys"] = [os.path.expanduser(spec.identity)]
        if _prefer_gcm():
            kwargs["encryption_algs"] = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
        return kwargs

    def _known_hosts(self) -> asyncssh.SSHKnownHosts:
        files = [f for f in self.known_hosts_files if os.path.isfile(f)]
        try:
            return asyncssh.read_known_hosts(files) if files else asyncssh.import_known_hosts("")
        except (OSError, ValueError, asyncssh.Error) as exc:
            raise TransportError(
                "hostkey-mismatch", f"{self._where()}: cannot read known_hosts: {exc}"
            ) from exc

    async def open(self) -> str:
        """Connect and forward the socket; return the local libvirt URI. Raises TransportError."""
        remote = remote_socket(self.spec.uri, self.spec.read_only)
        kwargs = self._connect_kwargs()
        try:
            self._conn = await asyncssh.connect(self.spec.address, **kwargs)  # type: ignore[arg-type]
        except asyncssh.HostKeyNotVerifiable as exc:
            raise TransportError("hostkey-mismatch", (await self._host_key_problem(str(exc)))[1]) from exc
        except (asyncssh.KeyExchangeFailed, asyncssh.ConnectionLost, ConnectionResetError) as exc:
            # perhaps known_hosts holds keys only of types the host no longer has: asyncssh asks for those
            # alone, and sshd drops a handshake it cannot serve (a changed key, shown as one)
            changed, message = await self._host_key_problem(str(exc))
            if changed:
                raise TransportError("hostkey-mismatch", message) from exc
            raise TransportError("unreachable", f"{self._where()}: {_describe(exc)}") from exc
        except asyncssh.PermissionDenied as exc:
            raise TransportError("auth-failed", f"{self._where()}: authentication failed: {exc}") from exc
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise TransportError("unreachable", f"{self._where()}: {_describe(exc)}") from exc
        # The socket is root on that host: it lives in a directory only we can enter (0700; no umask
        # games, umask is per process and other hosts connect concurrently), and is made 0600 itself.
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.runtime_dir, 0o700)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        try:
            self._listener = await self._conn.forward_local_path(self.socket_path, remote)
        except (OSError, asyncssh.Error) as exc:
            await self.close()
            raise TransportError("unreachable", f"{self._where()}: cannot forward {remote}: {exc}") from exc
        os.chmod(self.socket_path, 0o600)
        return self.uri

    async def run(self, command: str, *, within: float) -> tuple[int, str]:
        """Run a shell command on the host over this connection: its exit status and output (`vimtui
        access` asks the host what the account may reach). Raises TransportError when it cannot."""
        if self._conn is None:
            raise TransportError("unreachable", f"{self._where()}: not connected")
        try:
            done = await asyncio.wait_for(self._conn.run(command, check=False), within)
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise TransportError("unreachable", f"{self._where()}: {_describe(exc)}") from exc
        out = done.stdout if isinstance(done.stdout, str) else ""
        return (done.exit_status if done.exit_status is not None else -1), out

    @property
    def ssh(self) -> asyncssh.SSHClientConnection | None:
        """The SSH connection while it is open: other work on the host rides it (host_audit.py)."""
        return self._conn

    async def wait_closed(self) -> None:
        """Return when the SSH connection has gone (keepalive failure, host closed it, or close())."""
        if self._conn is not None:
            await self._conn.wait_closed()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.wait_closed(), 2)
            self._conn = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def _where(self) -> str:
        user = f"{self.spec.user}@" if self.spec.user else ""
        return f"{user}{self.spec.address}:{self.spec.port}"

    async def _host_key_problem(self, detail: str) -> tuple[bool, str]:
        """Whether known_hosts holds another key for the host, and the message: unknown (may be trusted)
        or changed (refused), with the fingerprints and the known_hosts lines concerned (host_keys.py)."""
        try:
            check = await check_host_key(self.spec, self.known_hosts_files, self.options.connect_timeout)
        except HostKeyError as exc:
            return False, f"{self._where()}: host key not verifiable ({detail}); {exc}"
        if check.verdict == "known":  # trusted since the attempt began: the next one connects
            return False, f"{self._where()}: host key not verifiable: {detail}"
        return check.verdict in ("changed", "revoked"), check.describe()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "connection timed out"
    text = str(exc) or type(exc).__name__
    return text
