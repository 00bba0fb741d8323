#!/usr/bin/env bash
# The demo fleet: a broker Pi and a client Pi as systemd containers,
# provisioned by playbooks/site.yml and checked by playbooks/verify.yml.
#   scripts/demo.sh up     start (or reuse) the containers, provision, verify
#   scripts/demo.sh down   remove the containers, the network and demo state
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

network=pisec-demo
broker=pisec-demo-broker
client=pisec-demo-client
port="${PISEC_DEMO_PORT:-18883}"
coaps_port="${PISEC_DEMO_COAPS_PORT:-15684}"
venv="$root/.venv"
state="$root/inventory/demo/.pisec"

start_pi() {
  local name=$1 found; shift
  # Reused only as it was started: same image, same options (a demo from
  # before the CoAPs gateway has no UDP port).
  found=$(pisec_docker inspect -f '{{.State.Running}}|{{.Config.Image}}|{{index .Config.Labels "pisec.demo.options"}}' "$name" 2>/dev/null || true)
  if [ "$found" = "true|$image|$*" ]; then
    return
  fi
  if [ -n "$found" ]; then
    # Another release or architecture (PISEC_SUITE, PISEC_ARCH), or other ports.
    found=${found#*|}
    pisec_log "$name runs ${found%%|*} with options '${found#*|}'; replacing it with a Pi from $image"
  fi
  pisec_docker rm -f "$name" >/dev/null 2>&1 || true
  pisec_log "starting simulated Pi $name"
  # systemd as PID 1: SYS_ADMIN for its mounts, tmpfs for /run, the host's
  # cgroup tree read-only (cgroup v1). --privileged fails on this kernel.
  pisec_docker run -d --name "$name" --hostname "$name" --network "$network" \
    --cap-add SYS_ADMIN --tmpfs /run --tmpfs /run/lock \
    -v /sys/fs/cgroup:/sys/fs/cgroup:ro --stop-signal SIGRTMIN+3 \
    --label pisec.demo=1 --label "pisec.demo.options=$*" "$@" "$image" >/dev/null
}

wait_for_systemd() {
  local name=$1 status=""
  for _ in $(seq 1 60); do
    status=$(pisec_docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$status" in running|degraded) return ;; esac
    sleep 1
  done
  pisec_die "$name: systemd did not finish booting within 60 s (state: ${status:-unknown})"
}

up() {
  [ -x "$venv/bin/ansible-playbook" ] || pisec_die "$venv: missing (run 'make venv' first)"
  "$here/ensure-docker.sh"
  image=$("$here/build-image.sh" | tail -n1)
  pisec_docker network inspect "$network" >/dev/null 2>&1 \
    || pisec_docker network create --label pisec.demo=1 "$network" >/dev/null
  start_pi "$broker" -p "127.0.0.1:$port:8883" -p "127.0.0.1:$coaps_port:5684/udp"
  start_pi "$client"
  wait_for_systemd "$broker"
  wait_for_systemd "$client"

  export ANSIBLE_CONFIG="$root/ansible.cfg"
  cd "$root"
  pisec_log "provisioning the demo fleet (playbooks/site.yml)"
  "$venv/bin/ansible-playbook" -i inventory/demo playbooks/site.yml
  pisec_log "verifying from the host (playbooks/verify.yml)"
  "$venv/bin/ansible-playbook" -i inventory/demo playbooks/verify.yml -e pisec_verify_port="$port"

  local ca="$state/ca/ca.crt" writer="$state/credentials/pisec-demo" reader="$state/credentials/pisec-demo-reader"
  local sensor="$state/devices/pisec-demo-sensor/pisec-demo-sensor.coap-client"
  local sensor_key="$state/devices/pisec-demo-sensor/pisec-demo-sensor.psk"
  cat <<SUMMARY

pisec demo: a TLS-only Mosquitto broker is running (Pis: Debian ${PISEC_SUITE:-trixie}, ${PISEC_ARCH:-amd64}).

  CA certificate : $ca
  Broker         : 127.0.0.1:$port (TLS, from this host; container $broker:8883)
  CoAPs gateway  : 127.0.0.1:$coaps_port/udp (DTLS with pre-shared keys; container $broker:5684)
  MQTT users     : pisec-demo-reader may only read pisec/demo/#, pisec-demo may read and write it
                   (passwords in $state/credentials/, mode 0600)

Subscribe (leave it running):
  mosquitto_sub -h 127.0.0.1 -p $port --cafile $ca -u pisec-demo-reader -P "\$(cat $reader)" -t 'pisec/demo/#' -v

Publish, from another terminal:
  mosquitto_pub -h 127.0.0.1 -p $port --cafile $ca -u pisec-demo -P "\$(cat $writer)" -t pisec/demo/hello -m 'hello over TLS'

(One identity, one connection: a second connection as the same user replaces the first.)

Publish over CoAP with DTLS and a pre-shared key, as the class-1 device pisec-demo-sensor
(TLS_PSK_WITH_AES_128_CCM_8; its key stays in the hint file, off the command line):
  coap-client-gnutls -u pisec-demo-sensor -k unused -h $sensor -m post -e 'hello over CoAPs' coaps://127.0.0.1:$coaps_port/ps/pisec/demo/coaps

Check that CoAPs endpoint with pisec, which reports the negotiated suite:
  $venv/bin/pisec probe coaps://127.0.0.1:$coaps_port --psk-identity pisec-demo-sensor --psk-file $sensor_key --topic pisec/demo/coaps

Inspect the broker certificate as the recipe does:
  openssl s_client -connect 127.0.0.1:$port -CAfile $ca -brief </dev/null

Remove everything: make demo-clean
SUMMARY
}

down() {
  "$here/ensure-docker.sh"
  pisec_log "removing the demo containers, network and state"
  pisec_docker rm -f "$broker" "$client" >/dev/null 2>&1 || true
  pisec_docker network rm "$network" >/dev/null 2>&1 || true
  rm -rf "$state"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
