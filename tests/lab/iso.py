"""A small bootable ISO for installs in the lab: the lab guest's own kernel and initramfs behind isolinux,
built with Debian's `xorriso`, `isolinux` and `syslinux-common` (installed by ./dev).

The image is hybrid (an MBR from isohdpfx.bin): written to a disk, it boots from that disk too. Its
initramfs is the lab's plus a second cpio member (the kernel unpacks concatenated archives in order, a later
file replacing an earlier one) holding the IDE CD-ROM drivers, so a guest booted from it sees its CD as
/dev/sr0. "Installing" is then `dd if=/dev/sr0 of=/dev/vda` in the guest: after the CD is detached, the
guest boots from its disk.

Built once beside the lab image (same cache folder, so they go together) and reused.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.lab.lab import GUEST_MODULES, LabError, _gzip, build_image, run

CD_MODULES = ("scsi_common", "scsi_mod", "libata", "ata_piix", "cdrom", "sr_mod")
"""In load order: the IDE controller of QEMU's i440fx machine and the SCSI CD-ROM driver on it."""
ISOLINUX = Path("/usr/lib/ISOLINUX")
SYSLINUX_BIOS = Path("/usr/lib/syslinux/modules/bios")
GUEST_NAME = "installed"
"""The host name the ISO's kernel command line gives the guest (`vimtui-guest installed up` on serial)."""
ISOLINUX_CFG = f"""\
SERIAL 0 115200
DEFAULT lab
PROMPT 0
TIMEOUT 0
LABEL lab
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd.gz
  APPEND console=ttyS0 quiet no_timer_check panic=10 vimtui.name={GUEST_NAME}
"""


def build_iso() -> Path:
    """The lab's install ISO (kernel, initramfs with CD-ROM drivers, isolinux), built once and cached."""
    kernel, initrd = build_image()
    out = initrd.with_name("install.iso")
    if out.exists():
        return out
    for tool in ("xorriso",):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is missing: ./dev setup installs xorriso isolinux syslinux-common")
    if not (ISOLINUX / "isolinux.bin").exists() or not (SYSLINUX_BIOS / "ldlinux.c32").exists():
        raise LabError("isolinux is missing: ./dev setup installs isolinux syslinux-common")
    with tempfile.TemporaryDirectory(dir=initrd.parent) as tmp_s:
        tmp = Path(tmp_s)
        tree = tmp / "tree"
        (tree / "isolinux").mkdir(parents=True)
        (tree / "boot").mkdir()
        shutil.copy2(ISOLINUX / "isolinux.bin", tree / "isolinux" / "isolinux.bin")
        shutil.copy2(SYSLINUX_BIOS / "ldlinux.c32", tree / "isolinux" / "ldlinux.c32")
        (tree / "isolinux" / "isolinux.cfg").write_text(ISOLINUX_CFG)
        shutil.copy2(kernel, tree / "boot" / "vmlinuz")
        (tree / "boot" / "initrd.gz").write_bytes(initrd.read_bytes() + _gzip(_cd_drivers(initrd, tmp)))
        staging = tmp / "install.iso"
        run(
            [
                "xorriso",
                "-as",
                "mkisofs",
                "-quiet",
                "-o",
                str(staging),
                "-V",
                "VIMTUI_LAB",
                "-b",
                "isolinux/isolinux.bin",
                "-c",
                "isolinux/boot.cat",
                "-no-emul-boot",
                "-boot-load-size",
                "4",
                "-boot-info-table",
                "-isohybrid-mbr",
                str(ISOLINUX / "isohdpfx.bin"),
                str(tree),
            ],
            timeout=120,
        )
        staging.replace(out)
    return out


def _cd_drivers(initrd: Path, tmp: Path) -> bytes:
    """A cpio member with the CD-ROM modules of the lab's kernel and a module order that loads them."""
    package = (initrd.parent / "kernel-package").read_text().strip()
    run(["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", package], cwd=tmp, timeout=600)
    kx, root = tmp / "k", tmp / "cd"
    run(["dpkg-deb", "-x", str(next(tmp.glob(f"{package}_*.deb"))), str(kx)])
    mods = root / "lib" / "modules"
    mods.mkdir(parents=True)
    for mod in CD_MODULES:
        found = list(kx.glob(f"lib/modules/*/kernel/**/{mod}.ko"))
        if not found:
            raise LabError(f"kernel module {mod}.ko not found in {package}")
        shutil.copy2(found[0], mods / f"{mod}.ko")
    (mods / "order").write_text("\n".join((*GUEST_MODULES, *CD_MODULES)) + "\n")
    names = ["lib", "lib/modules", "lib/modules/order", *(f"lib/modules/{m}.ko" for m in CD_MODULES)]
    return subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
        cwd=root,
        input="\n".join(names).encode() + b"\n",
        capture_output=True,
        check=True,
    ).stdout


if __name__ == "__main__":
    print(build_iso())
