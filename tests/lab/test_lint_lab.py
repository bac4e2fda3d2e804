"""Fleet lint against the lab: guests deliberately configured each way on kvm01 raise their own finding and
only it, a clean guest raises none, a domain's XML copied to kvm02 (new name and UUID, same MAC) is found
as a duplicate MAC on both, the host rules fire when their figures are tuned down, and the safe fixes
(vm.lint-fix) change what libvirt holds (read back through libvirt, not vimtui), after which lint no
longer finds them.

What breaks them: collection that misses a kind of fact on a real host (XML, autostart, snapshots,
pools, versions), a rule that fires on a clean guest, a fix that does not reach the definition."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.lab import Lab, build_image, hardware_virt

pytestmark = pytest.mark.lab

HOST = "kvm01"
SHARED = "/var/lib/libvirt/lint-shared"
META = (
    "<metadata><vimtui:vm xmlns:vimtui='https://vimtui.dev/xmlns/vm/1'><vimtui:tags>{tags}</vimtui:tags>"
    "</vimtui:vm></metadata>"
)
CLEAN = {
    "disk": "qcow2",
    "pool": "lint-shared",
    "cache": "",
    "agent": True,
    "listen": "127.0.0.1",
    "cpu": "",
    "stats": True,
    "tags": "critical",
    "autostart": True,
}
GUESTS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "lint-clean": ({}, set()),
    "lint-display": ({"listen": "0.0.0.0"}, {"open-display"}),
    "lint-noagent": ({"agent": False}, {"no-agent"}),
    "lint-unsafe": ({"cache": "unsafe"}, {"unsafe-cache"}),
    "lint-raw": ({"disk": "raw"}, {"raw-disk"}),
    "lint-passthru": ({"cpu": "<cpu mode='host-passthrough'/>"}, {"cpu-migration"}),
    "lint-local": ({"pool": "default"}, {"local-disk"}),
    "lint-critical": ({"autostart": False}, {"critical-autostart"}),
    "lint-nostats": ({"stats": False}, {"no-memory-stats"}),
    "lint-snaps": ({}, {"old-snapshot", "snapshot-chain"}),
}
CONFIG = f"""
[lint]
shared_paths = ["{SHARED}"]
snapshot_max_chain = 2
snapshot_max_age_days = 30
cpu_overcommit = 0.01
memory_overcommit = 0.001
min_libvirt = "99.0"
"""


def guest_xml(name: str, kernel: Path, initrd: Path, **kw: Any) -> str:
    g = {**CLEAN, **kw}
    cache = f" cache='{g['cache']}'" if g["cache"] else ""
    agent = (
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        if g["agent"]
        else ""
    )
    stats = "<stats period='5'/>" if g["stats"] else ""
    virt = "kvm" if hardware_virt() else "qemu"
    return f"""<domain type='{virt}'>
  <name>{name}</name>
  {META.format(tags=g["tags"])}
  <memory unit='MiB'>112</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kernel}</kernel><initrd>{initrd}</initrd></os>
  {g["cpu"]}
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='{g["disk"]}'{cache}/>
      <source pool='{g["pool"]}' volume='{name}.{g["disk"]}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'><source network='default'/><model type='virtio'/></interface>
    {agent}
    <graphics type='vnc' port='-1' autoport='yes' listen='{g["listen"]}'/>
    <memballoon model='virtio'>{stats}</memballoon>
  </devices>
</domain>"""


def vimtui(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "vimtui"
    return subprocess.run(
        [str(exe), *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def lint(config: Path) -> dict[str, Any]:
    out = vimtui(config, "lint", "--json", "--fail-on", "error")
    assert out.returncode in (0, 1), out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    assert doc["failed"] == [] and doc["hosts"] == ["kvm01", "kvm02", "kvm03"]
    return doc


def rules_of(doc: dict[str, Any], host: str, vm: str) -> set[str]:
    return {f["rule"] for f in doc["findings"] if f["host"] == host and f["vm"] == vm}


@pytest.fixture
def guests(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    import libvirt

    kernel, initrd = build_image()
    with lab.connect(HOST) as conn:
        pool = conn.storagePoolDefineXML(
            f"<pool type='dir'><name>lint-shared</name><target><path>{SHARED}</path></target></pool>"
        )
        pool.build(0)
        pool.create(0)
        for name, (kw, _) in GUESTS.items():
            g = {**CLEAN, **kw}
            conn.storagePoolLookupByName(g["pool"]).createXML(
                f"<volume><name>{name}.{g['disk']}</name><capacity unit='MiB'>16</capacity>"
                f"<target><format type='{g['disk']}'/></target></volume>",
                0,
            )
            dom = conn.defineXML(guest_xml(name, kernel, initrd, **kw))
            dom.setAutostart(1 if g["autostart"] else 0)
        snaps = conn.lookupByName("lint-snaps")
        for i in range(3):  # a chain of three (internal snapshots of a shut-off guest's qcow2 disk)
            snaps.snapshotCreateXML(f"<domainsnapshot><name>s{i}</name></domainsnapshot>", 0)
        old = int(time.time()) - 40 * 86400  # one taken 40 days ago, as libvirt records it when redefined
        snaps.snapshotCreateXML(
            f"<domainsnapshot><name>ancient</name><state>shutoff</state><creationTime>{old}</creationTime>"
            f"{snaps.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)}</domainsnapshot>",
            libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE,
        )
        conn.storagePoolLookupByName("default").createXML(
            "<volume><name>lint-orphan.qcow2</name><capacity unit='MiB'>16</capacity>"
            "<target><format type='qcow2'/></target></volume>",
            0,
        )
        # a clone made outside vimtui: web01's XML on kvm02 under a new name and UUID, its MAC kept
        root = ET.fromstring(conn.lookupByName("web01").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        root.find("name").text = "lint-copy"  # type: ignore[union-attr]
        root.find("uuid").text = str(uuid.uuid4())  # type: ignore[union-attr]
        mac = root.find("devices/interface/mac").get("address")  # type: ignore[union-attr]
    with lab.connect("kvm02") as conn:
        conn.defineXML(ET.tostring(root, encoding="unicode"))
    config = tmp_path / "config.toml"
    # generous deadlines: one lint reads every domain, snapshot and volume of a host in one call
    slow = "[defaults]\nconnect_timeout = 60.0\ncall_timeout = 60.0\n"
    config.write_text(lab.config_file.read_text().replace("[defaults]\n", slow, 1) + CONFIG)
    (tmp_path / "mac").write_text(str(mac))
    try:
        yield config
    finally:
        for name in GUESTS:
            lab.remove_guest(HOST, name)
        lab.remove_guest("kvm02", "lint-copy")
        with lab.connect(HOST) as conn:
            for vol in ("lint-orphan.qcow2",):
                try:
                    conn.storagePoolLookupByName("default").storageVolLookupByName(vol).delete(0)
                except libvirt.libvirtError:
                    pass
            try:
                pool = conn.storagePoolLookupByName("lint-shared")
                for v in pool.listAllVolumes(0):
                    v.delete(0)
                pool.destroy()
                pool.delete(0)
                pool.undefine()
            except libvirt.libvirtError:
                pass


def test_each_misconfigured_guest_raises_its_finding_and_the_clean_one_none(lab: Lab, guests: Path) -> None:
    doc = lint(guests)
    for name, (_, expected) in GUESTS.items():
        assert rules_of(doc, HOST, name) == expected, (name, [f for f in doc["findings"] if f["vm"] == name])
    mac = (guests.parent / "mac").read_text()
    dup = {
        (f["host"], f["vm"]) for f in doc["findings"] if f["rule"] == "duplicate-mac" and f["subject"] == mac
    }
    assert dup == {("kvm01", "web01"), ("kvm02", "lint-copy")}
    host_rules = {f["rule"] for f in doc["findings"] if f["host"] == HOST and f["vm"] is None}
    assert {"cpu-overcommit", "memory-overcommit", "old-libvirt", "orphan-volume"} <= host_rules
    orphans = {f["subject"] for f in doc["findings"] if f["rule"] == "orphan-volume" and f["host"] == HOST}
    assert orphans == {"/var/lib/libvirt/images/lint-orphan.qcow2"}  # web01's disk is in use: not listed


def test_the_safe_fixes_change_the_definitions_and_the_findings_go(lab: Lab, guests: Path) -> None:
    import libvirt

    fixes = {
        "lint-display": "open-display",
        "lint-noagent": "no-agent",
        "lint-unsafe": "unsafe-cache",
        "lint-critical": "critical-autostart",
        "lint-nostats": "no-memory-stats",
    }
    for name, rule in fixes.items():
        out = vimtui(guests, "vm", "lint-fix", name, "--host", HOST, "--rule", rule)
        assert out.returncode == 0, (name, out.stdout, out.stderr)
    with lab.connect(HOST) as conn:
        xml = {n: conn.lookupByName(n).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for n in fixes}
        assert "listen='127.0.0.1'" in xml["lint-display"] and "0.0.0.0" not in xml["lint-display"]
        assert "org.qemu.guest_agent.0" in xml["lint-noagent"]
        assert "cache='unsafe'" not in xml["lint-unsafe"]
        assert conn.lookupByName("lint-critical").autostart() == 1
        assert "<stats period='10'/>" in xml["lint-nostats"]
    doc = lint(guests)
    for name in fixes:
        assert rules_of(doc, HOST, name) == set(), name
