# pisec: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# sslyze pins an older cryptography than Ansible's: a virtualenv of its own.
SSLYZE_VENV := .venv-sslyze
PY_SOURCES := src bench tests roles plugins molecule
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# The simulated Pis' Debian release (trixie or bookworm) and architecture
# (amd64, or arm64 emulated with qemu): `PISEC_SUITE=bookworm make demo`.
PISEC_SUITE ?= trixie
PISEC_ARCH ?= amd64
export PISEC_SUITE PISEC_ARCH

.PHONY: help deps venv image demo demo-clean lint unit molecule molecule-bookworm molecule-mosquitto21 molecule-arm64 bench bench-ansible bench-smoke test lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## Install the Debian packages pisec needs (docker.io, debootstrap, mosquitto ...)
	@scripts/install-deps.sh

$(VENV)/.installed: requirements.txt pyproject.toml | deps
	@echo "==> creating $(VENV) with the pinned requirements"
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

venv: $(VENV)/.installed ## Create .venv with Ansible, Molecule, linters and pisec

$(SSLYZE_VENV)/.installed: requirements-sslyze.txt | deps
	@echo "==> creating $(SSLYZE_VENV) with sslyze (Mozilla TLS profile checks)"
	@test -x $(SSLYZE_VENV)/bin/python || python3 -m venv $(SSLYZE_VENV)
	@$(SSLYZE_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sslyze.txt
	@touch $@

image: deps ## Build the simulated-Pi image (Debian $PISEC_SUITE on $PISEC_ARCH + systemd), once
	@scripts/build-image.sh >/dev/null

demo: venv image ## Provision a broker Pi and a client Pi in containers and show a working TLS broker
	@scripts/demo.sh up

demo-clean: ## Remove the demo containers, network, CA and credentials
	@scripts/demo.sh down

lint: venv ## yamllint, ansible-lint (production profile), ruff, mypy --strict
	@echo "==> yamllint"; $(BIN)/yamllint --strict .
	@# Ansible's YAML loader takes a key that overrides a merge (`<<: *pi` in
	@# molecule/*/molecule.yml) for a duplicate; yamllint's key-duplicates
	@# above checks duplicate keys with YAML's own rules.
	@echo "==> ansible-lint (production)"; PATH="$(CURDIR)/$(BIN):$$PATH" ANSIBLE_DUPLICATE_YAML_DICT_KEY=ignore \
	  $(BIN)/ansible-lint --profile production
	@echo "==> ruff"; $(BIN)/ruff check $(PY_SOURCES); $(BIN)/ruff format --check $(PY_SOURCES)
	@echo "==> mypy --strict"; $(BIN)/mypy

unit: venv ## pytest (needs the mosquitto binary for the broker tests)
	@$(BIN)/pytest -n auto --dist loadfile

molecule: venv $(SSLYZE_VENV)/.installed image ## Molecule scenarios in systemd containers
	@scripts/molecule.sh

# The dry runs (check) of the default scenario run on trixie only.
molecule-bookworm: venv $(SSLYZE_VENV)/.installed deps ## The default scenario on bookworm Pis too (CI proves both releases)
	@PISEC_SUITE=bookworm PISEC_ARCH=amd64 PISEC_MOLECULE_STEPS="converge idempotence verify" \
	  scripts/molecule.sh default

# Mosquitto 2.1 (from Debian forky, on trixie Pis): the configuration
# without the options 2.1 deprecates, --test-config before every restart
# and reload.
molecule-mosquitto21: venv $(SSLYZE_VENV)/.installed deps ## The default scenario with mosquitto 2.1
	@PISEC_SUITE=trixie PISEC_ARCH=amd64 PISEC_MOSQUITTO=2.1 \
	  PISEC_MOLECULE_STEPS="converge idempotence verify" scripts/molecule.sh default

molecule-arm64: venv ## An emulated arm64 trixie Pi converges and serves MQTT over TLS
	@PISEC_ARCH=arm64 scripts/install-deps.sh
	@PISEC_SUITE=trixie PISEC_ARCH=arm64 scripts/molecule.sh arm64

# The CoAP part reads code sizes on an emulated arm64 Pi too (PISEC_ARM64_IMAGE).
bench: venv image ## Measure what TLS, DTLS, the VPN and provisioning cost (docs/benchmarks.md, about 15 min)
	@scripts/ensure-docker.sh
	@PISEC_ARCH=arm64 scripts/install-deps.sh
	@[ "$$(dpkg --print-architecture)" = arm64 ] || scripts/ensure-binfmt.sh arm64
	@PISEC_ARCH=arm64 scripts/build-image.sh >/dev/null
	@PISEC_IMAGE=$$(scripts/build-image.sh --print-tag) \
	  PISEC_ARM64_IMAGE=$$(PISEC_ARCH=arm64 scripts/build-image.sh --print-tag) PATH="$(CURDIR)/$(BIN):$$PATH" \
	  $(BIN)/python -m bench --output docs/benchmarks

bench-ansible: venv image ## Time site.yml's second run on 20 Pis with each Ansible setting (docs/benchmarks-ansible.md, ~6 min)
	@scripts/ensure-docker.sh
	@PISEC_IMAGE=$$(scripts/build-image.sh --print-tag) PATH="$(CURDIR)/$(BIN):$$PATH" \
	  $(BIN)/python -m bench --skip-broker --fleet-sizes 20 --ansible-settings --output docs/benchmarks-ansible

bench-smoke: venv image ## The bench with tiny counts and a 1-Pi fleet (proves it runs; writes .bench-smoke/)
	@scripts/ensure-docker.sh
	@PISEC_ARCH=arm64 scripts/install-deps.sh
	@[ "$$(dpkg --print-architecture)" = arm64 ] || scripts/ensure-binfmt.sh arm64
	@PISEC_ARCH=arm64 scripts/build-image.sh >/dev/null
	@PISEC_IMAGE=$$(scripts/build-image.sh --print-tag) \
	  PISEC_ARM64_IMAGE=$$(PISEC_ARCH=arm64 scripts/build-image.sh --print-tag) PATH="$(CURDIR)/$(BIN):$$PATH" \
	  $(BIN)/python -m bench --smoke --output .bench-smoke/benchmarks

test: lint unit molecule molecule-bookworm molecule-mosquitto21 molecule-arm64 bench-smoke ## Everything CI checks

lock: ## Re-resolve requirements.txt from pyproject.toml
	@python3 -m venv /tmp/pisec-lock && /tmp/pisec-lock/bin/pip install --quiet -e '.[ansible,dev,bench]' \
	  && /tmp/pisec-lock/bin/pip freeze --exclude-editable > requirements.txt && rm -rf /tmp/pisec-lock
	@python3 -m venv /tmp/pisec-lock && /tmp/pisec-lock/bin/pip install --quiet sslyze \
	  && { sed -n '/^#/p' requirements-sslyze.txt; /tmp/pisec-lock/bin/pip freeze; } > requirements-sslyze.txt.new \
	  && mv requirements-sslyze.txt.new requirements-sslyze.txt && rm -rf /tmp/pisec-lock

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) $(SSLYZE_VENV) .mypy_cache .ruff_cache .pytest_cache
