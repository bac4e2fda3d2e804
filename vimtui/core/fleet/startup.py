"""Build the core from config and --connect: one factory shared by the CLI, the TUI and the tests."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vimtui.core.config.settings import Config, Defaults, data_dir, load_config, runtime_dir
from vimtui.core.fleet.audit import AUDIT_FILE, AuditLog
from vimtui.core.fleet.fleet import Fleet
from vimtui.core.fleet.inventory import HostSpec, build_inventory
from vimtui.core.fleet.maintenance import MAINTENANCE_FILE, Maintenance
from vimtui.core.fleet.scope import TenantScope
from vimtui.core.model import Quota
from vimtui.core.monitor.hook import HookRunner
from vimtui.core.poll.session import SessionSettings
from vimtui.core.profiles import Profile

if TYPE_CHECKING:
    from vimtui.core.monitor.archive import Archive


def settings_from(defaults: Defaults) -> SessionSettings:
    return SessionSettings(
        interval=defaults.interval,
        call_timeout=defaults.call_timeout,
        connect_timeout=defaults.connect_timeout,
        keepalive_interval=defaults.keepalive_interval,
        keepalive_count_max=defaults.keepalive_count_max,
        host_stats_every=defaults.host_stats_every,
    )


def load_inventory(
    config_path: str | None,
    connect: Sequence[str],
    env: Mapping[str, str] = os.environ,
    profile: Profile | None = None,
) -> tuple[Config, tuple[HostSpec, ...]]:
    """Config and hosts (`profile`: --profile, for every host); raises ConfigError (config) or
    InventoryError (a bad --connect)."""
    config = load_config(Path(config_path) if config_path else None, env=env)
    return config, build_inventory(config, connect, profile)


def make_fleet(
    config: Config,
    specs: Sequence[HostSpec],
    env: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.time,
    *,
    archive: bool = False,
) -> Fleet:
    """The core as configured. `archive`: keep the lasting history (the screen and the exporter, which
    run for long; not one-shot CLI commands, which would only take its lock)."""
    audit = AuditLog(data_dir(env) / AUDIT_FILE)
    audit.settle()  # actions a killed vimtui left without an outcome: recorded as abandoned
    alerts = config.alerts
    hook = HookRunner(alerts.hook, timeout=alerts.hook_timeout) if alerts.hook else None
    fleet = Fleet(
        specs,
        settings_from(config.defaults),
        runtime_dir(env),
        clock=clock,
        audit=audit,
        alert_rules=alerts.effective_rules(),
        hook=hook,
    )
    fleet.maintenance = Maintenance(data_dir(env) / MAINTENANCE_FILE, fleet.figures)
    fleet.maintenance.load()
    fleet.evacuate_parallel = config.defaults.evacuate_parallel
    if archive and config.history.enabled:
        fleet.archive = open_archive(config, env, fleet.archive_problem)
    fleet.scope = tenant_scope(config)
    return fleet


def tenant_scope(config: Config) -> TenantScope | None:
    """The tenant and the quotas of the config; None when it has neither (the state is published as is)."""
    quotas = {name: Quota(t.vcpus, t.memory, t.vms, t.disk) for name, t in config.tenants}
    if config.tenant is None and not quotas:
        return None
    return TenantScope(config.tenant, quotas)


HISTORY_FILE = "history.sqlite"


def open_archive(
    config: Config,
    env: Mapping[str, str] = os.environ,
    on_problem: Callable[[str], None] | None = None,
    *,
    read_only: bool = False,
) -> Archive:
    """The lasting history in the data dir, with the config's steps, retention and size bound."""
    from vimtui.core.monitor.archive import Archive  # only where it is kept: one-shot commands do without

    h = config.history
    return Archive(
        data_dir(env) / HISTORY_FILE,
        fine_step=float(h.fine_step),
        fine_keep=float(h.fine_keep),
        coarse_step=float(h.coarse_step),
        coarse_keep=float(h.coarse_keep),
        max_bytes=h.max_mb * 2**20,
        on_problem=on_problem,
        read_only=read_only,
    )


GC_THRESHOLD = (100_000, 20, 10)
"""Each tick makes a fresh VmState and rates per VM: at 10,000 VMs CPython's default (700, 10, 10) runs a
young collection every 700 of them and a full one, over everything held, every few ticks (~10 µs per VM
per tick, half the tick). A larger young generation lets each tick's garbage die by reference count. What
a young collection walks is every container made since the last one and still alive: at 10,000 VMs,
nearly all the fleet's state (replaced poll by poll), about 20 ms whatever the threshold. At 20,000 that
came every 7 s of `vimtui export` on 50 hosts of 200 VMs (0.2 % of a core); at 100,000, not once in 60 s.
"""


def tune_gc() -> None:
    """Once, after imports and config: the objects alive now (modules, config) live for the whole run, so
    freeze them out of every later collection, and widen the young generation."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
