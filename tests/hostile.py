"""A hostile fleet: a test:/// host whose names, descriptions, paths, pools, networks and snapshots carry
markup, links, escape sequences, C1 controls, bidi overrides, wide characters and a 300-character name,
and a host whose status message (libvirt's error) carries an OSC title sequence and a screen clear.

`write_fleet(dir)` writes the XML and a config for both hosts; the strings are here so tests can assert
that each is shown as it is (neutralised by vimtui.core.text.shown), never run as markup or escapes.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

BLACK = "aaa[on black][black]"
"""Markup that, if parsed, paints everything after it black on black."""
LINK = "[link=https:evil.example]click"
CLICK = "[@click=app.quit]q"
C1 = "c1\x85\x9b31mred"
BIDI = "evil\u202egpj.exe"
WIDE = "数据库サーバー"
LONG = "L" * 299 + "Z"
VM_NAMES = (BLACK, LINK, CLICK, C1, BIDI, WIDE, LONG)
"""libvirt refuses a "/" in a name: the closing tags are in descriptions, paths and messages."""

DESCRIPTION = "[/x] closes nothing [b]bold[/b] \x9b2J [link=https://evil.example]here[/link] \u202eabc"
TITLE = "title [/x] \u202e"
DISK = "/var/lib/[/x]/[red]disk \x85.qcow2"
NETWORK = "net[b][on black]"
POOL = "pool[red]\x9b"
POOL_PATH = "/srv/[/x]/[red]pool\u202e"
SNAPSHOT = "snap[on black]\x85"
SNAPSHOT_DESCRIPTION = "sd [b]x[/b] \u202e[link=https://evil.example]y[/link]"

ESCAPES = "\x1b]0;owned\x07\x1b[2J[/x][reverse]"
"""Set the terminal's title, clear the screen, and markup: in a path, so it comes back in libvirt's error."""

HOSTILE_HOST = "kvm-[on black]x[black]"
"""A host name (from the config): markup is allowed in names, control characters are not."""
DOWN_HOST = "down-[b]"
GROUP = "dc[/x]"
"""Two groups ("dc[" and "x]") whose names, put together as markup, close a tag never opened."""


def _vm(i: int, name: str) -> str:
    dom = "<domain type='test'><name>snapdom</name><memory>1024</memory><os><type>hvm</type></os></domain>"
    return f"""  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>{escape(name)}</name><uuid>00000000-0000-4000-8000-0000000c00{i:02d}</uuid>
    <title>{escape(TITLE)}</title><description>{escape(DESCRIPTION)}</description>
    <memory unit='MiB'>512</memory><currentMemory unit='MiB'>512</currentMemory><vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
    <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{escape(DISK)}'/>
    <target dev='vda' bus='virtio'/></disk><interface type='network'><mac address='52:54:00:00:0c:{i:02x}'/>
    <source network='{escape(NETWORK)}'/><model type='virtio'/></interface></devices>
    <test:runstate>1</test:runstate>
    <test:domainsnapshot><name>{escape(SNAPSHOT)}</name><description>{escape(SNAPSHOT_DESCRIPTION)}</description>
    <state>running</state><creationTime>1700000000</creationTime>{dom}<active>1</active></test:domainsnapshot>
  </domain>"""


def _xml_text(text: str) -> str:
    """XML 1.0 takes C1 controls only as character references."""
    return "".join(f"&#x{ord(c):x};" if 0x7F <= ord(c) <= 0x9F else c for c in text)


def fleet_xml() -> str:
    parts = [
        "<node>",
        "  <cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads><active>4</active>"
        "<mhz>2400</mhz><model>x86_64</model></cpu><memory>16777216</memory>",
        f"  <network><name>{escape(NETWORK)}</name><uuid>00000000-0000-4000-8000-0000000b0001</uuid>"
        "<bridge name='virbr9'/><forward/><ip address='192.168.9.1' netmask='255.255.255.0'/></network>",
        f"  <pool type='dir'><name>{escape(POOL)}</name><uuid>00000000-0000-4000-8000-0000000b0002</uuid>"
        "<capacity unit='GiB'>10</capacity><allocation unit='GiB'>1</allocation>"
        f"<available unit='GiB'>9</available><target><path>{escape(POOL_PATH)}</path></target></pool>",
        *(_vm(i, name) for i, name in enumerate(VM_NAMES)),
        "</node>",
    ]
    return _xml_text("\n".join(parts)) + "\n"


def _toml(text: str) -> str:
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text) + '"'


def write_fleet(directory: Path) -> Path:
    """The hostile XML and a config naming it (and a host that cannot open): returns the config's path."""
    xml = directory / "hostile.xml"
    xml.write_text(fleet_xml())
    missing = directory / f"missing{ESCAPES}.xml"
    config = directory / "hostile.toml"
    config.write_text(
        "[defaults]\ninterval = 60.0\n"
        f"[[hosts]]\nname = {_toml(HOSTILE_HOST)}\nuri = {_toml('test://' + str(xml))}\n"
        f"group = {_toml(GROUP)}\n"
        f"[[hosts]]\nname = {_toml(DOWN_HOST)}\nuri = {_toml('test://' + str(missing))}\n"
    )
    return config
