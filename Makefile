# perpool: every target sets itself up on a fresh clone (venv, npm packages, compile).
# Only the package registries are needed: PyPI for Python, npm for Anvil.

SHELL := /bin/bash
PY    ?= python3.11
VENV  := .venv
BIN   := $(VENV)/bin
export UV_NATIVE_TLS := 1
export UV_PYTHON_DOWNLOADS := never
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(BIN):$(PATH)
# pydantic-settings warns about one of Ape's own settings models on every command
export PYTHONWARNINGS := ignore:Field:UserWarning:pydantic_settings.sources.utils

.PHONY: setup devnet test test-fast compile abi gas static clean

## setup: venv from the lock, Anvil from npm, contracts compiled
setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (perpool needs Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync --python $(BIN)/python -q requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

compile: setup
	$(BIN)/ape compile

## devnet: start Anvil on 127.0.0.1:8545, deploy everything, print the deployment
devnet: setup
	$(BIN)/ape run devnet $(ARGS)

## test: the whole suite on fresh Anvil nodes (what CI runs)
test: setup
	$(BIN)/ape compile
	$(BIN)/ape test tests $(ARGS)

## abi: refresh the committed ABI export from the compiled contracts
abi: setup
	$(BIN)/ape compile
	$(BIN)/ape run export_abi

## gas: print gas used per operation on Anvil
gas: setup
	$(BIN)/ape run gas

## static: vyper-guard over the contracts (a checklist, not a gate: docs/static-analysis.md)
static:
	scripts/static_analysis.sh

clean:
	rm -rf .build $(VENV) .venv-tools node_modules
