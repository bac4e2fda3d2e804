"""The graphical console of a VM: which VNC or SPICE display its live XML says it has, where that display
listens on its host, and what an operator needs to know before giving it to a viewer (a password, a
listener beyond loopback, TLS).

The display is reached through the host's own SSH connection (display_forward.py), as the libvirt socket
is: nothing but SSH has to reach the host, and a display that listens on the host's loopback alone (the
safe default, libvirt's `vnc_listen`) can be used from the operator's machine. Not a task: like the serial
console it belongs to the operator's terminal, not to the host's task lane; it is audited the same way.
"""

from __future__ import annotations

import calendar
import ipaddress
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from typing import Any

import libvirt

from vimtui.core.actions.base import ActionError
from vimtui.core.model import HostState, VmState
from vimtui.core.profiles import Profile, refusal

DISPLAY_NEEDS: Profile = "operator"
"""A display is the guest's keyboard and screen: as much as its serial console."""
DISPLAY_STATES = frozenset({"running", "blocked", "paused"})
"""A paused guest's display answers too (it shows the last frame)."""
PROTOCOLS = ("vnc", "spice")
"""What a viewer can be given: other graphics (sdl, egl-headless, dbus, rdp) have nothing to forward."""


@dataclass(frozen=True, slots=True)
class Display:
    """One graphics device of a running domain, as its live XML says (never its password itself)."""

    protocol: str
    """vnc or spice."""
    listen: str
    """The address it listens on ("127.0.0.1", "0.0.0.0", a host address); "" for a unix socket."""
    port: int | None
    """Its TCP port (None: none allocated, or a socket)."""
    tls_port: int | None = None
    """SPICE's TLS port, when it has one."""
    socket: str = ""
    """The unix socket it listens on, on the host (listen type socket)."""
    password: bool | None = None
    """Whether it asks for a password (None: not known, the secure XML could not be read)."""
    password_expired: bool = False

    @property
    def tls_only(self) -> bool:
        """SPICE reached through its TLS port alone (no plain port)."""
        return self.port is None and self.tls_port is not None and not self.socket

    @property
    def remote_port(self) -> int | None:
        """The port the forward goes to: the plain one, else SPICE's TLS one."""
        return self.port if self.port is not None else self.tls_port

    @property
    def loopback_only(self) -> bool:
        """Listens on the host's loopback (or a socket) alone: only SSH brings anyone to it."""
        return bool(self.socket) or is_loopback(self.listen)

    @property
    def target(self) -> str:
        """Where on the host the forward connects: a loopback address for a display that listens on every
        address (0.0.0.0, ::), else the address it listens on."""
        if self.listen in ("", "0.0.0.0"):
            return "127.0.0.1"
        if self.listen == "::":
            return "::1"
        return self.listen

    @property
    def where(self) -> str:
        """Where it listens, as an operator reads it: '127.0.0.1:5900', 'socket /run/...'."""
        if self.socket:
            return f"socket {self.socket}"
        host = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"{host}:{self.remote_port}"


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _port(text: str | None) -> int | None:
    try:
        port = int(text or "")
    except ValueError:
        return None
    return port if port > 0 else None


def graphics_of(xml: str, now: float | None = None) -> tuple[list[Display], list[str]]:
    """The VNC and SPICE displays of a domain's XML (first first), and the types of its other graphics
    devices. A password is seen only in the secure XML (VIR_DOMAIN_XML_SECURE); `now` judges its expiry."""
    root = ET.fromstring(xml)
    found: list[Display] = []
    others: list[str] = []
    for g in root.findall("./devices/graphics"):
        kind = g.get("type", "")
        if kind not in PROTOCOLS:
            others.append(kind or "unknown")
            continue
        listen_el = g.find("listen")
        listen_type = listen_el.get("type", "address") if listen_el is not None else "address"
        if listen_type == "none":
            others.append(f"{kind} (listens nowhere)")
            continue
        socket = g.get("socket", "")
        if listen_type == "socket" and listen_el is not None:
            socket = listen_el.get("socket", socket)
        address = g.get("listen", "")
        if listen_el is not None and listen_el.get("address"):
            address = listen_el.get("address", "")
        expired = False
        valid_to = g.get("passwdValidTo")
        if valid_to and now is not None:
            try:
                expired = calendar.timegm(time.strptime(valid_to, "%Y-%m-%dT%H:%M:%S")) < now
            except ValueError:
                expired = False
        found.append(
            Display(
                protocol=kind,
                listen="" if socket else (address or "127.0.0.1"),
                port=None if socket else _port(g.get("port")),
                tls_port=_port(g.get("tlsPort")) if kind == "spice" else None,
                socket=socket,
                password=g.get("passwd") is not None,
                password_expired=expired,
            )
        )
    return found, others


def display_refusal(vm: VmState, host: HostState | None = None) -> str | None:
    """Why the display of `vm` cannot be opened now (None: it may be, as far as the fleet state tells):
    the profile on its host, its host not answering, the VM not running, a host reached neither over SSH
    nor on this machine."""
    if host is not None and (why := refusal(host.profile, DISPLAY_NEEDS, host.name, "The display")):
        return why
    if vm.stale:
        return f"{vm.name}: its host {vm.host} is not answering; its display cannot be reached"
    if vm.state not in DISPLAY_STATES:
        return f"{vm.name} is {vm.state}: only a running VM has a display (start it first)"
    if host is not None and host.transport != "ssh" and not _local(host.uri):
        return (
            f"{host.name} is reached by its libvirt URI ({host.uri}), not over vimtui's SSH connection: "
            "there is no connection to carry its display"
        )
    return None


def _local(uri: str) -> bool:
    from vimtui.core.poll.session import is_local_uri

    return is_local_uri(uri)


def read_display(conn: Any, uuid: str) -> Display:
    """The display a viewer is given (runs on the host's lane): the first VNC or SPICE one of the running
    domain's live XML. ActionError saying why when there is none to give."""
    try:
        dom = conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise ActionError("the VM is no longer defined on its host") from exc
        raise
    name = str(dom.name())
    if not dom.isActive():
        raise ActionError(f"{name} is not running: no display to open")
    try:  # the secure XML tells whether there is a password; a read-only or restricted account has none
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
        secure = True
    except libvirt.libvirtError:
        xml = dom.XMLDesc(0)
        secure = False
    displays, others = graphics_of(xml, time.time())
    if not displays:
        if others:
            raise ActionError(
                f"{name} has no VNC or SPICE display to forward (its graphics: {', '.join(others)})"
            )
        raise ActionError(f"{name} has no graphical display (no <graphics> device in its XML)")
    shown = displays[0]
    if shown.remote_port is None and not shown.socket:
        raise ActionError(f"{name}: its {shown.protocol.upper()} display has no port allocated yet")
    if not secure:
        shown = replace(shown, password=None)
    return shown


def notes(display: Display, host: str, vm: str, local: str, offered: tuple[str, ...] = ()) -> list[str]:
    """What the operator needs to know of a display forwarded to `local` on this machine: how it is
    protected, and what a viewer needs beyond the address. `offered`: the security types the display
    offered when probed (display_probe.py), which tell a password the XML could not, or TLS or SASL."""
    if display.password is None and offered:
        display = replace(display, password="VNC password" in offered)
    guarded = bool(offered) and "none" not in offered
    out = []
    if display.password_expired:
        out.append(
            f"its password has expired: no viewer can log in until it is set again on {host} "
            f"(virsh domdisplay / update-device {vm})"
        )
    elif display.password:
        out.append(
            f"it asks for a password: the viewer prompts for it (an admin reads it on {host} with "
            f"virsh dumpxml --security-info {vm}, the graphics passwd)"
        )
    elif display.password is None:
        out.append("whether it asks for a password could not be read (the secure XML was refused)")
    elif not guarded:
        out.append(f"no password: while the forward is open, anyone on this machine can use {local}")
    if not display.loopback_only:
        out.append(
            f"it listens on {display.where} of {host}, beyond its loopback: whoever reaches {host} "
            f"on that port reaches this display too, without SSH (listen='127.0.0.1' keeps it behind SSH)"
        )
    if display.tls_only:
        out.append(
            f"SPICE over TLS only: the viewer needs {host}'s SPICE CA certificate (ca-cert.pem of "
            "spice_tls_x509_cert_dir in its qemu.conf) and its certificate subject"
        )
    return out


def url(display: Display, local_host: str, local_port: int) -> str:
    """The address as a viewer URI: vnc://127.0.0.1:5901, spice://127.0.0.1?tls-port=5902."""
    host = f"[{local_host}]" if ":" in local_host else local_host
    if display.tls_only:
        return f"spice://{host}?tls-port={local_port}"
    return f"{display.protocol}://{host}:{local_port}"
