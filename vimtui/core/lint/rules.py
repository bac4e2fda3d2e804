"""Fleet lint's rules: pure functions of the facts collected from each host (vimtui.core.lint.facts) and
the `[lint]` config, giving findings with a severity, a short reason and how to fix it.

Per VM: what its own definition says (display, agent, disks, balloon, tags), what its host's peers in its
group lack (CPU, shared storage), its snapshots. Per host: overcommit, orphaned volumes, libvirt's age.
Across the fleet: the same MAC, UUID or IP on two VMs (clones made outside vimtui).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from vimtui.core.config.model import LintConfig
from vimtui.core.lint.catalog import RULES, format_version, parse_version, rank
from vimtui.core.lint.domview import DomainView, view
from vimtui.core.lint.facts import DomainFacts, HostFacts, PoolFacts

SHARED_POOL_TYPES = frozenset(
    {"netfs", "rbd", "gluster", "iscsi", "iscsi-direct", "sheepdog", "vstorage", "mpath"}
)
"""Pool types whose volumes every host that defines the pool reaches as the same storage."""
DAY = 86400
RESTART = "restart it (shut down, then start: a reboot keeps what runs)"


@dataclass(frozen=True, slots=True)
class HostInput:
    name: str
    group: str
    facts: HostFacts


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: str
    host: str
    vm: str
    """"" for a finding about the host."""
    uuid: str
    subject: str
    """What in it (a disk, a display, a volume's path), or ""."""
    reason: str
    fix: str
    """How to put it right, in words."""
    fixable: bool = False
    """vm.lint-fix can do it."""

    @property
    def where(self) -> str:
        return f"{self.host}/{self.vm}" if self.vm else self.host


@dataclass(frozen=True, slots=True)
class _Vm:
    host: HostInput
    facts: DomainFacts
    view: DomainView
    config: DomainView | None = None
    """Its definition for the next start, where it differs from what runs."""


def lint(hosts: Sequence[HostInput], config: LintConfig, now: float) -> list[Finding]:
    """Every finding of the rules switched on, with the config's severities, worst first."""
    vms: list[_Vm] = []
    for h in hosts:
        for d in h.facts.domains:
            try:
                vms.append(_Vm(h, d, view(d.xml), view(d.config_xml) if d.config_xml else None))
            except (ET.ParseError, ValueError):
                continue  # a definition that cannot be read is not linted
    peers = {h.name: [p for p in hosts if p.group == h.group and p.name != h.name] for h in hosts}
    found: list[Finding] = []
    for vm in vms:
        found.extend(_pending(vm, peers[vm.host.name], config, now))
    for h in hosts:
        found.extend(_host_findings(h, [v for v in vms if v.host is h], config))
    found.extend(_duplicates(vms))
    off = set(config.off)
    levels = dict(config.severity)
    out = [
        replace(
            f, severity=levels.get(f.rule, f.severity), fixable=RULES[f.rule].fixable and f.fix != RESTART
        )
        for f in found
        if f.rule not in off
    ]
    out.sort(key=lambda f: (-rank(f.severity), f.host, f.vm, f.rule, f.subject))
    return out


def _pending(vm: _Vm, peers: list[HostInput], config: LintConfig, now: float) -> list[Finding]:
    """What runs, judged; a finding its definition no longer has is said to be fixed at the next start
    (and offers no fix again)."""
    live = list(_vm_findings(vm, peers, config, now))
    if vm.config is None:
        return live
    nextboot = {(f.rule, f.subject) for f in _vm_findings(replace(vm, view=vm.config), peers, config, now)}
    return [
        f
        if (f.rule, f.subject) in nextboot
        else replace(f, reason=f"{f.reason} (fixed in its definition: gone at its next start)", fix=RESTART)
        for f in live
    ]


def _finding(rule: str, vm: _Vm, subject: str, reason: str, fix: str) -> Finding:
    return Finding(
        rule, RULES[rule].severity, vm.host.name, vm.facts.name, vm.facts.uuid, subject, reason, fix
    )


def _vm_findings(vm: _Vm, peers: list[HostInput], config: LintConfig, now: float) -> Iterator[Finding]:
    v, d = vm.view, vm.facts
    for disp in v.displays:
        if disp.listen is not None and not disp.password:
            unsure = "" if d.secure else " (no password seen: secrets are not readable over this connection)"
            yield _finding(
                "open-display",
                vm,
                disp.type,
                f"{disp.type} display listens on {disp.listen} without a password{unsure}",
                "listen on 127.0.0.1 and reach it through SSH (fix: at its next start), or set a password",
            )
    if not v.agent:
        yield _finding(
            "no-agent",
            vm,
            "",
            "no guest agent channel: no addresses from the guest, no quiesced snapshots, no agent shutdown",
            "add the org.qemu.guest_agent.0 channel (fix: at its next start) and run qemu-guest-agent inside",
        )
    for disk in v.disks:
        if disk.cache == "unsafe":
            yield _finding(
                "unsafe-cache",
                vm,
                disk.target,
                f"disk {disk.target} has cache=unsafe: a host crash loses the guest's flushed writes",
                "use the default cache (writeback) or cache=none (fix: the default, at its next start)",
            )
        if disk.format == "raw" and not disk.readonly:
            yield _finding(
                "raw-disk",
                vm,
                disk.target,
                f"disk {disk.target} is raw: no internal snapshots",
                "convert it to qcow2 while the VM is off (qemu-img convert), or take disk-only snapshots",
            )
    yield from _migration(vm, peers, config)
    yield from _snapshots(vm, config, now)
    if config.critical_tag in v.tags and not d.autostart:
        yield _finding(
            "critical-autostart",
            vm,
            "",
            f"tagged {config.critical_tag} but does not start with its host",
            "switch autostart on (fix)",
        )
    if v.balloon == "none" or (v.balloon is None and v.type != "test"):
        yield _finding(
            "no-memory-stats",
            vm,
            "",
            "no memory balloon: memory use inside the guest is unknown",
            "add a virtio memballoon with a statistics period (at its next start)",
        )
    elif v.balloon is not None and v.stats_period <= 0:
        yield _finding(
            "no-memory-stats",
            vm,
            "",
            "no memory statistics period: memory use inside the guest is unknown",
            f"set the balloon's statistics period (fix: every {config.memory_stats_period} s)",
        )


def _migration(vm: _Vm, peers: list[HostInput], config: LintConfig) -> Iterator[Finding]:
    if not peers:
        return
    v = vm.view
    names = ", ".join(p.name for p in peers)
    if v.cpu_mode in ("host-passthrough", "maximum"):
        yield _finding(
            "cpu-migration",
            vm,
            v.cpu_mode,
            f"CPU mode {v.cpu_mode}: live migration to {names} only onto an identical CPU and microcode",
            "use host-model, or a named CPU model every host of the group offers",
        )
    elif v.cpu_mode in ("host-model", "custom"):
        own = next((c for c in vm.host.facts.cpu if c.virt_type == v.type), None)
        lacking = []
        for p in peers:
            theirs = next((c for c in p.facts.cpu if c.virt_type == v.type), None)
            if theirs is None:
                continue  # that host cannot say (or does not offer this virtualisation type at all)
            if v.cpu_mode == "custom" and v.cpu_model and v.cpu_model not in theirs.custom_models:
                lacking.append(p.name)
            elif v.cpu_mode == "host-model" and own is not None and own.host_model:
                model_ok = own.host_model == theirs.host_model or own.host_model in theirs.custom_models
                if not model_ok or not own.host_model_features <= theirs.host_model_features:
                    lacking.append(p.name)
        if lacking:
            model = v.cpu_model if v.cpu_mode == "custom" else (own.host_model if own else "?")
            yield _finding(
                "cpu-migration",
                vm,
                v.cpu_mode,
                f"CPU {v.cpu_mode} ({model}) is not offered by {', '.join(lacking)}: no live migration there",
                "use a named CPU model every host of the group offers",
            )
    pools = {p.name: p for p in vm.host.facts.pools}
    for disk in v.disks:
        if not _shared(disk.type, disk.path, disk.pool, pools, config):
            where = disk.path or f"{disk.pool}/{disk.volume}"
            yield _finding(
                "local-disk",
                vm,
                disk.target,
                f"disk {disk.target} ({where}) is not on storage shared with {names}: migration must copy it",
                "put it on shared storage (a netfs, rbd, iscsi ... pool, or a path in [lint] shared_paths)",
            )


def _shared(
    kind: str, path: str | None, pool: str | None, pools: dict[str, PoolFacts], config: LintConfig
) -> bool:
    if kind == "network":
        return True
    if pool is not None:
        p = pools.get(pool)
        return p is not None and (p.type in SHARED_POOL_TYPES or _under(p.path, config.shared_paths))
    if path is None:
        return True  # nothing to copy
    if _under(path, config.shared_paths):
        return True
    return any(
        p.type in SHARED_POOL_TYPES and any(vol.path == path for vol in p.volumes) for p in pools.values()
    )


def _under(path: str | None, roots: Sequence[str]) -> bool:
    if path is None:
        return False
    return any(path == r.rstrip("/") or path.startswith(r.rstrip("/") + "/") for r in roots)


def _snapshots(vm: _Vm, config: LintConfig, now: float) -> Iterator[Finding]:
    snaps = vm.facts.snapshots
    if not snaps:
        return
    limit = now - config.snapshot_max_age_days * DAY
    old = sorted((s for s in snaps if 0 < s.created < limit), key=lambda s: s.created)
    if old:
        days = int((now - old[0].created) // DAY)
        more = f" and {len(old) - 1} more" if len(old) > 1 else ""
        yield _finding(
            "old-snapshot",
            vm,
            old[0].name,
            f"snapshot {old[0].name!r} is {days} days old{more} (limit {config.snapshot_max_age_days}): "
            "its disk space keeps growing",
            "delete the snapshots no longer needed (vm snapshot-delete)",
        )
    parent = {s.name: s.parent for s in snaps}
    deepest, leaf = 0, ""
    for name in parent:
        depth, seen = 0, set[str]()
        at: str | None = name
        while at is not None and at in parent and at not in seen:
            seen.add(at)
            depth += 1
            at = parent[at]
        if depth > deepest:
            deepest, leaf = depth, name
    if deepest > config.snapshot_max_chain:
        yield _finding(
            "snapshot-chain",
            vm,
            leaf,
            f"a chain of {deepest} snapshots ending at {leaf!r} (limit {config.snapshot_max_chain}): "
            "every read may walk it",
            "delete snapshots in the chain (vm snapshot-delete)",
        )


def _host_finding(rule: str, h: HostInput, subject: str, reason: str, fix: str) -> Finding:
    return Finding(rule, RULES[rule].severity, h.name, "", "", subject, reason, fix)


def _host_findings(h: HostInput, vms: list[_Vm], config: LintConfig) -> Iterator[Finding]:
    f = h.facts
    running = [v for v in vms if v.facts.active]
    vcpus = sum(v.view.vcpus for v in running)
    if f.cpus and vcpus / f.cpus > config.cpu_overcommit:
        yield _host_finding(
            "cpu-overcommit",
            h,
            "",
            f"{vcpus} vCPUs running on {f.cpus} CPUs: {vcpus / f.cpus:.2f} per CPU "
            f"(limit {config.cpu_overcommit:g})",
            "move VMs to another host or give them fewer vCPUs",
        )
    memory = sum(v.view.memory_kib for v in running)
    if f.memory_kib and memory / f.memory_kib > config.memory_overcommit:
        yield _host_finding(
            "memory-overcommit",
            h,
            "",
            f"{memory // 1024} MiB of running VMs on {f.memory_kib // 1024} MiB: "
            f"{memory / f.memory_kib:.2f} (limit {config.memory_overcommit:g})",
            "move VMs to another host or give them less memory",
        )
    minimum = parse_version(config.min_libvirt) or 0
    if f.libvirt_version and f.libvirt_version < minimum:
        yield _host_finding(
            "old-libvirt",
            h,
            format_version(f.libvirt_version),
            f"libvirt {format_version(f.libvirt_version)} is older than {config.min_libvirt}",
            "upgrade libvirt on this host",
        )
    yield from _orphans(h, vms)


def _orphans(h: HostInput, vms: list[_Vm]) -> Iterator[Finding]:
    by_name = {(p.name, vol.name): vol.path for p in h.facts.pools for vol in p.volumes}
    used: set[str] = set()
    for v in vms:
        used.update(v.view.other_files)
        for disk in v.view.disks:
            used.update(disk.backing)
            if disk.path:
                used.add(disk.path)
            elif disk.pool and disk.volume and (path := by_name.get((disk.pool, disk.volume))):
                used.add(path)
    backing = {vol.path: vol.backing for p in h.facts.pools for vol in p.volumes}
    todo = list(used)
    while todo:  # a used overlay's backing files are used too
        b = backing.get(todo.pop())
        if b and b not in used:
            used.add(b)
            todo.append(b)
    for pool in h.facts.pools:
        for vol in pool.volumes:
            if vol.kind in ("dir", "netdir") or vol.path in used:
                continue
            yield _host_finding(
                "orphan-volume",
                h,
                vol.path,
                f"volume {pool.name}/{vol.name} is used by no VM defined on {h.name}",
                "delete it if nothing else needs it (an image kept on purpose can stay: [lint] off)",
            )


def _duplicates(vms: list[_Vm]) -> Iterator[Finding]:
    keys: dict[tuple[str, str], list[_Vm]] = {}
    for v in vms:
        for mac in set(v.view.macs):
            keys.setdefault(("duplicate-mac", mac), []).append(v)
        keys.setdefault(("duplicate-uuid", v.facts.uuid.lower()), []).append(v)
        for ip in set(v.facts.addresses):
            if not ip.startswith(("127.", "fe80:", "::1")):
                keys.setdefault(("duplicate-ip", ip), []).append(v)
    what = {"duplicate-mac": "MAC", "duplicate-uuid": "UUID", "duplicate-ip": "address"}
    for (rule, value), holders in keys.items():
        if len(holders) < 2:
            continue
        if rule == "duplicate-uuid" and len({v.host.name for v in holders}) < 2:
            continue  # one host never holds one UUID twice
        for v in holders:
            others = ", ".join(o.host.name + "/" + o.facts.name for o in holders if o is not v)
            yield _finding(
                rule,
                v,
                value,
                f"{what[rule]} {value} is also on {others}",
                "give one of them a new "
                + {
                    "duplicate-mac": "MAC",
                    "duplicate-uuid": "UUID (define a copy without it)",
                    "duplicate-ip": "address",
                }[rule],
            )
