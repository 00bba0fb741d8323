#!/usr/bin/env bash
# Run Molecule scenarios on simulated Pis of one Debian release and
# architecture (PISEC_SUITE, PISEC_ARCH; see build-image.sh):
#   scripts/molecule.sh            default, auth, rotation, vpn and coap
#   scripts/molecule.sh default    the named scenarios only
# The arm64 scenario runs only with PISEC_ARCH=arm64 (an emulated Pi).
# PISEC_MOLECULE_STEPS="converge idempotence verify" runs only those steps
# (between a destroy and a destroy) instead of the scenario's whole sequence.
# The rotation scenario's CA stand-in runs the controller's .venv, so it also
# needs an image of the controller's own release, built here too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  scenarios=(default auth rotation vpn coap)
fi
for scenario in "${scenarios[@]}"; do
  [ -f "$root/molecule/$scenario/molecule.yml" ] || pisec_die "molecule/$scenario: no such scenario"
  if [ "$scenario" = arm64 ] && [ "${PISEC_ARCH:-amd64}" != arm64 ]; then
    pisec_die "molecule/arm64: needs PISEC_ARCH=arm64 (make molecule-arm64)"
  fi
done

steps=()
if [ -n "${PISEC_MOLECULE_STEPS:-}" ]; then
  read -r -a steps <<<"$PISEC_MOLECULE_STEPS"
  for step in "${steps[@]}"; do
    case "$step" in
      syntax|create|check|converge|idempotence|verify) ;;
      *) pisec_die "PISEC_MOLECULE_STEPS: '$step' is not one of: syntax create check converge idempotence verify" ;;
    esac
  done
fi

venv="$root/.venv"
[ -x "$venv/bin/molecule" ] || pisec_die "$venv: missing (run 'make venv' first)"
"$here/ensure-docker.sh"
PISEC_IMAGE=$("$here/build-image.sh" | tail -n1)
PISEC_CONTROLLER_IMAGE=$PISEC_IMAGE
if [[ " ${scenarios[*]} " == *" rotation "* ]]; then
  controller=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  PISEC_CONTROLLER_IMAGE=$(PISEC_SUITE="$controller" PISEC_ARCH=$(dpkg --print-architecture) PISEC_MOSQUITTO= \
    "$here/build-image.sh" | tail -n1)
fi
PISEC_PYTHON_PREFIX=$("$here/python-prefix.sh" "$venv/bin/python")
export PISEC_IMAGE PISEC_CONTROLLER_IMAGE PISEC_PYTHON_PREFIX
export PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"

cd "$root"
for scenario in "${scenarios[@]}"; do
  if [ ${#steps[@]} -eq 0 ]; then
    pisec_log "molecule: $scenario on $PISEC_IMAGE"
    molecule test -s "$scenario"
    continue
  fi
  pisec_log "molecule: $scenario (${steps[*]}) on $PISEC_IMAGE"
  molecule destroy -s "$scenario"
  trap 'molecule destroy -s "$scenario"' EXIT
  for step in "${steps[@]}"; do
    if [ "$step" = check ]; then
      # `molecule check` is a sequence of its own that ends in destroy; the
      # step is the dry run of the converge playbook on these instances.
      molecule converge -s "$scenario" -- --check
    else
      molecule "$step" -s "$scenario"
    fi
  done
  molecule destroy -s "$scenario"
  trap - EXIT
done
