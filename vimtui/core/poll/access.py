"""What the account vimtui uses can really do on a host (`vimtui access`): a profile is a safety net for the
operator's own hands, the boundary is what the SSH account may reach there.

Asked of the host itself: libvirt is opened through each of its sockets (the read-only one, then the
read-write one, each forwarded over SSH as the screen's connection is), the sockets' modes are read, the
daemon's config says whether an access control driver (polkit ACLs) is in use, and where it is, polkit is
asked (pkcheck) for the permissions each profile needs."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import libvirt

from vimtui.core.fleet.inventory import HostSpec
from vimtui.core.poll.transport import SshOptions, SshTunnel, TransportError, remote_socket
from vimtui.core.profiles import PROFILES, Profile

ACL_PERMISSIONS: dict[Profile, tuple[str, ...]] = {
    "viewer": ("domain.getattr", "domain.read"),
    "operator": (
        "domain.start",
        "domain.stop",
        "domain.init-control",
        "domain.save",
        "domain.snapshot",
        "domain.migrate",
        "domain.open-device",
    ),
    "admin": ("domain.write", "domain.delete", "storage-vol.create", "network.write"),
}
"""libvirt ACL permissions (polkit action org.libvirt.api.PERM) each profile's actions need, beyond the
lesser profiles'."""

CONFIG_FILES = ("/etc/libvirt/libvirtd.conf", "/etc/libvirt/virtproxyd.conf")
"""Where the daemon that owns /run/libvirt/libvirt-sock is configured (monolithic, or modular's proxy)."""
CONFIG_KEYS = ("access_drivers", "auth_unix_ro", "auth_unix_rw", "unix_sock_group")

_SCRIPT = r"""
printf 'user %s\n' "$(id -un)"; printf 'groups %s\n' "$(id -Gn)"
for s in {sockets}; do
  if [ -e "$s" ]; then printf 'sock %s %s\n' "$s" "$(stat -c '%A %U:%G' "$s")"
  else printf 'sock %s missing\n' "$s"; fi
done
for f in {files}; do
  if [ -r "$f" ]; then
    sed -n "s/^[[:space:]]*\({keys}\)[[:space:]]*=[[:space:]]*\(.*\)$/\1 \2/p" "$f" |
      while read -r line; do printf 'conf %s %s\n' "$f" "$line"; done
  elif [ -e "$f" ]; then printf 'unreadable %s\n' "$f"; fi
done
"""
_PKCHECK = r"""
if ! command -v pkcheck >/dev/null; then echo 'acl - no-pkcheck'; exit 0; fi
for p in {perms}; do
  pkcheck --action-id "org.libvirt.api.$p" --process $$ --detail connect_driver QEMU >/dev/null 2>&1
  printf 'acl %s %s\n' "$p" "$?"
done
"""
_PKCHECK_STATUS = {"0": "yes", "1": "no", "2": "needs authentication", "3": "dismissed"}
TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class SocketAccess:
    path: str
    read_only: bool
    mode: str = ""
    """'srwxrwxrwx root:root', 'missing', or '' when not read."""
    opens: bool = False
    """libvirt opened a connection through it, as the account."""
    detail: str = ""
    """The libvirt version it answered with, or why it did not."""


@dataclass(frozen=True, slots=True)
class HostAccess:
    host: str
    profile: Profile
    """The profile the config gives it."""
    account: str = ""
    groups: str = ""
    error: str = ""
    """Why the host could not be asked at all (unreachable, authentication, host key)."""
    sockets: tuple[SocketAccess, ...] = ()
    config: tuple[tuple[str, str, str], ...] = ()
    """(file, key, value) of the daemon's config lines that decide access."""
    unreadable: tuple[str, ...] = ()
    acl: dict[str, str] = field(default_factory=dict)
    """permission -> polkit's answer, when an access driver is in use ('-': no pkcheck on the host)."""

    @property
    def acl_driver(self) -> str:
        """'polkit' (or another driver) when the daemon checks each call; '' when none is configured;
        'unknown' when its config could not be read."""
        for _file, key, value in self.config:
            if key == "access_drivers" and (names := re.findall(r'"([^"]+)"', value)):
                return ", ".join(names)
        return "unknown" if self.unreadable and not self.config else ""

    def reaches(self, read_only: bool) -> bool:
        return any(s.opens for s in self.sockets if s.read_only == read_only)

    @property
    def can(self) -> Profile | None:
        """The most this account can do there (None: not even look)."""
        if not self.reaches(True) and not self.reaches(False):
            return None
        if not self.reaches(False):
            return "viewer"
        if not self.acl_driver or "-" in self.acl:
            return "admin"
        best: Profile = "viewer"
        for p in PROFILES:
            if all(
                self.acl.get(perm) == "yes"
                for q in PROFILES[: PROFILES.index(p) + 1]
                for perm in ACL_PERMISSIONS[q]
            ):
                best = p
        return best

    @property
    def enough(self) -> bool:
        """Whether the account can do what the host's profile allows."""
        can = self.can
        return can is not None and PROFILES.index(can) >= PROFILES.index(self.profile)

    def lines(self) -> list[str]:
        if self.error:
            return [f"{self.host}: cannot be asked: {self.error}"]
        who = f"account {self.account}" + (f" (groups: {self.groups})" if self.groups else "")
        out = [f"{self.host}: {who}" if self.account else f"{self.host}:"]
        for s in self.sockets:
            kind = "read-only socket " if s.read_only else "read-write socket"
            mode = f"  [{s.mode}]" if s.mode else ""
            how = f"opens: {s.detail}" if s.opens else f"does not open: {s.detail}"
            out.append(f"  {kind} {s.path}{mode}  {how}")
        for file, key, value in self.config:
            out.append(f"  {key} = {value}  ({file})")
        out += [f"  {f}: not readable by this account" for f in self.unreadable]
        driver = self.acl_driver
        if driver in ("", "unknown"):
            what = "none configured" if driver == "" else "unknown (the daemon's config is not readable)"
            out.append(f"  ACLs: {what}: whoever opens the read-write socket may do everything")
        elif "-" in self.acl:
            out.append(f"  ACLs: {driver}; pkcheck is not on the host, so what they allow is not known")
        else:
            answers = ", ".join(f"{perm} {answer}" for perm, answer in self.acl.items())
            out.append(f"  ACLs: {driver}: {answers}")
        can = self.can or "nothing"
        verdict = "enough" if self.enough else "NOT enough"
        out.append(f"  can: {can}; the config's profile here: {self.profile} ({verdict})")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "profile": self.profile,
            "account": self.account,
            "groups": self.groups.split(),
            "error": self.error or None,
            "sockets": [
                {
                    "path": s.path,
                    "read_only": s.read_only,
                    "mode": s.mode,
                    "opens": s.opens,
                    "detail": s.detail,
                }
                for s in self.sockets
            ],
            "config": [{"file": f, "key": k, "value": v} for f, k, v in self.config],
            "unreadable": list(self.unreadable),
            "acl_driver": self.acl_driver or None,
            "acl": self.acl,
            "can": self.can,
            "enough": self.enough,
        }


def _open(uri: str, read_only: bool) -> str:
    """Open libvirt as the account would and say what answered (blocking: a thread of its own)."""
    conn = libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
    try:
        v = conn.getLibVersion()
        return f"libvirt {v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


async def _try_open(uri: str, read_only: bool) -> tuple[bool, str]:
    try:
        return True, await asyncio.to_thread(_open, uri, read_only)
    except libvirt.libvirtError as exc:
        return False, (exc.get_error_message() or str(exc)).strip()


def _parse(text: str, into: dict[str, Any]) -> None:
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if word == "user":
            into["account"] = rest.strip()
        elif word == "groups":
            into["groups"] = rest.strip()
        elif word == "sock":
            path, _, mode = rest.partition(" ")
            into.setdefault("modes", {})[path] = mode.strip()
        elif word == "conf":
            file, _, kv = rest.partition(" ")
            key, _, value = kv.partition(" ")
            into.setdefault("config", []).append((file, key, value.strip()))
        elif word == "unreadable":
            into.setdefault("unreadable", []).append(rest.strip())
        elif word == "acl":
            perm, _, status = rest.partition(" ")
            into.setdefault("acl", {})[perm] = (
                "-" if perm == "-" else _PKCHECK_STATUS.get(status, f"error {status}")
            )


def _script() -> str:
    ro, rw = remote_socket("qemu:///system", True), remote_socket("qemu:///system", False)
    return _SCRIPT.format(sockets=f"{ro} {rw}", files=" ".join(CONFIG_FILES), keys="\\|".join(CONFIG_KEYS))


async def ask_ssh(spec: HostSpec, runtime_dir: Path, options: SshOptions) -> HostAccess:
    """Ask a host reached over SSH: its account, sockets and ACLs, and libvirt through each socket."""
    facts: dict[str, Any] = {}
    tunnel = SshTunnel(replace(spec, profile="viewer"), runtime_dir, options)
    try:
        ro_uri = await tunnel.open()
        _status, text = await tunnel.run(_script(), within=TIMEOUT)
        _parse(text, facts)
        if any(k == "access_drivers" and "polkit" in v for _f, k, v in facts.get("config", [])):
            perms = " ".join(p for group in ACL_PERMISSIONS.values() for p in group)
            _status, text = await tunnel.run(_PKCHECK.format(perms=perms), within=TIMEOUT)
            _parse(text, facts)
        ro = await _try_open(ro_uri, True)
    except TransportError as exc:
        return HostAccess(spec.name, spec.profile, error=str(exc))
    finally:
        await tunnel.close()
    rw_tunnel = SshTunnel(replace(spec, profile="admin"), runtime_dir, options)
    try:
        rw = await _try_open(await rw_tunnel.open(), False)
    except TransportError as exc:
        rw = (False, str(exc))
    finally:
        await rw_tunnel.close()
    return _built(spec, facts, ro, rw)


async def ask_direct(spec: HostSpec) -> HostAccess:
    """Ask a host opened directly (a local URI): libvirt read-only and read-write as this user, and for
    the system instance the same facts as over SSH, from this machine."""
    facts: dict[str, Any] = {}
    if spec.uri.rstrip("/") == "qemu:///system":
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", _script(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        _parse(out.decode(errors="replace"), facts)
    ro = await _try_open(spec.uri, True)
    rw = await _try_open(spec.uri, False)
    return _built(spec, facts, ro, rw)


def _built(spec: HostSpec, facts: dict[str, Any], ro: tuple[bool, str], rw: tuple[bool, str]) -> HostAccess:
    modes: dict[str, str] = facts.get("modes", {})
    sockets = []
    for read_only, (opens, detail) in ((True, ro), (False, rw)):
        try:
            path = remote_socket(spec.uri, read_only) if spec.transport == "ssh" else spec.uri
        except ValueError:
            path = spec.uri
        if spec.transport == "direct" and spec.uri.rstrip("/") == "qemu:///system":
            path = remote_socket("qemu:///system", read_only)
        sockets.append(SocketAccess(path, read_only, modes.get(path, ""), opens, detail))
    return HostAccess(
        spec.name,
        spec.profile,
        account=facts.get("account", ""),
        groups=facts.get("groups", ""),
        sockets=tuple(sockets),
        config=tuple(facts.get("config", ())),
        unreadable=tuple(facts.get("unreadable", ())),
        acl=facts.get("acl", {}),
    )


async def ask(spec: HostSpec, runtime_dir: Path, options: SshOptions) -> HostAccess:
    if spec.transport == "ssh":
        return await ask_ssh(spec, runtime_dir, options)
    return await ask_direct(spec)
