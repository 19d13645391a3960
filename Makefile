# Every target creates or reuses .venv by itself: on a fresh machine `make demo` and `make test`
# are the only set-up. The venv is rebuilt when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export XT_HOME ?= $(CURDIR)/.xero_tableau
# Run the tools as if the venv were activated (dg warns otherwise).
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo dev test lint imports typecheck defs pytest bench fuzz clean venv postgres

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The whole sync on the built-in sandbox.
demo: venv
	$(BIN)/xero-tableau demo

## Everything live on the sandbox: emulators, webhook receiver, a first sync, dagster dev (UI on :3000).
dev: venv
	$(BIN)/xero-tableau dev

## Everything CI checks: lint, format, import layering, types, definitions, the dagster CLI, the tests.
test: venv lint imports typecheck defs pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Dependencies point one way: the import-linter contracts in pyproject.toml (docs/architecture.md).
imports: venv
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/pyright

defs: venv
	cd $(CURDIR) && $(BIN)/dg check defs
	$(BIN)/dagster definitions validate -m xero_tableau.definitions
	$(BIN)/xero-tableau ci-materialize

pytest: venv postgres
	$(BIN)/pytest -q

## The production path is tested on a real PostgreSQL that the test session starts from these
## binaries (initdb + pg_ctl in a temp folder); as root on Debian, install them when missing.
postgres:
	@if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing PostgreSQL server binaries for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "PostgreSQL server binaries missing: install postgresql, or PostgreSQL tests are skipped"; \
	fi

## Benchmarks: each prints a table and, last, one JSON line of figures.
bench: venv
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

## The differential fuzzer at length: 500 random histories of changes and syncs, every sync
## step's Tableau data sources compared with a from-scratch replace (about 30 minutes; `make test`
## runs 25). Prints each distinct mismatch, then one JSON line of counters.
fuzz: venv
	$(BIN)/python -m xero_tableau_tests.fuzz_run --examples $${XT_FUZZ_EXAMPLES:-500} --steps $${XT_FUZZ_STEPS:-6}

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
