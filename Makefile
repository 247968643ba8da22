# lakehouse: `make help` lists the targets. The two that matter on a fresh clone:
#   make run    set up .venv and run the demo pipeline on the embedded default (no services)
#   make test   set up .venv (with dev + spark extras), lint, and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
UV_VERSION := 0.13.9
# uv resolves and installs the ~200 pinned packages in about a minute (pip: about three), and pip
# stays the fallback where uv cannot reach the index. compat mode puts the project root on
# sys.path, so new packages need no reinstall; -qq hides the machine's "Location ... is ignored"
# notices about its extra indexes.
EDITABLE := --config-settings editable_mode=compat
# These machines set PYTHONDONTWRITEBYTECODE=1: without .pyc files written at install time every
# process (each CLI call, test worker, run subprocess) recompiles every module it imports (seconds
# each). uv compiles the packages it installs; COMPILE does the project's own sources (only the
# files changed since the last time).
COMPILE = $(BIN)/python -m compileall -q -j 0 lakehouse assets resources spark tests bench >/dev/null
DEV_SPEC := '.[dev,spark]'

INSTALL = { $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python $(EDITABLE) $(1) || $(PIP) install -qq $(EDITABLE) $(1); }
DAYS ?= 7
PYTEST_ARGS ?=
# tests touching one shared server (Postgres may be restarted by the CDC test) share an xdist group
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help venv venv-dev browser services services-stop minio trino trino-stop run test lint typecheck format unit integration e2e ui bench dbt-docs faults clean

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -qq uv==$(UV_VERSION) || echo "uv unavailable: installing with pip"

$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(call INSTALL,-e .)
	@$(COMPILE)
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(call INSTALL,-e $(DEV_SPEC))
	@touch $@ $(VENV)/.stamp-base

venv: $(VENV)/.stamp-base ## create .venv and install the project

venv-dev: $(VENV)/.stamp-dev ## create .venv with the dev and spark extras (what CI uses)

run: venv ## run the main job: simulate DAYS days of landing data and materialise every asset (local, no services)
	@$(COMPILE)
	$(BIN)/lakehouse demo --reset --days $(DAYS)

browser: ## Debian's headless Chromium for the browser test (skipped when installed; needs root and apt)
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
		|| echo "could not install chromium: the browser test skips (and fails under LAKEHOUSE_REQUIRE_SERVICES=1)"

services: ## install (Debian's packages, where missing) and start PostgreSQL and Redis on 127.0.0.1 for the tests
	@bash deploy/local/services.sh start || { test "$$LAKEHOUSE_REQUIRE_SERVICES" != 1 && \
		echo "could not start PostgreSQL/Redis: their tests skip (and fail under LAKEHOUSE_REQUIRE_SERVICES=1)"; }

spark-jars: venv-dev ## Spark's Delta, Iceberg, S3A and JDBC jars for the installed pyspark, from Maven Central once into ~/.cache/lakehouse
	@LAKEHOUSE_PYTHON=$(BIN)/python bash deploy/local/spark.sh install || { test "$$LAKEHOUSE_REQUIRE_SERVICES" != 1 && \
		echo "could not resolve Spark's connectors: the native Spark tests skip (and fail under LAKEHOUSE_REQUIRE_SERVICES=1)"; }

services-stop: ## stop the PostgreSQL and Redis that `make services` started
	bash deploy/local/services.sh stop

minio: ## build the MinIO server from its Go module into ~/.cache/lakehouse (once; the S3 suite runs on it too)
	bash deploy/local/minio.sh install

TRINO_PORT ?= 8080

TRINO_HTTPS_PORT ?= 8443
TRINO_CA = $${TRINO_STATE:-$${LAKEHOUSE_HOME:-.lakehouse}/trino}/etc/tls/ca.pem

trino: venv ## Trino 476 over this lake (S3 lakes; Iceberg via the PostgreSQL catalog), HTTPS on 127.0.0.1:$(TRINO_HTTPS_PORT) with passwords and the governance roles (LAKEHOUSE_TRINO_PASSWORD[_<USER>]); fetched once into ~/.cache/lakehouse
	TRINO_PORT=$(TRINO_PORT) TRINO_HTTPS_PORT=$(TRINO_HTTPS_PORT) bash deploy/local/trino.sh start
	@echo "then: export LAKEHOUSE_TRINO_URL=https://lakehouse@127.0.0.1:$(TRINO_HTTPS_PORT) LAKEHOUSE_TRINO_CA_FILE=$(TRINO_CA)"
	@echo "Delta tables, once: .venv/bin/lakehouse trino register --execute"
	@echo "query:              .venv/bin/lakehouse query --engine trino '...'"

trino-stop: ## stop the Trino that `make trino` started
	bash deploy/local/trino.sh stop

test: venv-dev lint browser services spark-jars ## lint, type-check and run the whole test suite (TEST_WORKERS processes)
	@$(COMPILE)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: venv-dev ## ruff (lint + format check) and mypy on lakehouse/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p lakehouse

format: venv-dev ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: venv-dev ## unit tests only
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: venv-dev ## integration tests only
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

e2e: venv-dev ## end-to-end tests only
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

ui: venv ## start the Dagster UI (http://127.0.0.1:3000) and daemon; Ctrl-C stops both
	$(BIN)/lakehouse ui

faults: venv-dev ## kill -9 fault injection, 50 trials per operation x format x storage (writes bench/results/faults-<date>.md)
	$(BIN)/python -m bench.faults --trials $${TRIALS:-50}

dbt-docs: venv ## build the dbt documentation of the marts (dbt_project/target/index.html) over the current lake
	cd dbt_project && ../$(BIN)/dbt docs generate --project-dir . --profiles-dir .
	@echo "open dbt_project/target/index.html, or: cd dbt_project && ../$(BIN)/dbt docs serve --host 127.0.0.1 --port 8081"

bench: venv-dev ## run the benchmarks (prints ratios; writes bench/results/)
	$(BIN)/python -m bench

clean: ## remove the local state folder (.lakehouse) and caches, keep .venv
	rm -rf .lakehouse .pytest_cache .mypy_cache .ruff_cache .hypothesis
