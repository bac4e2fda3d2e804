"""The config file's model: typed sections whose shapes and numeric bounds msgspec checks (unknown keys
refused, every number finite and within its bounds), the whole `Config`, and `ConfigError`, which names
the file, the line and the dotted key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from vimtui.core.monitor.alerts import Rule, effective_rules
from vimtui.core.profiles import Profile

APP = "vimtui"
HOUR = 3600
DAY = 86400
YEARS = 10 * 365 * DAY
LIBVIRT_KEEPALIVE_MAX = 2_147_483
"""The longest keepalive interval libvirt takes (virKeepAliveStart refuses more than INT_MAX / 1000 s)."""
BETWEEN = {"message": "between"}
"""A bound whose breach is said as "must be between LOW and HIGH" (Meta extra)."""


class Defaults(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings that apply to every host (the `[defaults]` table)."""

    interval: Annotated[float, Meta(gt=0, le=DAY)] = 2.0
    """Seconds between two polls of a host; must be > 0."""
    call_timeout: Annotated[float, Meta(gt=0, le=HOUR)] = 10.0
    """Deadline of one libvirt call, in seconds; a host that misses it is marked degraded."""
    connect_timeout: Annotated[float, Meta(gt=0, le=HOUR)] = 10.0
    """Deadline for reaching a host (SSH handshake plus libvirt open), in seconds."""
    keepalive_interval: Annotated[float, Meta(gt=0, le=LIBVIRT_KEEPALIVE_MAX)] = 3.0
    """Seconds between SSH keepalive probes."""
    keepalive_count_max: Annotated[int, Meta(ge=1, le=1000)] = 2
    """Unanswered keepalive probes after which the SSH connection is considered dead."""
    host_stats_every: Annotated[int, Meta(ge=1, le=10_000)] = 10
    """Read the hosts' own CPU and memory counters every Nth poll (1 = every poll). They are two calls on
    top of the one bulk call for all VMs, and each costs this process about a third of what the bulk call
    for 100 VMs costs (the SSH round trip, not the data); every 10th poll is every 20 s at the default
    interval: vCenter's real-time charts' interval. The VMs' own figures are read at every poll."""
    theme: str = "dark"
    """Name of the UI theme (shipped: dark, light, high-contrast, ansi16; or one in <config dir>/themes)."""
    max_fps: Annotated[int, Meta(ge=1, le=120, extra=BETWEEN)] = 30
    """Frame cap of the screen; lower it on slow links (e.g. 5)."""
    wall_cycle: Annotated[float, Meta(gt=0, le=DAY)] = 10.0
    """Seconds each group stays on screen in wall mode."""
    evacuate_parallel: Annotated[int, Meta(ge=1, le=64, extra=BETWEEN)] = 2
    """Moves a host evacuation runs at once (each a migration: memory, and disks where not shared, over
    the network; more at once shares the same links)."""


class HistoryConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The `[history]` table: the lasting history (SQLite in the data dir) that graphs beyond 15 minutes
    and reports read, and that a restart keeps."""

    enabled: bool = True
    """Keep it at all (false: graphs show what this run saw, reports have nothing)."""
    fine_step: Annotated[int, Meta(ge=1, le=HOUR)] = 10
    """Seconds per fine sample (average and peak of the polls in it)."""
    fine_keep: Annotated[int, Meta(ge=60, le=YEARS)] = 86400
    """Seconds fine samples are kept (24 h)."""
    coarse_step: Annotated[int, Meta(ge=1, le=DAY)] = 300
    """Seconds per coarse sample, a multiple of fine_step (5 min)."""
    coarse_keep: Annotated[int, Meta(ge=3600, le=YEARS)] = 30 * 86400
    """Seconds coarse samples are kept (30 days): the retention of the history."""
    max_mb: Annotated[int, Meta(ge=1, le=2**20)] = 256
    """Size bound of the database in MiB: past it, the oldest fine samples go first, then coarse ones."""


class HostConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One hypervisor host (one `[[hosts]]` entry)."""

    name: str
    """Display name; required, non-empty, unique across hosts, no "/" and no control characters."""
    address: str = ""
    """SSH address (host name or IP). Without one, `uri` (then required) is opened directly: local or any
    libvirt URI."""
    user: str | None = None
    """SSH user; None lets SSH decide (ssh config, then the local user)."""
    port: Annotated[int, Meta(ge=1, le=65535, extra=BETWEEN)] = 22
    """SSH port, 1..65535."""
    identity: str | None = None
    """Path of an SSH private key; `~` is expanded when used, not when loaded."""
    known_hosts: str | None = None
    """Path of a known_hosts file to check the host key against, instead of the usual ones."""
    uri: str = "qemu:///system"
    """libvirt URI: on the remote host when reached over SSH, opened as is when `address` is empty."""
    group: str = ""
    """Slash-separated place in the host tree, e.g. "dc1/rack3"; empty for the top level."""
    read_only: bool = False
    """Open libvirt read-only: nothing that changes the host is offered (the same as profile = "viewer")."""
    profile: str | None = None
    """What may be done on this host: "viewer", "operator" or "admin" (None: its group's, else the top
    level's). A viewer is connected through libvirt's read-only socket."""
    migration_address: str = ""
    """Address other hosts send a live migration's memory and disks to (e.g. an address on a storage or
    migration network); empty: libvirt's choice (the host's `migration_host`, else its host name)."""


class GroupConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One group of the host tree (a `[groups."dc1/rack3"]` table): it applies to its subgroups too."""

    profile: str | None = None
    """The profile on the group's hosts (one that names its own keeps it; a deeper group's wins)."""


class LintConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The `[lint]` table: fleet lint's rules switched off or tuned (rule ids: vimtui.core.lint.catalog)."""

    off: tuple[str, ...] = ()
    """Rule ids not checked at all, e.g. ["raw-disk", "local-disk"]."""
    severity: tuple[tuple[str, str], ...] = ()
    """`[lint.severity]`: rule id -> "info", "warning" or "error", in place of the rule's own."""
    snapshot_max_age_days: Annotated[int, Meta(ge=1, le=36500)] = 30
    """A snapshot older than this many days is a finding (old-snapshot)."""
    snapshot_max_chain: Annotated[int, Meta(ge=1, le=10_000)] = 5
    """A chain of more snapshots than this, each on the one before, is a finding (snapshot-chain)."""
    cpu_overcommit: Annotated[float, Meta(gt=0, le=1000)] = 4.0
    """vCPUs of the running VMs per host CPU above which a host is a finding (cpu-overcommit)."""
    memory_overcommit: Annotated[float, Meta(gt=0, le=1000)] = 1.0
    """Memory of the running VMs per byte of the host's above which it is a finding (memory-overcommit)."""
    min_libvirt: str = "8.0.0"
    """A host whose libvirt is older is a finding (old-libvirt)."""
    critical_tag: str = "critical"
    """VMs with this tag must start with their host (critical-autostart)."""
    shared_paths: tuple[str, ...] = ()
    """Directories every host of a group sees as the same storage though libvirt cannot tell (a cluster
    file system in a dir pool); network pools (netfs, rbd, gluster, iscsi ...) are shared anyway."""
    memory_stats_period: Annotated[int, Meta(ge=1, le=3600)] = 10
    """Seconds between the balloon's memory statistics that the no-memory-stats fix sets."""


class TenantConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One tenant's quota (a `[tenants.NAME]` table): what all its VMs together may hold. A key left out
    is no limit. Checked before create, clone and resource changes run."""

    vcpus: Annotated[int, Meta(ge=0, le=10**7)] | None = None
    """Virtual CPUs, summed over the tenant's VMs."""
    memory: Annotated[int, Meta(ge=0, le=2**40)] | None = None
    """Memory in MiB (each VM's maximum), summed."""
    vms: Annotated[int, Meta(ge=0, le=10**7)] | None = None
    """How many VMs, running or not."""
    disk: Annotated[int, Meta(ge=0, le=2**40)] | None = None
    """Disk in GiB (the virtual size of each VM's disks), summed."""


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The `[alerts]` table and its `[[alerts.rules]]` entries (see vimtui.core.monitor.alerts)."""

    defaults: bool = True
    """Use the shipped rules (host unreachable, VM crashed, VM paused on I/O error, host memory > 90%);
    a rule below with the same name replaces one (and may give only the keys it changes)."""
    hook: str | tuple[str, ...] = ""
    """Command run for each alert that fires or resolves, with the alert as JSON on stdin: an array is
    run as is (["notify-send-alert", "--urgent"]), a string through /bin/sh. Empty: no hook."""
    hook_timeout: float = 10.0
    """Seconds a hook may run before it is killed (and the kill reported)."""
    rules: tuple[Rule, ...] = ()
    """The `[[alerts.rules]]` entries, in file order."""

    def effective_rules(self) -> tuple[Rule, ...]:
        """The rules in force: defaults (unless disabled) with replacements, then the others."""
        return effective_rules(self.rules, defaults=self.defaults)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole config file."""

    defaults: Defaults = field(default_factory=Defaults)
    """The `[defaults]` table."""
    hosts: tuple[HostConfig, ...] = ()
    """The `[[hosts]]` entries, in file order."""
    path: Path | None = None
    """Where the config was read from; None when no file was read."""
    keys: tuple[tuple[str, str], ...] = ()
    """The `[keys]` table: binding id -> keys (e.g. "vm_table.cursor_down" = "down,j,n"), in file order."""
    key_lines: tuple[int | None, ...] = field(default=(), compare=False)
    """The line of each entry of `keys`, so the screen can name it when it does not know a binding id."""
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    """The `[alerts]` table."""
    history: HistoryConfig = field(default_factory=HistoryConfig)
    """The `[history]` table."""
    # -- profiles
    profile: Profile | None = None
    """The top-level `profile`: what may be done on hosts that neither they nor their group say (None:
    admin)."""
    groups: Mapping[str, GroupConfig] = field(default_factory=dict)
    """The `[groups."PATH"]` tables by group path, in file order."""
    lint: LintConfig = field(default_factory=LintConfig)
    """The `[lint]` table."""
    # -- tenancy
    tenant: str | None = None
    """The top-level `tenant` key (or `--tenant`): see and act on only this tenant's VMs, everywhere."""
    tenants: tuple[tuple[str, TenantConfig], ...] = ()
    """The `[tenants.NAME]` tables: each tenant's quota, in file order."""


class ConfigError(Exception):
    """A config file that cannot be used, located as precisely as possible."""

    def __init__(self, file: str, line: int | None, key: str, message: str) -> None:
        super().__init__(file, line, key, message)
        self.file = file
        """The file, as given or resolved."""
        self.line = line
        """1-based line number, or None when it is not known."""
        self.key = key
        """Dotted key such as `hosts[1].port` or `defaults.interval`; empty when about the whole file."""
        self.message = message
        """What is wrong, for a human."""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f"{self.key}: {self.message}" if self.key else self.message
        return f"{where}: {what}"
