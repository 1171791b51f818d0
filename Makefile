# churn-lakehouse: `make demo` runs the whole pipeline on embedded defaults,
# `make test` runs the test suite. Both work on a machine with only Python 3.11 + pip.

SHELL := /bin/bash
# uv is installed with pip when missing; `python3 -m uv` works wherever pip put it.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home
DBT := cd dbt_project && $(UV) run dbt

.PHONY: setup uv demo test ui docs docs-serve lint format clean

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet uv 2>/dev/null || \
		python3 -m pip install --quiet --user --break-system-packages uv

setup: uv
	$(UV) sync --frozen
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > $(DAGSTER_HOME)/dagster.yaml
	$(DBT) parse --quiet --profiles-dir .

demo: setup
	$(UV) run churn demo

test: setup
	$(UV) run pytest

ui: setup
	$(UV) run dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

docs: setup
	$(UV) run churn dbt docs generate
	@echo "Feature catalog: dbt_project/target/index.html (or: make docs-serve)"

docs-serve: docs
	$(UV) run churn dbt docs serve --host 127.0.0.1 --port 8080 --no-browser

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports
	$(UV) run mypy

format: setup
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

clean:
	rm -rf var dbt_project/target dbt_project/logs
