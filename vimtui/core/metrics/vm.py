"""The VMs' metrics, each declared once (registry.py says what a declaration holds)."""

from __future__ import annotations

from vimtui.core.metrics import values as v
from vimtui.core.metrics.registry import Column, FilterField, Metric, Series, declare

# ---------------------------------------------------------------------------------------------- VMs

_PER_POLL = "over the last poll interval"

declare(
    Metric(
        "vm.vcpus",
        "vm",
        "",
        "vCPUs",
        "vCPUs of the VM (vcpu.current; the configured count while it is not running).",
        v.vm_vcpus,
        column=Column("vcpu", "VCPU", 4, priority=30, order=40),
        filter=FilterField("vcpus", "vcpus>=4"),
        export=Series("vimtui_vm_vcpus", "vCPUs of the VM (vcpu.current, else as configured).", lasting=True),
    ),
    Metric(
        "vm.cpu_pct",
        "vm",
        "%",
        "CPU",
        "CPU time over the last poll interval as % of the VM's vCPUs.",
        rates_field="cpu_pct",
        column=Column("cpu", "CPU%", 6, priority=80, order=50),
        filter=FilterField("cpu", "cpu>50"),
        alert=True,
        export=Series(
            "vimtui_vm_cpu_usage_ratio",
            "CPU time over the last poll interval as a share of the VM's vCPUs, 0 to 1.",
            unit="ratio",
            divide=100,
        ),
        history="cpu",
        report=True,
    ),
    Metric(
        "vm.cpu_host_pct",
        "vm",
        "%",
        "CPU of host",
        "The VM's CPU time over the last poll interval as % of all its host's CPUs.",
        rates_field="cpu_host_pct",
        export=Series(
            "vimtui_vm_cpu_host_ratio",
            "CPU time over the last poll interval as a share of all its host's CPUs, 0 to 1.",
            unit="ratio",
            divide=100,
        ),
    ),
    Metric(
        "vm.mem_pct",
        "vm",
        "%",
        "Memory",
        "Memory the guest uses (its balloon driver) as % of its current memory.",
        rates_field="mem_pct",
        label="memory",
        filter=FilterField("mem", "mem>=80"),
        alert=True,
        export=Series(
            "vimtui_vm_memory_used_ratio",
            "vimtui_vm_memory_used_bytes over the VM's current memory, 0 to 1.",
            unit="ratio",
            divide=100,
        ),
        history="mem",
        report=True,
    ),
    Metric(
        "vm.mem_used_bytes",
        "vm",
        "B",
        "Memory used",
        "Memory the guest uses, from its balloon driver (available - usable).",
        v.vm_mem_used,
        column=Column(
            "mem",
            "MEM",
            9,
            priority=70,
            order=60,
            pair=("vm.mem_used_bytes", "vm.memory_bytes"),
            pair_missing="?",
        ),
        export=Series(
            "vimtui_vm_memory_used_bytes",
            "Memory the guest uses, from its balloon driver (available - usable).",
            unit="bytes",
        ),
    ),
    Metric(
        "vm.memory_bytes",
        "vm",
        "B",
        "Memory",
        "Memory the VM has: balloon.current, else balloon.maximum, else as configured.",
        v.vm_memory,
    ),
    Metric(
        "vm.mem_max_bytes",
        "vm",
        "B",
        "Maximum memory",
        "Maximum memory of the VM (balloon.maximum).",
        v.vm_mem_max,
        filter=FilterField("memory", "memory>=4096 or memory>=4G"),
        export=Series(
            "vimtui_vm_memory_max_bytes",
            "Maximum memory of the VM (balloon.maximum).",
            unit="bytes",
            lasting=True,
        ),
    ),
    Metric(
        "vm.mem_current_bytes",
        "vm",
        "B",
        "Current memory",
        "Memory the VM has now (balloon.current).",
        v.vm_mem_current,
        export=Series(
            "vimtui_vm_memory_current_bytes", "Memory the VM has now (balloon.current).", unit="bytes"
        ),
    ),
    Metric(
        "vm.cpu_seconds",
        "vm",
        "s",
        "CPU time",
        "CPU time of the VM (cpu.time); starts again at 0 with the VM.",
        v.vm_cpu_seconds,
        export=Series(
            "vimtui_vm_cpu_seconds",
            "CPU time of the VM (cpu.time); starts again at 0 with the VM.",
            kind="counter",
            unit="seconds",
        ),
    ),
)

for _name, _title, _at, _nics, _family, _help, _unit in (
    (
        "disk_read_bytes",
        "Disk read",
        2,
        False,
        "disk_read_bytes",
        "Bytes read, summed over the VM's disks.",
        "bytes",
    ),
    (
        "disk_write_bytes",
        "Disk written",
        3,
        False,
        "disk_write_bytes",
        "Bytes written, summed over the VM's disks.",
        "bytes",
    ),
    (
        "disk_read_ops",
        "Disk reads",
        4,
        False,
        "disk_read_ops",
        "Read requests, summed over the VM's disks.",
        "",
    ),
    (
        "disk_write_ops",
        "Disk writes",
        5,
        False,
        "disk_write_ops",
        "Write requests, summed over the VM's disks.",
        "",
    ),
    (
        "net_rx_bytes",
        "Net received",
        1,
        True,
        "network_receive_bytes",
        "Bytes received, summed over the VM's interfaces (libvirt's net.N.rx.bytes).",
        "bytes",
    ),
    (
        "net_tx_bytes",
        "Net transmitted",
        2,
        True,
        "network_transmit_bytes",
        "Bytes transmitted, summed over the VM's interfaces (libvirt's net.N.tx.bytes).",
        "bytes",
    ),
):
    declare(
        Metric(
            f"vm.{_name}_total",
            "vm",
            "B" if _unit else "",
            _title,
            _help,
            v.device_total(_at, _nics),
            export=Series(f"vimtui_vm_{_family}", _help, kind="counter", unit=_unit),
        )
    )

for _name, _field, _title, _label, _family, _hist, _help in (
    ("disk_read_bps", "disk_rd_bps", "Disk read", "disk read", "disk_read", "disk_rd", "Disk read"),
    ("disk_write_bps", "disk_wr_bps", "Disk write", "disk write", "disk_write", "disk_wr", "Disk write"),
    ("net_rx_bps", "net_rx_bps", "Net receive", "net rx", "network_receive", "net_rx", "Network rx"),
    ("net_tx_bps", "net_tx_bps", "Net transmit", "net tx", "network_transmit", "net_tx", "Network tx"),
):
    declare(
        Metric(
            f"vm.{_name}",
            "vm",
            "B/s",
            _title,
            f"{_help} bytes per second {_PER_POLL}, all devices"
            + (" (the host's view of the tap)." if _name.startswith("net") else "."),
            rates_field=_field,
            label=_label,
            alert=True,
            export=Series(f"vimtui_vm_{_family}_bytes_per_second", f"{_help} bytes per second {_PER_POLL}."),
            history=_hist,
            report=True,
        )
    )

for _name, _field, _family, _help in (
    ("disk_read_iops", "disk_rd_iops", "disk_read_ops_per_second", "Disk read requests"),
    ("disk_write_iops", "disk_wr_iops", "disk_write_ops_per_second", "Disk write requests"),
):
    declare(
        Metric(
            f"vm.{_name}",
            "vm",
            "/s",
            _help,
            f"{_help} per second {_PER_POLL}.",
            rates_field=_field,
            export=Series(f"vimtui_vm_{_family}", f"{_help} per second {_PER_POLL}."),
        )
    )

declare(
    Metric(
        "vm.disk_bps",
        "vm",
        "B/s",
        "Disk",
        "Disk read + write bytes per second (unknown when either is).",
        v.vm_disk_bps,
        column=Column(
            "disk", "DISK R/W", 9, priority=10, order=70, pair=("vm.disk_read_bps", "vm.disk_write_bps")
        ),
        filter=FilterField("disk", "disk>10M, with K, M, G for KiB/s, MiB/s, GiB/s"),
    ),
    Metric(
        "vm.net_bps",
        "vm",
        "B/s",
        "Network",
        "Network rx + tx bytes per second (unknown when either is).",
        v.vm_net_bps,
        column=Column("net", "NET RX/TX", 9, priority=5, order=80, pair=("vm.net_rx_bps", "vm.net_tx_bps")),
        filter=FilterField("net", "net>1M, with K, M, G for KiB/s, MiB/s, GiB/s"),
    ),
    Metric(
        "vm.uptime_seconds",
        "vm",
        "s",
        "Uptime",
        "Seconds since the VM started (running VMs).",
        v.vm_uptime,
        at_least="vm.up_at_least_seconds",
        column=Column("uptime", "UPTIME", 7, priority=40, order=100),
        filter=FilterField("uptime", "uptime>2h, with s, m, h, d"),
    ),
    Metric(
        "vm.up_at_least_seconds",
        "vm",
        "s",
        "Up at least",
        "Seconds a running VM whose start vimtui did not see has been up at least (since first seen).",
        v.vm_up_at_least,
    ),
    Metric(
        "vm.stale",
        "vm",
        "bool",
        "Stale",
        "1 while the VM's host is not answering (its values are the last known).",
        v.vm_stale,
        export=Series(
            "vimtui_vm_stale",
            "1 while the VM's host is not answering (state is the last known, measurements are left out), "
            "else 0.",
            lasting=True,
        ),
    ),
    Metric(
        "vm.crashed",
        "vm",
        "bool",
        "Crashed",
        "The VM crashed: state crashed, or shut off / paused with reason crashed; or a crashed / stopped "
        "(crashed, failed) lifecycle event.",
        v.vm_crashed,
        label="crashed",
        alert=True,
    ),
    Metric(
        "vm.io_error",
        "vm",
        "bool",
        "Paused on I/O error",
        "The VM is paused on an I/O error (state paused, reason ioerror; or the suspended (ioerror) event).",
        v.vm_io_error,
        label="paused on I/O error",
        alert=True,
    ),
    Metric(
        "vm.agent_gone",
        "vm",
        "bool",
        "Guest agent gone",
        'A running VM\'s guest agent disconnected (from "agent-disconnected" / "agent-connected" events).',
        events=True,
        label="guest agent gone",
        alert=True,
    ),
)
