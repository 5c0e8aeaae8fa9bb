# The README's commands. Everything runs from the controller virtualenv that scripts/bootstrap.sh
# creates (outside the clone, keyed by requirements.txt); the first target that needs it creates it.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
INVENTORY ?= inventories/local
PLAYBOOK_ARGS ?=
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONPATH := $(CURDIR)
# molecule and ansible-lint call ansible-* by name: the venv's bin comes first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help bootstrap deploy tune test lint unit images server-images helm llamacpp molecule

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

bootstrap: ## create or reuse the controller virtualenv (pinned dependencies)
	@scripts/bootstrap.sh >/dev/null

deploy: bootstrap ## the main job: ansible-playbook site.yml -i $(INVENTORY) (offline, synthetic Qwen3-0.6B)
	$(BIN)/ansible-playbook site.yml -i $(INVENTORY) $(PLAYBOOK_ARGS)

tune: bootstrap ## measure and choose the serving settings: ansible-playbook playbooks/tune.yml -i $(INVENTORY)
	$(BIN)/ansible-playbook playbooks/tune.yml -i $(INVENTORY) $(PLAYBOOK_ARGS)

test: bootstrap lint unit molecule ## every test: lint, unit and integration tests, molecule scenarios

lint: bootstrap ## ruff, yamllint, ansible-lint (production profile)
	$(BIN)/ruff check qwen3ops benchmarks finetune tests
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --offline

unit: bootstrap llamacpp ## pytest (unit and integration tests)
	$(BIN)/python -m pytest

images: ## local container images for molecule and the Dockerfiles (cached in podman's storage)
	scripts/build-test-images.sh

server-images: ## the servers' container images (docker/*.Dockerfile; skipped when unchanged)
	scripts/build-images.sh

helm: ## the pinned, checksummed helm binary (cached outside the clone)
	scripts/get-helm.sh >/dev/null

llamacpp: ## llama.cpp's tools from pinned source (cached outside the clone, keyed by version/flags/CPU)
	scripts/build-llamacpp.sh >/dev/null

# Every scenario under molecule/ (MOLECULE_SCENARIOS="default llamacpp" to run some).
MOLECULE_SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

molecule: bootstrap images llamacpp ## molecule scenarios (create, converge, idempotence, verify, destroy)
	set -e; for s in $(MOLECULE_SCENARIOS); do echo "== molecule test -s $$s"; $(BIN)/molecule test -s $$s; done
