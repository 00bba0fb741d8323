#!/usr/bin/env bash
# Debian packages the controller needs: the Docker engine (simulated Pis),
# debootstrap (their image), Mosquitto (the client tools for the demo's
# printed commands, the broker for pisec's own tests), OpenSSL and libcoap3
# with its tools (`pisec probe coaps://`, the CoAPs gateway's tests and the
# demo's printed coap-client command; libcoap3-bin brings the library under
# its name on each release, libcoap3 or libcoap3t64).
# Installs only what is missing; runs apt-get update only then.
#
# PISEC_ARCH=arm64 (on an amd64 machine) adds qemu-user-static 8.0 or later
# for the emulated arm64 Pi (see ensure-binfmt.sh). Bookworm's own is 7.2,
# so on bookworm it comes from bookworm-backports, added to apt's sources
# from the mirror this machine already uses.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

packages=(docker.io debootstrap mosquitto mosquitto-clients openssl iproute2 python3-venv ca-certificates libcoap3-bin)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || pisec_die "apt: installing ${missing[*]} needs root"
  pisec_log "installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

arch=$(pisec_arch)
if [ "$arch" = "$(dpkg --print-architecture)" ]; then
  exit 0
fi
# Empty when it is not installed (dpkg-query then fails, which must not end
# the script under `set -e -o pipefail`).
qemu_major() {
  local version
  version=$(dpkg-query -W -f='${Version}' qemu-user-static 2>/dev/null) || return 0
  sed -n 's/^\([0-9]*:\)\{0,1\}\([0-9]*\)\..*/\2/p' <<<"$version"
}
major=$(qemu_major)
if [ -n "$major" ] && [ "$major" -ge 8 ]; then
  exit 0
fi
[ "$(id -u)" -eq 0 ] || pisec_die "apt: installing qemu-user-static needs root"
. /etc/os-release
release=()
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  sources=/etc/apt/sources.list.d/pisec-bookworm-backports.sources
  if [ ! -f "$sources" ]; then
    pisec_log "adding bookworm-backports to apt's sources ($sources)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$(pisec_debian_mirror)" >"$sources"
  fi
  release=(-t bookworm-backports)
fi
pisec_log "installing qemu-user-static 8.0 or later (emulated $arch Pi)"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${release[@]}" qemu-user-static
major=$(qemu_major)
[ -n "$major" ] && [ "$major" -ge 8 ] \
  || pisec_die "qemu-user-static: ${major:-no} version 8.0 or later available from apt's sources"
