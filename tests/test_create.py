"""The parts of VM creation that need no host: the XML a template becomes, the XML of a cloud VM, and the
refusals made before anything is touched (the lab tests run the rest against libvirt)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from vimtui.core.actions import ACTIONS
from vimtui.core.actions.create import clone_xml
from vimtui.core.actions.create_image import image_domain_xml, image_refusal
from vimtui.core.actions.vm_spec import HostLimits, name_refusal, size_refusal

TEMPLATE = """\
<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>tpl</name>
  <uuid>0f8b6a3e-8e0c-4a57-9d5b-3a5cc0b2f0aa</uuid>
  <title>a template</title>
  <memory unit='MiB'>1024</memory>
  <currentMemory unit='MiB'>512</currentMemory>
  <vcpu current='2'>4</vcpu>
  <sysinfo type='smbios'>
    <system>
      <entry name='manufacturer'>ACME</entry>
      <entry name='uuid'>0f8b6a3e-8e0c-4a57-9d5b-3a5cc0b2f0aa</entry>
    </system>
  </sysinfo>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
    <nvram>/var/lib/libvirt/qemu/nvram/tpl_VARS.fd</nvram>
  </os>
  <cpu mode='host-model'><topology sockets='2' cores='2' threads='1'/></cpu>
  <cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='3' cpuset='3'/></cputune>
  <devices>
    <interface type='network'>
      <mac address='52:54:00:11:22:33'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:11:22:34'/>
      <source bridge='br0'/>
    </interface>
    <serial type='pty'>
      <log file='/var/log/libvirt/qemu/tpl-serial.log' append='on'/>
      <target port='0'/>
    </serial>
    <serial type='file'>
      <source path='/var/log/tpl-ttyS1.log'/>
      <target port='1'/>
    </serial>
    <console type='pty'>
      <log file='/var/log/libvirt/qemu/tpl-serial.log' append='on'/>
      <target type='serial' port='0'/>
    </console>
  </devices>
  <qemu:commandline><qemu:arg value='-no-hpet'/></qemu:commandline>
</domain>
"""


def test_clone_xml_makes_a_new_identity() -> None:
    root = ET.fromstring(clone_xml(TEMPLATE, "web-2"))
    assert root.findtext("name") == "web-2"
    assert root.find("uuid") is None
    assert [e.get("name") for e in root.iterfind("sysinfo/system/entry")] == ["manufacturer"]
    assert root.findall("devices/interface/mac") == []
    assert [i.get("type") for i in root.iterfind("devices/interface")] == ["network", "bridge"]
    assert root.find("os/nvram") is None
    assert root.findtext("os/loader") == "/usr/share/OVMF/OVMF_CODE.fd"
    logs = [e.get("file") for e in root.iter("log")]
    assert logs == ["/var/log/libvirt/qemu/web-2-serial.log"] * 2
    assert root.find("devices/serial[@type='file']/source").get("path") == "/var/log/web-2-ttyS1.log"  # type: ignore[union-attr]
    # what it does not touch
    assert root.findtext("title") == "a template"
    assert root.findtext("vcpu") == "4" and root.find("vcpu").get("current") == "2"  # type: ignore[union-attr]
    assert "commandline" in clone_xml(TEMPLATE, "web-2")
    assert "{http://libvirt.org/schemas/domain/qemu/1.0}commandline" in {e.tag for e in root}


def test_clone_xml_keeps_an_nvram_template_but_not_its_path() -> None:
    xml = TEMPLATE.replace(
        "<nvram>/var/lib/libvirt/qemu/nvram/tpl_VARS.fd</nvram>",
        "<nvram template='/usr/share/OVMF/OVMF_VARS.fd'>/var/lib/libvirt/qemu/nvram/tpl_VARS.fd</nvram>",
    )
    nvram = ET.fromstring(clone_xml(xml, "x")).find("os/nvram")
    assert nvram is not None and nvram.get("template") == "/usr/share/OVMF/OVMF_VARS.fd"
    assert not (nvram.text or "").strip()


def test_clone_xml_sets_vcpus_and_memory() -> None:
    root = ET.fromstring(clone_xml(TEMPLATE, "x", vcpus=2, memory_mib=2048))
    vcpu = root.find("vcpu")
    assert vcpu is not None and vcpu.text == "2" and vcpu.get("current") is None
    assert root.find("cpu/topology").attrib == {"sockets": "1", "cores": "2", "threads": "1"}  # type: ignore[union-attr]
    assert [p.get("vcpu") for p in root.iterfind("cputune/vcpupin")] == ["0"]
    for tag in ("memory", "currentMemory"):
        el = root.find(tag)
        assert el is not None and el.get("unit") == "KiB" and el.text == str(2048 * 1024)
    # a count the topology does not divide: one core per socket
    topo = ET.fromstring(clone_xml(TEMPLATE, "x", vcpus=3)).find("cpu/topology")
    assert topo is not None and topo.attrib == {"sockets": "3", "dies": "1", "cores": "1", "threads": "1"}


LIMITS = HostLimits("qemu", "x86_64", 255, 8192, frozenset({"ide", "sata", "virtio"}), frozenset({"maximum"}))


def test_image_domain_xml() -> None:
    xml = image_domain_xml(
        name="ci1",
        limits=LIMITS,
        vcpus=2,
        memory_mib=768,
        pool="default",
        disk_volume="ci1.qcow2",
        seed_volume="ci1-seed.iso",
        network="default",
    )
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu" and root.findtext("name") == "ci1"
    assert root.findtext("vcpu") == "2" and root.findtext("memory") == "768"
    assert root.find("cpu").get("mode") == "maximum"  # type: ignore[union-attr]
    disk, cdrom = root.findall("devices/disk")
    assert disk.get("device") == "disk" and disk.find("source").attrib == {  # type: ignore[union-attr]
        "pool": "default",
        "volume": "ci1.qcow2",
    }
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}  # type: ignore[union-attr]
    assert cdrom.get("device") == "cdrom" and cdrom.find("readonly") is not None
    assert cdrom.find("source").get("volume") == "ci1-seed.iso"  # type: ignore[union-attr]
    assert cdrom.find("target").attrib == {"dev": "sda", "bus": "sata"}  # type: ignore[union-attr]
    nic = root.find("devices/interface")
    assert nic is not None and nic.get("type") == "network"
    assert nic.find("source").get("network") == "default"  # type: ignore[union-attr]
    assert nic.find("model").get("type") == "virtio"  # type: ignore[union-attr]
    assert root.find("devices/serial[@type='pty']") is not None
    assert root.find("devices/memballoon").get("model") == "virtio"  # type: ignore[union-attr]
    # no sata on the host: ide; a bridge instead of a network
    ide = HostLimits("kvm", "x86_64", 8, 8192, frozenset({"ide", "virtio"}))
    root = ET.fromstring(
        image_domain_xml(
            name="c",
            limits=ide,
            vcpus=1,
            memory_mib=512,
            pool="p",
            disk_volume="c.qcow2",
            seed_volume="c-seed.iso",
            network="bridge:br0",
        )
    )
    assert root.find("devices/disk[@device='cdrom']/target").attrib == {"dev": "hda", "bus": "ide"}  # type: ignore[union-attr]
    assert root.find("devices/interface[@type='bridge']/source").get("bridge") == "br0"  # type: ignore[union-attr]
    assert root.find("cpu") is None  # host-model not offered


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "a name for the new VM is needed"),
        ({"name": "a/b"}, "not a usable VM name"),
        ({"name": "-x"}, "not a usable VM name"),
        ({"name": "x" * 65}, "not a usable VM name"),
        ({"vcpus": 0}, r"vcpus 0 is out of range \(between 1 and 4096\)"),
        ({"vcpus": True}, "vcpus must be a whole number"),
        ({"memory_mib": 16}, r"memory \(MiB\) must be >= 32"),
        ({"memory_mib": "512"}, "must be a whole number"),
        ({"disk_gib": 0}, r"disk \(GiB\) 0 is out of range"),
        ({"image": ""}, "give a volume name, or POOL/VOLUME"),
        ({"image": "a/b/c"}, "give a volume name, or POOL/VOLUME"),
        ({"network": ""}, "a network is needed"),
        ({"domain_type": "xen"}, "kvm or qemu"),
        ({"name": "under_score"}, "not a valid host name for the guest: give a hostname"),
        ({"hostname": "bad_host"}, "not a valid host name"),
        ({"user": "Bad User"}, "not a valid user name"),
        ({"ssh_keys": "ssh-ed25519 AAAA x"}, "ssh_keys is a list"),
        ({"ssh_keys": ["nope"]}, "not an SSH public key"),
        ({"user_data": "packages: []\n"}, "must start with '#cloud-config'"),
    ],
)
def test_image_refusals(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"name": "ci1", "image": "img.qcow2", **kwargs}
    why = image_refusal(**args)
    assert why is not None and re.search(message, why), why


def test_good_image_arguments_pass() -> None:
    assert image_refusal(name="ci1", image="default/img.qcow2") is None
    assert image_refusal(name="under_score", image="img", hostname="ok-host", user="ops") is None
    assert name_refusal("web-01.prod") is None
    assert size_refusal(None, None) is None and size_refusal(2, 2048) is None


def test_create_is_registered_for_shut_off_templates_only() -> None:
    act = ACTIONS["create"]
    assert act.states == frozenset({"shutoff"})
    assert act.timeout >= 3600 and not act.bulk and act.mutates
