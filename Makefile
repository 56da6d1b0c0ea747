# Threshold: `make run` serves on http://localhost:8400 (127.0.0.1:8400) (SQLite in ./var); `make test` runs every suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8400
# two workers, whole files each (module fixtures stay on one worker); the 40 slowest tests listed at the end
PYTEST_ARGS ?= -n 2 --dist loadfile --durations=40
SOAK_ARGS ?=

.PHONY: install run migrate demo test lint typecheck bench bench-peers soak docs clean translations

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

NODE_STAMP := tests/interop/node/node_modules/.installed

$(NODE_STAMP): tests/interop/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/interop/node --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); \
	else echo "npm not found: the openid-client interop tests will be skipped (CI installs Node)"; fi

PEERS_STAMP := bench/peers/node_modules/.installed

# The benchmarks serve Threshold from a venv of their own on the fastest CPython >= 3.11 here
# (bench/release_python.py): a release build, as the Docker image's python:3.11-slim is, not pyenv's
# default build (no PGO, no LTO: Python code 15-40 % slower). BENCH_PYTHON=... chooses another.
BENCH_PYTHON ?= $(shell $(PYTHON) bench/release_python.py 2>/dev/null || echo $(PYTHON))
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml
	$(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(BENCH_STAMP)

# the npm peers of bench/peers.py: committed manifest and lock in bench/peer_apps/, installed into bench/peers/
$(PEERS_STAMP): bench/peer_apps/package.json bench/peer_apps/package-lock.json
	mkdir -p bench/peers
	cp bench/peer_apps/package.json bench/peer_apps/package-lock.json bench/peers/
	npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error
	touch $(PEERS_STAMP)

# Bytecode for the project's own modules, written even where PYTHONDONTWRITEBYTECODE is set (as on the
# CI machines): without it every `threshold` command, server and worker compiles ~230 modules from
# source as it starts (0.4-0.7 s of CPU each on a small machine). Up-to-date files are skipped.
install: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 src tests demo scripts > /dev/null

migrate: install
	$(BIN)/threshold migrate

run: migrate
	$(BIN)/threshold serve --host $(HOST) --port $(PORT)

# Threshold and one application per architecture (needs Debian's nginx); prints a URL for each; Ctrl-C stops
DEMO_PORT ?= 8600
demo: install
	$(BIN)/python -m demo --base-port $(DEMO_PORT)

lint: install
	$(BIN)/ruff check src tests bench scripts demo
	$(BIN)/ruff format --check src tests bench scripts demo

typecheck: install
	$(BIN)/mypy

test: install $(NODE_STAMP) lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py
	$(BENCH_VENV)/bin/python bench/offboarding.py
	$(BENCH_VENV)/bin/python bench/bff.py
	$(BENCH_VENV)/bin/python bench/console.py

# endurance, not part of `make test`: 10 minutes of mixed traffic on PostgreSQL + Redis, errors and RSS growth
# (e.g. SOAK_ARGS="--minutes 3 --backend sqlite"); results in bench/results/soak-*
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

bench-peers: install $(BENCH_STAMP) $(PEERS_STAMP)
	$(BENCH_VENV)/bin/python bench/peers.py

# extract the texts of pages, mails and errors into src/threshold/locale/messages.pot and update every
# shipped catalogue against it (new texts arrive empty: tests/unit/test_translations.py fails until translated)
translations: install
	$(BIN)/python -m scripts.translations

clean:
	rm -rf $(VENV) $(BENCH_VENV) var .pytest_cache .mypy_cache .ruff_cache test-artifacts site

# the documentation site: regenerate the reference pages (settings, JSON API, CLI), then build into site/
docs: install
	$(BIN)/python -m scripts.docs_reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
