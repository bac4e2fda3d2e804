"""Lifecycle events on a host's VMs: the time a VM entered its state moves only when the state does."""

from __future__ import annotations

import libvirt

from vimtui.core.poll.host_vms import HostVms

UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"


def test_an_event_that_leaves_the_state_as_it_was_keeps_its_time() -> None:
    """A running VM told 'resumed' (QEMU can say so right after 'started') was given a new state time: its
    uptime restarted, and a display forward took it for a VM stopped and started again."""
    now = [10.0]
    vms = HostVms("kvm01", lambda: now[0], lambda _gone: None)
    key = vms.key(UUID)
    vms.event(UUID, "web01", libvirt.VIR_DOMAIN_EVENT_STARTED, 0)
    assert (vms.vms[key].state, vms.vms[key].state_since) == ("running", 10.0)
    now[0] = 20.0
    vms.event(UUID, "web01", libvirt.VIR_DOMAIN_EVENT_RESUMED, 0)
    assert (vms.vms[key].state, vms.vms[key].state_since) == ("running", 10.0)
    now[0] = 30.0
    vms.event(UUID, "web01", libvirt.VIR_DOMAIN_EVENT_SUSPENDED, 0)
    assert (vms.vms[key].state, vms.vms[key].state_since) == ("paused", 30.0)
    now[0] = 40.0
    vms.event(UUID, "web01", libvirt.VIR_DOMAIN_EVENT_RESUMED, 0)
    assert (vms.vms[key].state, vms.vms[key].state_since) == ("running", 40.0)
