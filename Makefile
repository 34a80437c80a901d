# Relatch: the README's two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
export RELATCH_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
export RELATCH_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install install-dev run test lint bench browser node-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEVSTAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

install: $(STAMP)

install-dev: $(DEVSTAMP)

run: $(STAMP)
	$(BIN)/relatch serve

lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The suite in TEST_WORKERS processes (pytest-xdist): most e2e time is waiting on real
# servers, so two processes keep CI well inside its 15 minutes on two cores. Every test
# makes its own database, schema, Redis prefix, port and folder, so they run side by side.
TEST_WORKERS ?= 2
test: lint browser node-deps
	$(BIN)/pytest -n $(TEST_WORKERS)

# The bench environment: its own venv, so that the peer (fastapi-users), matplotlib,
# scipy and psutil never enter the project's dependencies. Relatch itself runs from .venv
# as shipped. BENCH_QUICK=1: a ~3-minute subset (bench/run.py).
BENCHENV := .venv-bench
BENCHSTAMP := $(BENCHENV)/.installed
BENCH_EXTRAS := "fastapi-users[sqlalchemy]==15.*" aiosqlite httpx aiosmtpd matplotlib scipy psutil
$(BENCHSTAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCHENV)
	$(BENCHENV)/bin/pip install --quiet --upgrade pip
	$(BENCHENV)/bin/pip install --quiet -e . $(BENCH_EXTRAS)
	touch $@

bench: $(STAMP) $(BENCHSTAMP)
	$(BENCHENV)/bin/python bench/run.py
	$(BENCHENV)/bin/python bench/enumeration.py
	$(if $(BENCH_QUICK),BENCH_IMPORT_ROWS=10000) $(BIN)/python bench/import_users.py

# Debian's chromium for the browser tests (no browser download by Playwright).
browser: node-deps
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium (need root and Debian's apt)"; exit 1; }; }

# npm packages of the tests, into the git-ignored node_modules (not committed, not bundled):
# axe-core for the accessibility check of the pages, and the official Edge Impulse npm client
# for tests/e2e/test_npm_client.py. One command for both: with no package.json, an
# `npm install --no-save` of one package prunes the others.
NODE_DEPS := axe-core@4.14.1 edge-impulse-api@1.95.13
node-deps:
	@test -f node_modules/axe-core/axe.min.js -a -f node_modules/edge-impulse-api/package.json \
	  -a "$$(cat node_modules/.node-deps 2>/dev/null)" = "$(NODE_DEPS)" || { \
	  echo "installing the npm packages of the tests: $(NODE_DEPS)"; \
	  npm install --no-save --no-package-lock --no-audit --no-fund --silent $(NODE_DEPS) \
	  && echo "$(NODE_DEPS)" > node_modules/.node-deps \
	  || { echo "could not install $(NODE_DEPS) (need npm and the npm registry)"; exit 1; }; }

clean:
	rm -rf $(VENV) $(BENCHENV) var build
