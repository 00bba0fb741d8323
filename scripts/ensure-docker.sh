#!/usr/bin/env bash
# Start the Docker engine from Debian's docker.io when it is not answering.
# Nothing starts dockerd on this kind of machine (no init system), so every
# entry point that needs containers calls this first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

if pisec_docker info >/dev/null 2>&1; then
  exit 0
fi
command -v dockerd >/dev/null || pisec_die "dockerd: not installed (run 'make deps' first)"

log=/var/log/pisec-dockerd.log
pisec_log "starting dockerd (log: $log)"
# setsid: dockerd must outlive the make target that started it.
setsid dockerd >"$log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if pisec_docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
tail -n 20 "$log" >&2 || true
pisec_die "dockerd: did not answer within 60 s (see $log)"
