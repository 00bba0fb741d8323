#!/usr/bin/env bash
# Build the "simulated Raspberry Pi" image: Debian bookworm with systemd as
# PID 1 and python3, made with debootstrap and imported with `docker import`
# because no container registry is reachable. Built once; reused by tag.
#
# The tag carries a hash of this script, so changing the package list builds
# a new image and an unchanged script never rebuilds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

# Raspberry Pi OS (bookworm) ships these on every image (sshd is enabled with
# `ssh` in the boot partition); the roles rely on nothing more than a fresh
# Pi has.
packages=python3,python3-apt,systemd,systemd-sysv,dbus,iproute2,ca-certificates,openssl,procps,openssh-server

repo="${PISEC_IMAGE_REPO:-pisec/bookworm-systemd}"
tag="$(sha256sum "$0" | cut -c1-12)"
image="$repo:$tag"

if [ "${1:-}" = "--print-tag" ]; then
  echo "$image"
  exit 0
fi

"$here/ensure-docker.sh"
if pisec_docker image inspect "$image" >/dev/null 2>&1; then
  pisec_log "image $image already built"
  echo "$image"
  exit 0
fi

command -v debootstrap >/dev/null || pisec_die "debootstrap: not installed (run 'make deps' first)"
mirror=$(pisec_debian_mirror)
root=$(mktemp -d /var/tmp/pisec-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT

pisec_log "debootstrap bookworm into $root (about a minute)"
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
  | while IFS= read -r line; do case "$line" in I:\ Retrieving*|I:\ Validating*) ;; *) echo "   $line" >&2 ;; esac; done

# (docker import cannot set STOPSIGNAL: containers are started with
# --stop-signal SIGRTMIN+3 so that systemd shuts down cleanly.)
# A container has no consoles, no udev and no hardware clock; masking these
# units keeps systemd from waiting on them at boot.
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
            systemd-udev-trigger.service systemd-remount-fs.service \
            sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount \
            systemd-journald-audit.socket; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Host keys are made per container at first boot, never baked into the image.
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/systemd/system/pisec-ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate this Pi's SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/pisec-ssh-hostkeys.service \
  "$root/etc/systemd/system/multi-user.target.wants/pisec-ssh-hostkeys.service"
printf 'pisec-pi\n' >"$root/etc/hostname"
: >"$root/etc/machine-id"
# Package lists as a Pi that has run `apt update` once has them (debootstrap
# leaves only its own placeholder lists, which apt mistakes for fresh ones).
rm -rf "$root"/var/lib/apt/lists/*
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" apt-get update -q >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin

pisec_log "importing $image"
tar -C "$root" -c . | pisec_docker import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=docker' \
  - "$image" >/dev/null
pisec_docker tag "$image" "$repo:latest"
echo "$image"
