#!/usr/bin/env bash
# Build the "simulated Raspberry Pi" image: Debian with systemd as PID 1 and
# python3, made with debootstrap and imported with `docker import` because no
# container registry is reachable. Built once per suite and architecture;
# reused by tag.
#
#   PISEC_SUITE  trixie (default: Raspberry Pi OS since October 2025) or bookworm
#   PISEC_ARCH   amd64 (default) or arm64, emulated with qemu-user-static
#   PISEC_MOSQUITTO  empty (default: the release's own mosquitto 2.0) or 2.1,
#                mosquitto from Debian forky on a trixie Pi (lib.sh says why)
#
# The tag carries the suite, the architecture and a hash of this script, so
# changing the package list builds a new image and an unchanged script never
# rebuilds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

# Raspberry Pi OS ships these on every image (sshd is enabled with
# `ssh` in the boot partition); the roles rely on nothing more than a fresh
# Pi has.
packages=python3,python3-apt,systemd,systemd-sysv,dbus,iproute2,ca-certificates,openssl,procps,openssh-server

suite=$(pisec_suite)
arch=$(pisec_arch)
repo="${PISEC_IMAGE_REPO:-pisec/pi-systemd}"
mosquitto=$(pisec_mosquitto)
image="$repo:$suite-$arch${mosquitto:+-mosquitto$mosquitto}-$(sha256sum "$0" | cut -c1-12)"

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
emulated=false
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  emulated=true
  "$here/ensure-binfmt.sh" "$arch"
fi
mirror=$(pisec_debian_mirror)
root=$(mktemp -d /var/tmp/pisec-rootfs.XXXXXX)
# debootstrap mounts /proc (and more) inside the root while it configures
# packages, and can leave it mounted when an emulated process still holds
# it. Unmount everything below the root before anything is packed or
# removed; rm and tar stay on the root's own file system regardless.
unmount_below() {
  local target
  findmnt -rn -o TARGET | awk -v root="$1/" 'index($0, root) == 1' | sort -r \
    | while IFS= read -r target; do umount "$target" 2>/dev/null || umount -l "$target"; done
}
trap 'unmount_below "$root"; rm -rf --one-file-system "$root"' EXIT

if $emulated; then
  pisec_log "debootstrap $suite/$arch into $root (emulated: about five minutes)"
else
  pisec_log "debootstrap $suite/$arch into $root (about a minute)"
fi
debootstrap --arch="$arch" --variant=minbase --include="$packages" "$suite" "$root" "$mirror" \
  | while IFS= read -r line; do case "$line" in I:\ Retrieving*|I:\ Validating*) ;; *) echo "   $line" >&2 ;; esac; done

unmount_below "$root"

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
if $emulated; then
  # Under qemu-user, systemd (257, trixie) cannot set up the credentials of
  # the units that import them (status 243/CREDENTIALS: journald, tmpfiles,
  # sysusers), and logind's namespace sandbox fails (226/NAMESPACE). On a real
  # arm64 Pi both work; in the emulated Pi those units run without them.
  for unit in systemd-journald systemd-journal-flush systemd-tmpfiles-setup \
              systemd-tmpfiles-setup-dev systemd-tmpfiles-setup-dev-early \
              systemd-sysusers; do
    mkdir -p "$root/etc/systemd/system/$unit.service.d"
    printf '[Service]\nImportCredential=\nLoadCredential=\n' \
      >"$root/etc/systemd/system/$unit.service.d/pisec-emulated.conf"
  done
  mkdir -p "$root/etc/systemd/system/systemd-logind.service.d"
  cat >"$root/etc/systemd/system/systemd-logind.service.d/pisec-emulated.conf" <<'UNIT'
[Service]
PrivateTmp=no
PrivateDevices=no
ProtectSystem=no
ProtectHome=no
ProtectKernelModules=no
ProtectKernelLogs=no
ProtectControlGroups=no
ProtectClock=no
ProtectHostname=no
RestrictNamespaces=no
ReadWritePaths=
UNIT
fi
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
if [ -n "$mosquitto" ]; then
  # mosquitto's packages, and what they need that trixie lacks, from forky.
  # Debian testing's Release file is valid for a week; a mirror that is a
  # snapshot (as here) outlives it, so this one source accepts it expired.
  cat >"$root/etc/apt/sources.list.d/pisec-forky.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: forky
Components: main
Check-Valid-Until: no
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  cat >"$root/etc/apt/preferences.d/pisec-mosquitto" <<'PINS'
Package: mosquitto mosquitto-clients libmosquitto1 libmosquitto-common1
Pin: release n=forky
Pin-Priority: 990

Package: *
Pin: release n=forky
Pin-Priority: 100
PINS
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" apt-get update -q >/dev/null
if [ -n "$mosquitto" ]; then
  # What forky's mosquitto needs newer than trixie has (libc6 among them),
  # installed now, as the Pi's owner would; the role then installs mosquitto
  # itself, from forky by the pin above.
  deps=$(chroot "$root" apt-get -s -q install -t forky mosquitto mosquitto-clients \
    | awk '/^Inst / && $2 !~ /^(mosquitto|mosquitto-clients|libmosquitto1|libmosquitto-common1)$/ { print $2 }')
  pisec_log "from forky for mosquitto $mosquitto: ${deps//$'\n'/ }"
  # shellcheck disable=SC2086 # one package name per word
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t forky $deps >/dev/null
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin

pisec_log "importing $image"
unmount_below "$root"
tar -C "$root" --one-file-system -c . | pisec_docker import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=docker' \
  - "$image" >/dev/null
pisec_docker tag "$image" "$repo:$suite-$arch${mosquitto:+-mosquitto$mosquitto}"
echo "$image"
