#!/bin/sh
# PID 1 of one lab host. Runs inside the host's own network, mount, UTS and PID namespaces (the lab starts
# it that way), so everything it starts dies with it. Arguments: host directory, host name.
set -eu
H="$1"
NAME="$2"

hostname "$NAME"
# A private /run, and the host's own libvirt state, config, logs and cache (and vimtui's audit file).
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/libvirt /run/sshd /run/lock
chmod 0755 /run/sshd
mkdir -p /var/log/vimtui
for d in etc/libvirt var/lib/libvirt var/log/libvirt var/cache/libvirt var/log/vimtui; do
    src="$H/$(echo "$d" | tr / -)"
    mount --bind "$src" "/$d"
done
# Names resolve locally: a nameserver the namespace cannot reach would stall libvirtd on every lookup.
mount --bind "$H/hosts" /etc/hosts
mount --bind "$H/resolv.conf" /etc/resolv.conf
ip link set lo up
# `ip netns exec` remounted /sys, dropping the cgroup mounts: mount the hierarchies again. In the host's own
# cgroup namespace they show its subtree as their root, so libvirt places guests under it.
mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup
while read -r mp fstype opts; do
    mkdir -p "$mp"
    mount -t "$fstype" -o "$opts" cgroup "$mp"
done < "$H/cgroup-mounts"

virtlogd -d
libvirtd -d
/usr/sbin/sshd -f "$H/sshd_config" -E "$H/sshd.log"

echo "lab host $NAME up"
# PID 1 of the namespace: reap orphans and wait for the lab to end us.
trap 'exit 0' TERM INT
while true; do
    sleep 3600 &
    wait $! || true
done
