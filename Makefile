# Relatch: the README's two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
export RELATCH_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
export RELATCH_TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install install-dev run test lint bench browser clean

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

test: lint browser
	$(BIN)/pytest

bench: $(DEVSTAMP)
	$(BIN)/python bench/run.py

# Debian's chromium for the browser tests (no browser download by Playwright).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium (need root and Debian's apt)"; exit 1; }; }
	@# axe-core (npm) for the accessibility check of the pages; not committed, not bundled.
	@test -f node_modules/axe-core/axe.min.js || { \
	  echo "installing axe-core for the accessibility checks"; \
	  npm install --no-save --no-package-lock --no-audit --no-fund --silent axe-core@4.14.1 \
	  || { echo "could not install axe-core (need npm and the npm registry)"; exit 1; }; }

clean:
	rm -rf $(VENV) var build
