"""cloud-init NoCloud seeds: an ISO 9660 image labelled "cidata" holding `meta-data` and `user-data`, built in
memory (pycdlib, no genisoimage on any host), and read back to show what a seed holds.

The files carry Joliet and Rock Ridge names, so a guest that mounts the ISO sees `meta-data` and `user-data`
with their case and dash (plain ISO 9660 names are upper case 8.3).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterable, Sequence

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

VOLUME_ID = "cidata"
SUDO_ALL = "ALL=(ALL) NOPASSWD:ALL"

# ISO 9660 names (level 1: 8.3, upper case) beside the Rock Ridge / Joliet names the guest sees
_FILES = (("meta-data", "/METADATA.;1"), ("user-data", "/USERDATA.;1"))

_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_KEY_TYPES = ("ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_:~=-]{0,127}$")


def check_packages(packages: Iterable[str]) -> list[str]:
    """Package names for the guest's package manager (a version pinned as `name=1.2` allowed); anything
    else (spaces, shell characters) is a ValueError."""
    out = []
    for name in packages:
        if not isinstance(name, str) or not _PACKAGE.match(name):
            raise ValueError(f"{name!r} is not a package name (letters, digits and . + _ : ~ = -)")
        out.append(name)
    return out


def check_hostname(hostname: str) -> str:
    """`hostname` if it is a valid host name (RFC 1123 labels, dots between them), else ValueError."""
    labels = hostname.split(".")
    if not hostname or len(hostname) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{hostname!r} is not a valid host name (letters, digits and '-', dot-separated labels "
            "of at most 63 characters, not starting or ending with '-')"
        )
    return hostname


def check_user(user: str) -> str:
    if not _USER.match(user) or user == "root":
        raise ValueError(
            f"{user!r} is not a valid user name for the guest (lower case letters, digits, '_' and '-', "
            "starting with a letter or '_', at most 32; not root)"
        )
    return user


def ssh_key_lines(keys: Iterable[str]) -> list[str]:
    """Public keys, one per entry; an entry may hold several lines (an authorized_keys file): blank lines
    and # comments are skipped. A line that is not an OpenSSH public key is a ValueError."""
    out: list[str] = []
    for entry in keys:
        for line in entry.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "PRIVATE KEY" in line:
                raise ValueError("that is a private key: give the public one (.pub)")
            fields = line.split()
            if len(fields) < 2 or not fields[0].startswith(_KEY_TYPES):
                shown = line if len(line) <= 40 else line[:37] + "..."
                raise ValueError(
                    f"not an SSH public key: {shown!r} (expected 'ssh-ed25519 AAAA... comment', "
                    "as in a .pub file)"
                )
            out.append(line)
    return out


def check_user_data(user_data: str) -> str:
    first = user_data.split("\n", 1)[0].rstrip()
    if not (first.startswith("#cloud-config") or first.startswith("#!")):  # as cloud-init tells them
        shown = first if len(first) <= 40 else first[:37] + "..."
        raise ValueError(
            f"user-data must start with '#cloud-config' or '#!' (a script); its first line is {shown!r}"
        )
    return user_data


def _q(text: str) -> str:
    """A YAML scalar: JSON's double-quoted string is valid YAML."""
    return json.dumps(text, ensure_ascii=False)


def meta_data(hostname: str, instance_id: str) -> str:
    return f"instance-id: {_q(instance_id)}\nlocal-hostname: {_q(hostname)}\n"


def cloud_config(
    hostname: str, user: str | None, ssh_keys: Sequence[str], packages: Sequence[str] = ()
) -> str:
    """A #cloud-config that sets the host name and adds `user` (sudo without password, no password login)
    with the keys; without a user, the keys go to the image's default user. `packages` are installed at
    first boot."""
    lines = [
        "#cloud-config",
        "# written by vimtui",
        f"hostname: {_q(hostname.split('.')[0])}",
    ]
    if "." in hostname:
        lines.append(f"fqdn: {_q(hostname)}")
    lines.append("preserve_hostname: false")
    if user:
        lines += [
            "users:",
            f"  - name: {_q(user)}",
            f"    sudo: {_q(SUDO_ALL)}",
            '    shell: "/bin/bash"',
            "    lock_passwd: true",
        ]
        if ssh_keys:
            lines.append("    ssh_authorized_keys:")
            lines += [f"      - {_q(k)}" for k in ssh_keys]
    elif ssh_keys:
        lines.append("ssh_authorized_keys:")
        lines += [f"  - {_q(k)}" for k in ssh_keys]
    if packages:
        lines += ["package_update: true", "packages:"] + [f"  - {_q(p)}" for p in packages]
    return "\n".join(lines) + "\n"


def build_seed(
    *,
    hostname: str,
    instance_id: str | None = None,
    user: str | None = None,
    ssh_keys: Sequence[str] = (),
    user_data: str | None = None,
    packages: Sequence[str] = (),
) -> bytes:
    """The seed ISO's bytes. `user_data`, when given, is used as is (and then `user` and `ssh_keys` must not
    be: they would be silently lost); else a #cloud-config is made from them. Bad input: ValueError."""
    check_hostname(hostname)
    keys = ssh_key_lines(ssh_keys)
    wanted = check_packages(packages)
    if user is not None:
        check_user(user)
    if user_data is not None:
        check_user_data(user_data)
        if user is not None or keys or wanted:
            raise ValueError(
                "user-data given: put the user, SSH keys and packages in it (they are not merged into a "
                "user-data file)"
            )
        body = user_data
    else:
        body = cloud_config(hostname, user, keys, wanted)
    iid = instance_id if instance_id is not None else str(uuid.uuid4())
    if not iid.strip() or "\n" in iid:
        raise ValueError(f"{iid!r} is not a valid instance id")
    return make_iso({"meta-data": meta_data(hostname, iid), "user-data": body})


def make_iso(files: dict[str, str]) -> bytes:
    """An ISO labelled cidata with the NoCloud files given by name (meta-data, user-data)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=VOLUME_ID, joliet=3, rock_ridge="1.09")
    try:
        for name, iso_path in _FILES:
            if name not in files:
                continue
            data = files[name].encode()
            iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=name, joliet_path=f"/{name}")
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def read_seed(iso_bytes: bytes) -> dict[str, str]:
    """The files of a seed ISO by name (Rock Ridge, else Joliet, else ISO 9660 names lower-cased without
    ';1'). Not an ISO: ValueError."""
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(iso_bytes))
    except PyCdlibException as exc:
        raise ValueError(f"not an ISO 9660 image: {exc}") from exc
    try:
        if iso.has_rock_ridge():
            facade: str = "rr_path"
        elif iso.has_joliet():
            facade = "joliet_path"
        else:
            facade = "iso_path"
        files: dict[str, str] = {}
        for child in iso.list_children(**{facade: "/"}):
            if child is None or child.is_dot() or child.is_dotdot() or child.is_dir():
                continue
            if facade == "rr_path":
                name = child.rock_ridge.name().decode()
            elif facade == "joliet_path":
                name = child.file_identifier().decode("utf-16-be")
            else:
                name = child.file_identifier().decode()
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, **{facade: f"/{name}"})
            key = name if facade != "iso_path" else name.split(";")[0].rstrip(".").lower()
            files[key] = out.getvalue().decode("utf-8", errors="replace")
        return files
    finally:
        iso.close()


def volume_id(iso_bytes: bytes) -> str:
    """The ISO's volume label (a NoCloud seed's is cidata)."""
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(iso_bytes))
    except PyCdlibException as exc:
        raise ValueError(f"not an ISO 9660 image: {exc}") from exc
    try:
        return bytes(iso.pvd.volume_identifier).decode().strip()
    finally:
        iso.close()
