#!/usr/bin/env bash
# Debian packages the controller needs: the Docker engine (simulated Pis),
# debootstrap (their image), Mosquitto (the client tools for the demo's
# printed commands, the broker for pisec's own tests) and OpenSSL.
# Installs only what is missing; runs apt-get update only then.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

packages=(docker.io debootstrap mosquitto mosquitto-clients openssl iproute2 python3-venv ca-certificates)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
[ "$(id -u)" -eq 0 ] || pisec_die "apt: installing ${missing[*]} needs root"
pisec_log "installing Debian packages: ${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
