# The single entry point for humans and CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PS := $(BIN)/polystream
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv lint typecheck unit test test-fast stack-up stack-down stack-status \
        schema demo demo-stack bench lock clean pythons

help:
	@echo "make test          lint, bring the real stack up, run every test, bring it down"
	@echo "make unit          fast tests with no servers"
	@echo "make stack-up      provision (first time) and start PostgreSQL, Redis, Kafka, FerretDB, OpenSearch"
	@echo "make stack-status  each server: address, version, health, memory"
	@echo "make stack-down    stop what stack-up started"
	@echo "make schema        re-export JSON Schemas and the AsyncAPI document into docs/"
	@echo "make lint          ruff + strict mypy (src, tests, bench) + import contracts (lint-imports)"
	@echo "make pythons       the server-less unit tests on each Python 3.12/3.13 found (not in make test)"
	@echo "make demo          the whole platform in one process, live dashboard link (Ctrl-C stops)"
	@echo "make demo-stack    the demo on the real stack, one process per role"
	@echo "make bench         components, pipeline and API benchmarks on the real stack (~9 min)"
	@echo "make lock          re-pin requirements*.lock (with hashes) after changing pyproject.toml"

# The venv is created when missing and reinstalled when the dependencies change: the whole
# tree from the hash-locked file, then the package itself without resolving anything again.
$(INSTALLED): pyproject.toml requirements-dev.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Debian: apt-get install python3 python3-venv)"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { \
	  echo "python venv module missing; installing python3-venv"; \
	  rm -rf $(VENV); apt-get update -q && apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

venv: $(INSTALLED)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest -q -m "not stack" $(PYTEST_ARGS)

# Newer Pythons, where installed (on PATH or under pyenv): a venv each (.venv-3.12, ...) from
# the same hash-locked file, then tests/unit, which need no server. Not part of `make test`.
PYENV_ROOT ?= $(HOME)/.pyenv
pythons:
	@rc=0; found=0; \
	for v in 3.12 3.13; do \
	  py=; for c in $$(command -v python$$v) $$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python 2>/dev/null); do \
	    $$c -c "" 2>/dev/null && { py=$$c; break; }; done; \
	  [ -n "$$py" ] || { echo "python $$v: not found, skipped"; continue; }; \
	  found=1; venv=.venv-$$v; \
	  { [ -x $$venv/bin/python ] || $$py -m venv $$venv; } \
	  && $$venv/bin/pip install -q --upgrade pip \
	  && $$venv/bin/pip install -q --require-hashes -r requirements-dev.lock \
	  && $$venv/bin/pip install -q --no-deps -e . \
	  && echo "== $$($$venv/bin/python --version)" \
	  && $$venv/bin/pytest -q -p no:cacheprovider -m "not stack" tests/unit $(PYTEST_ARGS) \
	  || rc=1; \
	done; \
	[ $$found = 1 ] || echo "no Python 3.12/3.13 found"; exit $$rc

# Brings the stack down afterwards whatever the tests did, and keeps their exit code.
test: venv lint
	@rc=0; \
	if $(PS) stack up; then $(BIN)/pytest -q $(PYTEST_ARGS) || rc=$$?; else rc=$$?; fi; \
	$(PS) stack down || true; \
	exit $$rc

stack-up: venv
	$(PS) stack up

stack-down: venv
	$(PS) stack down

stack-status: venv
	$(PS) stack status

schema: venv
	$(PS) schema export docs

# The embedded mode: the whole platform in one process, no server needed; prints the dashboard
# link and simulates at a steady rate until Ctrl-C, then prints the summary.
demo: venv
	$(PS) demo

# The same on the real stack (brought up if needed): API, one worker per sink, the auditor and
# the simulator each in its own process; the summary compares the run with the stores.
demo-stack: venv
	$(PS) demo --stack

# Benchmarks against the real stack (brings it up; leaves it running): the components against
# raw clients, the whole pipeline, the write API (~9 minutes on 2 cores). Each part runs even
# when an earlier one failed; the exit status says whether all passed.
BENCH_COMPONENT_REPS ?= 3
bench: venv
	$(PS) stack up
	$(PS) topics ensure
	@rc=0; \
	$(BIN)/python -m bench.run --reps $(BENCH_COMPONENT_REPS) || rc=1; \
	$(PS) bench pipeline || rc=1; \
	$(PS) bench api || rc=1; \
	exit $$rc

# uv resolves for every supported Python (3.11-3.13) at once; it runs from its own venv so the
# project's locked venv stays exactly what the lock says.
UV_VERSION := 0.13.9
LOCK_ARGS := --generate-hashes --universal --python-version 3.11 -q --custom-compile-command "make lock"
lock:
	@[ -x .tools/bin/uv ] || { $(PYTHON) -m venv .tools && .tools/bin/pip install -q uv==$(UV_VERSION); }
	.tools/bin/uv pip compile pyproject.toml $(LOCK_ARGS) -o requirements.lock
	.tools/bin/uv pip compile pyproject.toml --extra dev $(LOCK_ARGS) -o requirements-dev.lock

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
