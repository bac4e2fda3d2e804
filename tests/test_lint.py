"""Fleet lint's rules on recorded domain XML (tests/data/lint-clean.xml and variations of it): a clean VM
raises nothing, each deliberate misconfiguration raises its own rule and only it, the config switches rules
off and changes their severity, and the `[lint]` table's mistakes are located by file, line and key.

What breaks them: a rule that reads the wrong element or attribute (its variation raises nothing, or the
clean VM raises it), a rule that fires on a neighbour's variation, the config's `off` or `severity` not
applied, or a table error without its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vimtui.core.config.loading import parse_config
from vimtui.core.config.model import ConfigError, LintConfig
from vimtui.core.lint.catalog import RULES
from vimtui.core.lint.facts import CpuFacts, DomainFacts, HostFacts, PoolFacts, SnapshotFacts, VolumeFacts
from vimtui.core.lint.rules import HostInput, lint

CLEAN = (Path(__file__).parent / "data" / "lint-clean.xml").read_text()
NOW = 1_800_000_000.0
DAY = 86400
CONFIG = LintConfig(shared_paths=("/srv/shared",))
CPU = CpuFacts(
    "kvm", "Skylake-Client-IBRS", frozenset({"ss", "vmx"}), frozenset({"Skylake-Client", "Haswell"})
)
IMAGES = PoolFacts(
    "images",
    "dir",
    "/var/lib/libvirt/images",
    True,
    (VolumeFacts("seed.iso", "/var/lib/libvirt/images/seed.iso"),),
)


def domain(xml: str = CLEAN, **kw: object) -> DomainFacts:
    name = re.search(r"<name>(.*?)</name>", xml)
    uuid = re.search(r"<uuid>(.*?)</uuid>", xml)
    args: dict[str, object] = {
        "name": name.group(1) if name else "x",
        "uuid": uuid.group(1) if uuid else "",
        "xml": xml,
        "active": True,
        "autostart": True,
    }
    args.update(kw)
    return DomainFacts(**args)  # type: ignore[arg-type]


def host(name: str, *domains: DomainFacts, group: str = "dc1", **kw: object) -> HostInput:
    args: dict[str, object] = {
        "libvirt_version": 9_000_000,
        "cpus": 8,
        "memory_kib": 16 * 2**20,
        "domains": domains,
        "pools": (IMAGES,) if domains else (),  # seed.iso is used by the clean VM
        "cpu": (CPU,),
    }
    args.update(kw)
    return HostInput(name, group, HostFacts(**args))  # type: ignore[arg-type]


def rules_of(*hosts: HostInput, config: LintConfig = CONFIG) -> list[tuple[str, str, str]]:
    return [(f.rule, f.where, f.subject) for f in lint(hosts, config, NOW)]


def test_a_clean_vm_on_a_host_with_a_peer_raises_nothing() -> None:
    assert rules_of(host("a", domain()), host("b")) == []


def test_every_rule_is_in_the_catalog_with_a_known_severity() -> None:
    assert {r.severity for r in RULES.values()} <= {"info", "warning", "error"}


VARIATIONS = [
    (
        "open-display",
        (
            "listen='127.0.0.1'>\n      <listen type='address' address='127.0.0.1'/>",
            "listen='0.0.0.0'>\n      <listen type='address' address='0.0.0.0'/>",
        ),
        "vnc",
    ),
    (
        "open-display",
        ("<listen type='address' address='127.0.0.1'/>", "<listen type='network' network='lan'/>"),
        "vnc",
    ),
    ("no-agent", ("org.qemu.guest_agent.0", "org.example.other"), ""),
    ("unsafe-cache", ("type='qcow2'/>", "type='qcow2' cache='unsafe'/>"), "vda"),
    ("raw-disk", ("type='qcow2'/>", "type='raw'/>"), "vda"),
    (
        "cpu-migration",
        ("<cpu mode='host-model' check='partial'/>", "<cpu mode='host-passthrough'/>"),
        "host-passthrough",
    ),
    (
        "cpu-migration",
        (
            "<cpu mode='host-model' check='partial'/>",
            "<cpu mode='custom'><model>Icelake-Server</model></cpu>",
        ),
        "custom",
    ),
    ("local-disk", ("/srv/shared/clean.qcow2", "/var/lib/libvirt/images/clean.qcow2"), "vda"),
    ("critical-autostart", None, ""),
    ("no-memory-stats", ("<stats period='10'/>", ""), ""),
    ("no-memory-stats", ("<memballoon model='virtio'>", "<memballoon model='none'>"), ""),
]


@pytest.mark.parametrize(("rule", "edit", "subject"), VARIATIONS, ids=[v[0] for v in VARIATIONS])
def test_each_misconfiguration_raises_its_rule_and_only_it(
    rule: str, edit: tuple[str, str] | None, subject: str
) -> None:
    xml = CLEAN
    autostart = True
    if edit is None:
        autostart = False
    else:
        assert edit[0] in xml
        xml = xml.replace(edit[0], edit[1])
    found = rules_of(host("a", domain(xml, autostart=autostart)), host("b"))
    assert found == [(rule, "a/clean", subject)]


def test_a_password_or_a_socket_makes_a_display_safe_and_a_read_only_read_says_it_is_unsure() -> None:
    bare = CLEAN.replace("listen='127.0.0.1'>", "listen='0.0.0.0'>").replace(
        "address='127.0.0.1'", "address='0.0.0.0'"
    )
    with_password = bare.replace("<graphics type='vnc'", "<graphics type='vnc' passwd='x'")
    assert rules_of(host("a", domain(with_password)), host("b")) == []
    (finding,) = lint([host("a", domain(bare, secure=False)), host("b")], CONFIG, NOW)
    assert finding.rule == "open-display" and "not readable" in finding.reason


def test_a_cpu_the_peers_offer_and_a_lone_host_raise_nothing() -> None:
    custom = CLEAN.replace(
        "<cpu mode='host-model' check='partial'/>", "<cpu mode='custom'><model>Haswell</model></cpu>"
    )
    assert rules_of(host("a", domain(custom)), host("b")) == []
    passthrough = CLEAN.replace("<cpu mode='host-model' check='partial'/>", "<cpu mode='host-passthrough'/>")
    local = passthrough.replace("/srv/shared/", "/var/lib/libvirt/images/")
    assert rules_of(host("a", domain(local)), host("b", group="dc2")) == []  # no peer: nowhere to migrate
    weaker = CpuFacts("kvm", "Haswell", frozenset({"ss"}), frozenset({"Haswell"}))
    assert rules_of(host("a", domain()), host("b", cpu=(weaker,))) == [
        ("cpu-migration", "a/clean", "host-model")
    ]


def test_disks_on_a_network_pool_are_shared() -> None:
    nfs = PoolFacts("nfs", "netfs", "/mnt/nfs", True, (VolumeFacts("clean.qcow2", "/mnt/nfs/clean.qcow2"),))
    xml = CLEAN.replace(
        "<source file='/srv/shared/clean.qcow2'/>", "<source pool='nfs' volume='clean.qcow2'/>"
    ).replace("<disk type='file' device='disk'>", "<disk type='volume' device='disk'>")
    assert rules_of(host("a", domain(xml), pools=(IMAGES, nfs)), host("b")) == []
    on_path = CLEAN.replace("/srv/shared/clean.qcow2", "/mnt/nfs/clean.qcow2")
    assert rules_of(host("a", domain(on_path), pools=(IMAGES, nfs)), host("b")) == []


def test_old_snapshots_and_long_chains() -> None:
    chain = tuple(SnapshotFacts(f"s{i}", f"s{i - 1}" if i else None, int(NOW) - DAY) for i in range(6))
    old = (
        SnapshotFacts("ancient", None, int(NOW) - 40 * DAY),
        SnapshotFacts("older", None, int(NOW) - 31 * DAY),
    )
    found = lint([host("a", domain(snapshots=chain + old)), host("b")], CONFIG, NOW)
    assert [(f.rule, f.subject) for f in found] == [("old-snapshot", "ancient"), ("snapshot-chain", "s5")]
    assert "40 days old and 1 more" in found[0].reason and "chain of 6" in found[1].reason
    tuned = LintConfig(shared_paths=("/srv/shared",), snapshot_max_chain=6, snapshot_max_age_days=41)
    assert rules_of(host("a", domain(snapshots=chain + old)), host("b"), config=tuned) == []


def test_overcommit_counts_running_vms_only() -> None:
    big = CLEAN.replace("<vcpu placement='static'>2</vcpu>", "<vcpu placement='static' current='6'>8</vcpu>")
    big = big.replace("1048576", str(10 * 2**20))
    second = big.replace("clean", "clean2").replace("5501", "5502").replace("11:00:01", "11:00:02")
    assert rules_of(host("a", domain(big), domain(second, active=False)), host("b")) == []
    found = rules_of(host("a", domain(big), domain(second)), host("b"))
    assert found == [("memory-overcommit", "a", "")]  # 12 vCPUs on 8 CPUs is within 4.0; 20 GiB on 16 is not
    tight = LintConfig(shared_paths=("/srv/shared",), cpu_overcommit=1.0)
    assert sorted(rules_of(host("a", domain(big), domain(second)), host("b"), config=tight)) == [
        ("cpu-overcommit", "a", ""),
        ("memory-overcommit", "a", ""),
    ]


def test_orphaned_volumes_leave_out_used_files_and_their_backing_files() -> None:
    pool = PoolFacts(
        "images",
        "dir",
        "/var/lib/libvirt/images",
        True,
        (
            VolumeFacts("seed.iso", "/var/lib/libvirt/images/seed.iso"),
            VolumeFacts("base.qcow2", "/var/lib/libvirt/images/base.qcow2"),
            VolumeFacts(
                "top.qcow2", "/var/lib/libvirt/images/top.qcow2", backing="/var/lib/libvirt/images/base.qcow2"
            ),
            VolumeFacts("lost.qcow2", "/var/lib/libvirt/images/lost.qcow2"),
        ),
    )
    xml = CLEAN.replace(
        "<source file='/srv/shared/clean.qcow2'/>", "<source pool='images' volume='top.qcow2'/>"
    ).replace("<disk type='file' device='disk'>", "<disk type='volume' device='disk'>")
    config = LintConfig(shared_paths=("/srv/shared",), off=("local-disk",))
    found = rules_of(host("a", domain(xml), pools=(pool,)), host("b"), config=config)
    assert found == [("orphan-volume", "a", "/var/lib/libvirt/images/lost.qcow2")]


def test_the_same_mac_uuid_or_ip_on_two_vms_across_hosts() -> None:
    copy = CLEAN.replace("<name>clean</name>", "<name>copy</name>").replace("5501", "5599")
    found = rules_of(
        host("a", domain(addresses=("10.0.0.5",))), host("b", domain(copy, addresses=("10.0.0.5",)))
    )
    assert found == [
        ("duplicate-ip", "a/clean", "10.0.0.5"),
        ("duplicate-mac", "a/clean", "52:54:00:11:00:01"),
        ("duplicate-ip", "b/copy", "10.0.0.5"),
        ("duplicate-mac", "b/copy", "52:54:00:11:00:01"),
    ]
    same_uuid = CLEAN.replace("52:54:00:11:00:01", "52:54:00:11:00:99")
    found = rules_of(host("a", domain()), host("b", domain(same_uuid)))
    assert found == [
        ("duplicate-uuid", "a/clean", "11111111-2222-4333-8444-555555555501"),
        ("duplicate-uuid", "b/clean", "11111111-2222-4333-8444-555555555501"),
    ]


def test_old_libvirt_against_the_configured_minimum() -> None:
    assert rules_of(host("a", libvirt_version=7_009_000)) == [("old-libvirt", "a", "7.9.0")]
    assert rules_of(host("a", libvirt_version=7_009_000), config=LintConfig(min_libvirt="7.9")) == []


def test_rules_switched_off_and_severities_changed_by_the_config() -> None:
    xml = CLEAN.replace("org.qemu.guest_agent.0", "x").replace("type='qcow2'/>", "type='raw'/>")
    config = parse_config(
        '[lint]\noff = ["raw-disk"]\nshared_paths = ["/srv/shared"]\n[lint.severity]\nno-agent = "error"\n'
    ).lint
    found = lint([host("a", domain(xml)), host("b")], config, NOW)
    assert [(f.rule, f.severity, f.fixable) for f in found] == [("no-agent", "error", True)]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            '[lint]\noff = ["raw-dsk"]\n',
            "<string>:2: lint.off[0]: unknown lint rule 'raw-dsk' (did you mean 'raw-disk'?)",
        ),
        ("[lint]\n\nsnapshot_max_chain = 0\n", "<string>:3: lint.snapshot_max_chain: must be >= 1"),
        (
            '[lint]\nmin_libvirt = "nine"\n',
            '<string>:2: lint.min_libvirt: expected a libvirt version such as "8.0.0"',
        ),
        (
            "[lint]\ncpu_overcommit = true\n",
            "<string>:2: lint.cpu_overcommit: expected a number, got a boolean",
        ),
        ('[lint.severity]\nno-agent = "fatal"\n', "<string>:2: lint.severity.no-agent: expected one of"),
        ("[lint]\nsnapshots = 3\n", "<string>:2: lint.snapshots: unknown key"),
        (
            '[lint]\nshared_paths = ["relative"]\n',
            "<string>:2: lint.shared_paths: expected an array of absolute",
        ),
    ],
)
def test_lint_table_errors_name_the_line_and_key(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert str(exc.value).startswith(where)


def test_a_finding_fixed_in_the_definition_says_it_goes_at_the_next_start() -> None:
    running = CLEAN.replace("org.qemu.guest_agent.0", "org.example.other").replace(
        "type='qcow2'/>", "type='qcow2' cache='unsafe'/>"
    )
    defined = CLEAN.replace("type='qcow2'/>", "type='qcow2' cache='unsafe'/>")  # the agent added for later
    found = lint([host("a", domain(running, config_xml=defined)), host("b")], CONFIG, NOW)
    assert [(f.rule, f.fixable) for f in found] == [("unsafe-cache", True), ("no-agent", False)]
    assert "gone at its next start" in found[1].reason and "restart" in found[1].fix
    assert "next start" not in found[0].reason
