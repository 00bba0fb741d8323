#!/usr/bin/env bash
# Make this machine run another architecture's binaries (for an emulated
# arm64 Pi): qemu-user-static registered with binfmt_misc, flag F, so that a
# container's binaries find the interpreter without it being in the image.
#
# Needs qemu 8.0 or later: systemd 255 and later (trixie) start every service
# through clone3(CLONE_PIDFD), which qemu 7.2 (bookworm) does not emulate, and
# every unit then fails with "Result: resources". scripts/install-deps.sh
# installs a newer qemu when PISEC_ARCH asks for one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

arch=${1:?usage: ensure-binfmt.sh ARCH}
case "$arch" in
  arm64) qemu=aarch64 ;;
  *) pisec_die "ensure-binfmt.sh: no emulation known for '$arch'" ;;
esac

command -v "qemu-$qemu-static" >/dev/null \
  || pisec_die "qemu-$qemu-static: not installed (run 'PISEC_ARCH=$arch make deps')"
version=$("qemu-$qemu-static" --version | sed -n '1s/^qemu-[a-z0-9_]* version \([0-9]*\)\..*/\1/p')
[ -n "$version" ] && [ "$version" -ge 8 ] \
  || pisec_die "qemu-$qemu-static: version ${version:-unknown} cannot run systemd 255 or later (8.0 or later needed; run 'PISEC_ARCH=$arch make deps')"

if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
    || pisec_die "binfmt_misc: cannot mount /proc/sys/fs/binfmt_misc"
fi
entry=/proc/sys/fs/binfmt_misc/qemu-$qemu
if [ -e "$entry" ] && ! grep -q '^flags: .*F' "$entry"; then
  # Registered without F (the interpreter would have to be inside each
  # container): replace it.
  echo -1 >"$entry"
fi
if [ ! -e "$entry" ]; then
  conf=/usr/lib/binfmt.d/qemu-$qemu.conf
  [ -f "$conf" ] || pisec_die "$conf: missing (qemu-user-static installs it)"
  pisec_log "registering qemu-$qemu with binfmt_misc"
  cat "$conf" >/proc/sys/fs/binfmt_misc/register
fi
grep -q '^enabled' "$entry" || pisec_die "$entry: registered but disabled"
