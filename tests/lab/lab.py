"""The lab: simulated hypervisor hosts on this machine, each a set of namespaces with its own sshd, libvirtd
and small real QEMU guests.

Every host is a network namespace (a veth to a bridge in the root namespace, its own address), a private
mount namespace (its own /run, /etc/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt), its
own hostname (UTS namespace), its own PID namespace (its init dies, everything in it dies: nothing is left
behind) and its own cgroup subtree. The guests are a Debian cloud kernel with a busybox initramfs, built
once from Debian packages and cached.

Used by the pytest fixtures (tests/conftest.py), `make lab-up` / `make lab-down` and the demo.
Run as root: `python -m tests.lab up 3`, `python -m tests.lab down`, `python -m tests.lab status`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.lab import subnet

HERE = Path(__file__).resolve().parent
GUEST_DIR = HERE / "guest"
LAB_ROOT = Path(os.environ.get("VIMTUI_LAB_ROOT", "/var/tmp/vimtui-lab"))
CACHE_ROOT = Path(
    os.environ.get("VIMTUI_LAB_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vimtui-lab"
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
KERNEL_META = "linux-image-cloud-amd64"
GUEST_MODULES = (
    "virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover "
    "virtio_net virtio_blk virtio_balloon virtio_console evdev button"
).split()
# (in load order: each after what it depends on; the guest's init loads them in this order)
# Guests per host, by host index; hosts beyond the table get one guest each.
GUEST_PLAN: tuple[tuple[tuple[str, int, int, bool], ...], ...] = (
    # (name, MiB, vCPUs, has a qcow2 disk in the host's dir pool)
    (("web01", 128, 1, True), ("db01", 112, 2, False)),
    (("app01", 112, 1, False), ("app02", 112, 1, False)),
    (("cache01", 112, 1, False),),
)
KNOWN_SUBNETS = {"demo": 77, "test": 78}
"""The subnet each lab prefers (10.X.0.0/24); when this machine routes it already, another (subnet.py)."""
LAB_VERSION = 2
"""What a lab built by this code has (2: the qemu hook of gates.py): a lab of another version is rebuilt, not
reused."""


class LabError(RuntimeError):
    """The lab could not do what was asked; the message says why."""


def run(argv: list[str], *, check: bool = True, timeout: float = 60, **kw: Any) -> str:
    """Run a command, return its stdout; raise LabError with its stderr when it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def wait_for(what: str, predicate: Any, timeout: float, interval: float = 0.1) -> Any:
    """Poll predicate until it returns something truthy; raise LabError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def hardware_virt() -> bool:
    """KVM only where /dev/kvm opens and the CPU shows vmx or svm: a paravirtual KVM without them makes a
    stock kernel crawl and die, so the lab uses TCG there."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    flags = Path("/proc/cpuinfo").read_text()
    return " vmx" in flags or " svm" in flags


# ---------------------------------------------------------------------------------------------- image


def _guest_files_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(GUEST_DIR.iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update(" ".join(GUEST_MODULES).encode())
    return h.hexdigest()[:16]


def build_image(cache_root: Path = CACHE_ROOT) -> tuple[Path, Path]:
    """The guest kernel and initramfs, built once from Debian packages and cached by content."""
    cache = cache_root / _guest_files_digest()
    kernel, initrd = cache / "vmlinuz", cache / "initrd.gz"
    if kernel.exists() and initrd.exists():
        return kernel, initrd
    cache_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root) as tmp_s:
        tmp = Path(tmp_s)
        depends = run(["apt-cache", "depends", KERNEL_META])
        versioned = next(
            (ln.split(":", 1)[1].strip() for ln in depends.splitlines() if "Depends:" in ln), None
        )
        if not versioned:
            raise LabError(f"cannot resolve {KERNEL_META} to a versioned kernel package")
        run(
            [
                "apt-get",
                "-q",
                "-o",
                "APT::Sandbox::User=root",
                "download",
                versioned,
                "busybox-static",
            ],
            cwd=tmp,
            timeout=600,
        )
        debs = {p.name.split("_")[0]: p for p in tmp.glob("*.deb")}
        kx, bx, root = tmp / "k", tmp / "b", tmp / "root"
        run(["dpkg-deb", "-x", str(debs[versioned]), str(kx)])
        run(["dpkg-deb", "-x", str(debs["busybox-static"]), str(bx)])
        for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "run", "lib/modules", "data"):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy2(bx / "bin" / "busybox", root / "bin" / "busybox")
        for mod in GUEST_MODULES:
            found = list(kx.glob(f"lib/modules/*/kernel/**/{mod}.ko"))
            if not found:
                raise LabError(f"kernel module {mod}.ko not found in {versioned}")
            shutil.copy2(found[0], root / "lib" / "modules" / f"{mod}.ko")
        (root / "lib" / "modules" / "order").write_text("\n".join(GUEST_MODULES) + "\n")
        shutil.copy2(GUEST_DIR / "init", root / "init")
        for name in ("inittab", "rc", "udhcpc.script", "powerbutton", "workload"):
            shutil.copy2(GUEST_DIR / name, root / "etc" / name)
        (root / "etc" / "profile").write_text("export PATH=/bin:/sbin\nexport PS1='\\h# '\n")
        files = subprocess.run(
            ["find", ".", "-mindepth", "1"], cwd=root, capture_output=True, check=True
        ).stdout
        cpio = subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
            cwd=root,
            input=files,
            capture_output=True,
            check=True,
        ).stdout
        staging = tmp / "out"
        staging.mkdir()
        (staging / "initrd.gz").write_bytes(_gzip(cpio))
        shutil.copy2(next(kx.glob("boot/vmlinuz-*")), staging / "vmlinuz")
        (staging / "kernel-package").write_text(versioned + "\n")
        with contextlib.suppress(FileExistsError, OSError):
            staging.rename(cache)
    for old in cache_root.iterdir():  # images of older guest files
        if old != cache and len(old.name) == 16:
            shutil.rmtree(old, ignore_errors=True)
    return kernel, initrd


VT_SHELL = "tty1::respawn:/bin/sh -l\n"
"""The inittab line a guest with a display adds: a shell on the first virtual terminal (the one its VGA
screen shows), where keys sent to the guest land."""


def vt_initrd(initrd: Path) -> Path:
    """The guest initramfs plus a second cpio member whose /etc/inittab adds VT_SHELL (the kernel unpacks
    concatenated archives in order, a later file replacing an earlier one). Built beside `initrd`, so the
    image every lab shares (and its digest) is unchanged and the two are removed together."""
    out = initrd.with_name("initrd-vt.gz")
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(dir=initrd.parent) as tmp_s:
        root = Path(tmp_s) / "root"
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "inittab").write_text((GUEST_DIR / "inittab").read_text() + VT_SHELL)
        cpio = subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
            cwd=root,
            input=b"etc\netc/inittab\n",
            capture_output=True,
            check=True,
        ).stdout
        staging = Path(tmp_s) / "initrd-vt.gz"
        staging.write_bytes(initrd.read_bytes() + _gzip(cpio))
        staging.replace(out)
    return out


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=6, mtime=0)


# ---------------------------------------------------------------------------------------------- hosts


@dataclasses.dataclass
class LabHost:
    """One simulated hypervisor host, as the lab's state file records it."""

    name: str
    index: int
    address: str
    netns: str
    veth: str
    dir: str
    pid: int  # PID (root namespace) of the host's init: nsenter target
    starter: int  # PID of the `unshare` that started the init
    guests: list[str]

    @property
    def socket_path(self) -> str:
        """The host's libvirt socket, reached from the root namespace through its init's root."""
        return f"/proc/{self.pid}/root/run/libvirt/libvirt-sock"

    @property
    def direct_uri(self) -> str:
        """A libvirt URI that reaches this host's libvirtd without SSH (lab set-up and checks only)."""
        return f"qemu+unix:///system?socket={self.socket_path}"

    @property
    def ssh_uri(self) -> str:
        return f"ssh://root@{self.address}"


class Lab:
    """A named lab of N hosts. `up` brings it up (or reuses it), `down` removes everything it made."""

    def __init__(self, name: str = "demo", root: Path = LAB_ROOT) -> None:
        if not name.isalnum() or len(name) > 8:
            raise LabError(f"lab name {name!r}: letters and digits, at most 8")
        self.name = name
        self.dir = root / name
        self.preferred_octet = KNOWN_SUBNETS.get(name, 100 + zlib.crc32(name.encode()) % 100)
        self.octet = self.preferred_octet
        self.bridge = f"vtl{name}"[:15]
        self.hosts: list[LabHost] = []
        self.version = 0
        self.console_seen = ""
        """The end of what the last on_console read from the guest (for a failing test's message)."""
        self.load()

    @property
    def gateway(self) -> str:
        return f"10.{self.octet}.0.1"

    # -- state -------------------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def key_file(self) -> Path:
        """The lab's SSH client key (root on every host accepts it)."""
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def config_file(self) -> Path:
        """A vimtui config listing the lab's hosts (the demo uses it)."""
        return self.dir / "vimtui.toml"

    def load(self) -> None:
        if self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            self.hosts = [LabHost(**h) for h in data["hosts"]]
            self.octet = int(data.get("octet", self.preferred_octet))
            self.version = int(data.get("version", 0))

    def save(self) -> None:
        data = {
            "name": self.name,
            "version": self.version,
            "octet": self.octet,
            "hosts": [dataclasses.asdict(h) for h in self.hosts],
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.state_file)

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"no lab host {name!r}")

    def is_up(self, n: int | None = None) -> bool:
        """True when the recorded hosts are all alive (and there are n of them, when n is given)."""
        if not self.hosts or (n is not None and len(self.hosts) != n) or self.version != LAB_VERSION:
            return False
        return all(_alive(h.pid) and Path(h.socket_path).exists() for h in self.hosts)

    # -- up ----------------------------------------------------------------------------------------

    def up(self, n: int = 3) -> Lab:
        """Bring up n hosts with their guests running; reuse the lab when it is already up as asked."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (namespaces, bridges, libvirtd)")
        if self.is_up(n):
            return self
        self.down()
        kernel, initrd = build_image()
        try:
            self._up(n, kernel, initrd)
        except BaseException:
            if not os.environ.get("VIMTUI_LAB_KEEP"):  # keep a failed lab only when asked, to debug it
                self.down()
            raise
        return self

    def _up(self, n: int, kernel: Path, initrd: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.version = LAB_VERSION
        run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"vimtui-lab-{self.name}",
                "-f",
                str(self.key_file),
            ]
        )
        with subnet.choosing(self.dir.parent):
            try:
                self.octet = subnet.free_octet(self.preferred_octet, subnet.used_networks())
            except subnet.SubnetTaken as exc:
                raise LabError(str(exc)) from exc
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
            run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        self.hosts = [self._make_host(i) for i in range(n)]
        self.save()
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(lambda h: self._start_host(h, n, kernel, initrd), self.hosts))
        self.save()
        self._write_access_files()

    def _make_host(self, i: int) -> LabHost:
        name = f"kvm{i + 1:02d}"
        plan = GUEST_PLAN[i] if i < len(GUEST_PLAN) else ((f"vm{i + 1:02d}", 112, 1, False),)
        return LabHost(
            name=name,
            index=i,
            address=f"10.{self.octet}.0.{11 + i}",
            netns=f"vtlab-{self.name}-{name}",
            veth=f"vl{self.octet}h{i + 1}",
            dir=str(self.dir / name),
            pid=0,
            starter=0,
            guests=[g[0] for g in plan],
        )

    def _start_host(self, h: LabHost, n_hosts: int, kernel: Path, initrd: Path) -> None:
        hd = Path(h.dir)
        for d in ("etc-libvirt", "var-lib-libvirt", "var-log-libvirt", "var-cache-libvirt", "var-log-vimtui"):
            (hd / d).mkdir(parents=True, exist_ok=True)
        shutil.copytree("/etc/libvirt", hd / "etc-libvirt", dirs_exist_ok=True, symlinks=True)
        (hd / "var-lib-libvirt" / "images").mkdir(exist_ok=True)
        (hd / "var-log-libvirt" / "qemu").mkdir(exist_ok=True)
        _write_libvirt_config(hd / "etc-libvirt", h.address)
        # network namespace, veth to the bridge
        run(["ip", "netns", "add", h.netns])
        run(["ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns])
        run(["ip", "link", "set", h.veth, "master", self.bridge, "up"])
        ns = ["ip", "netns", "exec", h.netns]
        run([*ns, "ip", "addr", "add", f"{h.address}/24", "dev", "eth0"])
        run([*ns, "ip", "link", "set", "eth0", "up"])
        run([*ns, "ip", "route", "add", "default", "via", self.gateway])
        # sshd: its own host key, root by key only, the lab's client key
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hd / "ssh_host_ed25519_key")])
        shutil.copy2(self.key_file.with_suffix(".pub"), hd / "authorized_keys")
        (hd / "hosts").write_text(
            "127.0.0.1 localhost\n"
            + "".join(f"10.{self.octet}.0.{11 + j} kvm{j + 1:02d}\n" for j in range(n_hosts))
        )
        (hd / "resolv.conf").write_text("# lab host: no nameserver\n")
        (hd / "sshd_config").write_text(_SSHD_CONFIG.format(addr=h.address, dir=hd))
        cgroups = _make_cgroups(f"vtlab-{self.name}/{h.name}")
        (hd / "cgroup-mounts").write_text(_cgroup_mounts())
        log = open(hd / "init.log", "ab")  # noqa: SIM115 - the host's init owns it
        proc = subprocess.Popen(
            [
                *ns,
                "unshare",
                "--mount",
                "--uts",
                "--pid",
                "--cgroup",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                "sh",
                str(HERE / "host-init.sh"),
                str(hd),
                h.name,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=lambda: _join_cgroups(cgroups),
        )
        log.close()
        h.starter = proc.pid
        h.pid = wait_for(f"{h.name} init", lambda: _child_of(proc.pid), 10)
        wait_for(f"{h.name} libvirtd", lambda: _libvirt_ready(h.direct_uri), 30, 0.2)
        wait_for(f"{h.name} sshd", lambda: _port_open(h.address, 22), 30)
        self._define_guests(h, kernel, initrd)

    def _define_guests(self, h: LabHost, kernel: Path, initrd: Path) -> None:
        import libvirt

        plan = GUEST_PLAN[h.index] if h.index < len(GUEST_PLAN) else ((h.guests[0], 112, 1, False),)
        conn = libvirt.open(h.direct_uri)
        try:
            net = conn.networkDefineXML(_NETWORK_XML)
            net.setAutostart(True)
            net.create()
            pool = conn.storagePoolDefineXML(_POOL_XML)
            pool.setAutostart(True)
            pool.create()
            virt = "kvm" if hardware_virt() else "qemu"
            for name, mib, vcpus, disk in plan:
                disk_xml = ""
                if disk:
                    pool.createXML(_VOLUME_XML.format(name=name), 0)
                    disk_xml = _DISK_XML.format(name=name)
                dom = conn.defineXML(
                    _DOMAIN_XML.format(
                        virt=virt,
                        name=name,
                        mib=mib,
                        vcpus=vcpus,
                        kernel=kernel,
                        initrd=initrd,
                        disk=disk_xml,
                    )
                )
                dom.create()
        finally:
            conn.close()

    def add_guest(
        self,
        host: str,
        name: str,
        *,
        mib: int = 112,
        vcpus: int = 1,
        disk: bool = False,
        start: bool = True,
        max_vcpus: int | None = None,
        max_mib: int | None = None,
        graphics: bool = False,
    ) -> None:
        """Define (and start) a scratch guest like the planned ones, for tests that change or remove
        guests: the shared ones stay as every other test expects them. `max_vcpus`, `max_mib`: room to
        hotplug vCPUs (<vcpu current='1'>2</vcpu>) and to grow the balloon above `mib`. `graphics`: a VGA
        card and a VNC display on the host's loopback (port chosen by libvirt), the kernel writing to tty0
        too (the serial console stays /dev/console) and a shell on tty1, so keys sent to the guest echo
        on its screen."""
        kernel, initrd = build_image()
        if graphics:
            initrd = vt_initrd(initrd)
        with self.connect(host) as conn:
            disk_xml = ""
            if disk:
                conn.storagePoolLookupByName("default").createXML(_VOLUME_XML.format(name=name), 0)
                disk_xml = _DISK_XML.format(name=name)
            virt = "kvm" if hardware_virt() else "qemu"
            xml = _DOMAIN_XML.format(
                virt=virt, name=name, mib=mib, vcpus=vcpus, kernel=kernel, initrd=initrd, disk=disk_xml
            )
            if max_vcpus is not None:
                xml = xml.replace(f"<vcpu>{vcpus}</vcpu>", f"<vcpu current='{vcpus}'>{max_vcpus}</vcpu>")
            if max_mib is not None:
                xml = xml.replace(
                    f"<memory unit='MiB'>{mib}</memory>", f"<memory unit='MiB'>{max_mib}</memory>"
                )
            if graphics:
                xml = xml.replace("<cmdline>console=ttyS0 ", "<cmdline>console=tty0 console=ttyS0 ")
                xml = xml.replace("    <memballoon ", _GRAPHICS_XML + "    <memballoon ")
            dom = conn.defineXML(xml)
            if start:
                dom.create()

    def remove_guest(self, host: str, name: str) -> None:
        """Force off and undefine a guest (snapshots, managed save included) and delete volumes whose names
        start with its name; quiet when it is not there."""
        import libvirt

        with self.connect(host) as conn:
            with contextlib.suppress(libvirt.libvirtError):
                dom = conn.lookupByName(name)
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                for snap in dom.listAllSnapshots():
                    with contextlib.suppress(libvirt.libvirtError):
                        snap.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                )
            with contextlib.suppress(libvirt.libvirtError):
                pool = conn.storagePoolLookupByName("default")
                pool.refresh(0)
                for vol in pool.listAllVolumes():
                    if vol.name() == f"{name}.qcow2" or vol.name().startswith(f"{name}-"):
                        vol.delete(0)

    def _write_access_files(self) -> None:
        lines = []
        for h in self.hosts:
            pub = (Path(h.dir) / "ssh_host_ed25519_key.pub").read_text().split()
            lines.append(f"{h.address} {pub[0]} {pub[1]}\n")
        self.known_hosts.write_text("".join(lines))
        cfg = [
            "# vimtui config for the lab (written by tests/lab/lab.py)\n",
            # keepalive 5 s x 4: a 2-core machine booting several TCG guests at once can leave a host's
            # sshd silent for more than the default 3 s x 2, and a dropped connection fails the task on it
            "[defaults]\ninterval = 2.0\nkeepalive_interval = 5.0\nkeepalive_count_max = 4\n",
        ]
        for h in self.hosts:
            cfg.append(
                f'\n[[hosts]]\nname = "{h.name}"\naddress = "{h.address}"\nuser = "root"\n'
                f'identity = "{self.key_file}"\nknown_hosts = "{self.known_hosts}"\n'
                f'uri = "qemu:///system"\ngroup = "lab/{self.name}"\n'
            )
        self.config_file.write_text("".join(cfg))

    # -- down --------------------------------------------------------------------------------------

    def down(self) -> None:
        """Remove everything this lab made: processes, namespaces, links, cgroups, files."""
        prefix = f"vtlab-{self.name}-"
        namespaces = [
            ln.split()[0] for ln in run(["ip", "netns", "list"]).splitlines() if ln.startswith(prefix)
        ]
        # Killing a host's init (PID 1 of its PID namespace) kills everything in it; the `unshare` that
        # started it then exits on its own, and is reaped below when it is our child.
        inits = {h.pid for h in self.hosts if h.pid and _alive(h.pid)}
        _kill_and_reap(inits)
        for h in self.hosts:
            if h.starter in _our_children():
                os.waitpid(h.starter, 0)
        rest: set[int] = set()
        for ns in namespaces:  # whatever else still runs in a host's network namespace
            rest.update(int(p) for p in run(["ip", "netns", "pids", ns], check=False).split())
        _kill_and_reap(rest)
        # A veth dies with its namespace, but the kernel cleans namespaces up later: delete the links now
        # and wait them out, or an `up` right after this one finds their names taken.
        veths = [f"vl{self.octet}h{i}" for i in range(1, 100)] + [h.veth for h in self.hosts]
        with contextlib.suppress(OSError):
            veths += os.listdir(f"/sys/class/net/{self.bridge}/brif")
        for link in veths:
            if Path(f"/sys/class/net/{link}").exists():
                run(["ip", "link", "delete", link], check=False)
        for ns in namespaces:
            run(["ip", "netns", "delete", ns], check=False)
        wait_for("lab links to go", lambda: not any(Path(f"/sys/class/net/{v}").exists() for v in veths), 30)
        if Path(f"/sys/class/net/{self.bridge}").exists():
            run(["ip", "link", "delete", self.bridge], check=False)
        wait_for("lab cgroups to empty", lambda: _remove_cgroups(f"vtlab-{self.name}"), 30)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.hosts = []

    # -- faults and access -------------------------------------------------------------------------

    def cut(self, host: str) -> None:
        """Cut a host's link: its packets vanish (nothing is refused), as with a pulled cable."""
        run(["ip", "link", "set", self.host(host).veth, "down"])

    def heal(self, host: str) -> None:
        run(["ip", "link", "set", self.host(host).veth, "up"])

    def exec(self, host: str, argv: list[str], *, check: bool = True, timeout: float = 60) -> str:
        """Run a command inside a host (all its namespaces and its cgroup)."""
        h = self.host(host)
        cgroups = _host_cgroups(f"vtlab-{self.name}/{h.name}")
        proc = subprocess.run(
            ["nsenter", "-t", str(h.pid), "-m", "-u", "-n", "-p", "-C", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=lambda: _join_cgroups(cgroups),
        )
        if check and proc.returncode != 0:
            raise LabError(f"{host}: {' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def libvirtd_pid(self, host: str) -> int | None:
        pidfile = Path(f"/proc/{self.host(host).pid}/root/run/libvirtd.pid")
        with contextlib.suppress(OSError, ValueError):
            return int(pidfile.read_text().strip())
        return None

    def stop_libvirtd(self, host: str) -> None:
        """Stop a host's libvirtd; its guests keep running (as on a real host)."""
        self.exec(host, ["sh", "-c", "kill $(cat /run/libvirtd.pid)"])
        h = self.host(host)
        wait_for(f"{host} libvirtd to stop", lambda: not Path(h.socket_path).exists(), 30)

    def start_libvirtd(self, host: str) -> None:
        h = self.host(host)
        self.exec(host, ["libvirtd", "-d"])
        wait_for(f"{host} libvirtd", lambda: _libvirt_ready(h.direct_uri), 30, 0.2)

    def ssh_argv(self, host: str, *command: str, timeout: int = 5) -> list[str]:
        """An OpenSSH command line to a host with the lab key and strict host-key checking."""
        return [
            "ssh",
            "-i",
            str(self.key_file),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"ConnectTimeout={timeout}",
            "-F",
            "/dev/null",
            f"root@{self.host(host).address}",
            *command,
        ]

    @contextlib.contextmanager
    def connect(self, host: str) -> Iterator[Any]:
        """A direct libvirt connection to a host (for checks that must not go through vimtui)."""
        import libvirt

        conn = libvirt.open(self.host(host).direct_uri)
        try:
            yield conn
        finally:
            conn.close()

    def serial_log(self, host: str, guest: str) -> str:
        """What a guest wrote on its serial console (its log file, in the host's directory)."""
        path = Path(self.host(host).dir) / "var-log-libvirt" / "qemu" / f"{guest}-serial.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def on_console(self, host: str, guest: str, command: str, within: float = 60) -> bool:
        """Run `command` in the guest's shell on its serial console (a direct libvirt connection), typing
        it again every few seconds until the shell answers (what is typed before the shell is up is lost);
        True once a marker echoed after it came back. The workload reads /tmp/load: `echo idle >
        /tmp/load` quiets a guest, `echo busy > /tmp/load` keeps its CPU busy."""
        import libvirt

        marker = uuid.uuid4().hex[:8]
        line = f"\r{command}; echo done-{marker}-$((6*7))\r".encode()
        self.console_seen = ""
        answer = f"done-{marker}-42"
        deadline = time.monotonic() + within
        with self.connect(host) as conn:
            stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
            conn.lookupByName(guest).openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
            out = b""
            typed = 0.0
            try:
                while time.monotonic() < deadline:
                    if time.monotonic() - typed > 3:
                        stream.send(line)
                        typed = time.monotonic()
                    got = stream.recv(4096)
                    if isinstance(got, bytes) and got:
                        out += got
                        self.console_seen = out[-3000:].decode(errors="replace")
                    if answer.encode() in out or answer in self.serial_log(host, guest):  # (the log has it)
                        return True
                    if not isinstance(got, bytes) or not got:
                        time.sleep(0.1)  # polling a non-blocking stream, not synchronising
                return False
            finally:
                stream.abort()


# ---------------------------------------------------------------------------------------------- helpers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    return False


def _kill_and_reap(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for("lab processes to end", lambda: not any(_alive(p) for p in pids), 30)
    for pid in set(pids) & set(_our_children()):
        os.waitpid(pid, 0)


def _our_children() -> list[int]:
    me = os.getpid()
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{me}/task/{me}/children").read_text().split()]
    return []


def _child_of(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if kids:
            return int(kids[0])
    return None


def _port_open(addr: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((addr, port), timeout=0.5):
        return True
    return False


def _libvirt_ready(uri: str) -> bool:
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised, not printed
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return False
    conn.close()
    return True


def _hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (cgroup v2 gets one unified tree)."""
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] in ("cgroup", "cgroup2") and fields[1].startswith(str(CGROUP_ROOT)):
            out.append(Path(fields[1]))
    return out


def _cgroup_mounts() -> str:
    """The cgroup mounts of this machine, one "mountpoint fstype options" line each, for host-init.sh."""
    lines = []
    for line in Path("/proc/mounts").read_text().splitlines():
        _src, mp, fstype, opts, *_ = line.split()
        if fstype in ("cgroup", "cgroup2") and mp.startswith(str(CGROUP_ROOT)):
            lines.append(f"{mp} {fstype} {opts}\n")
    return "".join(lines)


def _host_cgroups(rel: str) -> list[Path]:
    return [h / rel for h in _hierarchies() if (h / rel).is_dir()]


def _make_cgroups(rel: str) -> list[Path]:
    """Create a cgroup subtree for one host in every hierarchy (cpuset needs cpus and mems set)."""
    made = []
    for hier in _hierarchies():
        path = hier
        for part in Path(rel).parts:
            parent, path = path, path / part
            path.mkdir(exist_ok=True)
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (path / knob).exists() and not (path / knob).read_text().strip():
                    (path / knob).write_text((parent / knob).read_text())
        made.append(path)
    return made


def _join_cgroups(paths: list[Path]) -> None:
    for p in paths:
        procs = p / "cgroup.procs"
        with contextlib.suppress(OSError):
            procs.write_text(str(os.getpid()))


def _remove_cgroups(rel: str) -> bool:
    """Remove a lab's cgroup subtrees, deepest first; False while some are still busy."""
    ok = True
    for hier in _hierarchies():
        top = hier / rel
        if not top.exists():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                ok = False
    return ok


def _write_libvirt_config(etc: Path, address: str) -> None:
    (etc / "libvirtd.conf").write_text(
        'unix_sock_group = "root"\nunix_sock_ro_perms = "0777"\nunix_sock_rw_perms = "0770"\n'
        'auth_unix_ro = "none"\nauth_unix_rw = "none"\n'
        f'host_uuid = "{uuid.uuid4()}"\n'
        'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
    )
    (etc / "qemu.conf").write_text(
        'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
        'security_driver = "none"\nnamespaces = [ ]\n'
        f'migration_host = "{address}"\n'
    )
    # no autostarted guests or networks from the machine's own config
    for sub in ("qemu/autostart", "qemu/networks/autostart"):
        shutil.rmtree(etc / sub, ignore_errors=True)
    for f in (etc / "qemu").glob("*.xml"):
        f.unlink()
    for f in (etc / "qemu" / "networks").glob("*.xml"):
        f.unlink()
    # the gates' hook (gates.py): libvirtd looks for hooks when it starts, so it is there from the start
    (etc / "hooks").mkdir(exist_ok=True)
    shutil.copy2(HERE / "qemu-hook", etc / "hooks" / "qemu")
    shutil.rmtree(etc / "storage", ignore_errors=True)


_SSHD_CONFIG = """\
ListenAddress {addr}
Port 22
HostKey {dir}/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile {dir}/authorized_keys
StrictModes no
UsePAM no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
ClientAliveInterval 0
Subsystem sftp internal-sftp
"""

_NETWORK_XML = """\
<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='off'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.122.10' end='192.168.122.250'/></dhcp>
  </ip>
</network>
"""

_POOL_XML = """\
<pool type='dir'>
  <name>default</name>
  <target><path>/var/lib/libvirt/images</path></target>
</pool>
"""

_VOLUME_XML = """\
<volume>
  <name>{name}.qcow2</name>
  <capacity unit='MiB'>64</capacity>
  <target><format type='qcow2'/></target>
</volume>
"""

_DISK_XML = """\
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='default' volume='{name}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
"""

_GRAPHICS_XML = """\
    <video><model type='vga' vram='16384' heads='1'/></video>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
"""

_DOMAIN_XML = """\
<domain type='{virt}'>
  <name>{name}</name>
  <memory unit='MiB'>{mib}</memory>
  <currentMemory unit='MiB'>{mib}</currentMemory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet no_timer_check panic=10 vimtui.name={name}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
{disk}    <interface type='network'>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='/var/log/libvirt/qemu/{name}-serial.log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='virtio'><stats period='2'/></memballoon>
  </devices>
</domain>
"""
