# whoop-sync: every target sets up what it needs first, so a fresh clone only needs `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.synced

.PHONY: install run test drills lint format migrate bench soak services clean

$(BIN)/uv:
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet uv==$(UV_VERSION)

$(STAMP): $(BIN)/uv pyproject.toml uv.lock
	@VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/uv sync --frozen --inexact --active --quiet
	@touch $(STAMP)

install: $(STAMP)

services:
	@scripts/ensure-services.sh

migrate: install
	@$(BIN)/whoop-sync migrate

run: install
	@$(BIN)/python scripts/run_demo.py

test: install services
	@$(BIN)/pytest

# Fault drills on real processes: PostgreSQL restart, Redis away, worker SIGKILL (private servers).
drills: install services
	@$(BIN)/pytest -m drills tests/faults

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

format: install
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

bench: install services
	@$(BIN)/python -m bench

# Bounded (about ten minutes): 10,000 webhooks with a PostgreSQL restart, a Redis restart and a
# worker SIGKILL, on private servers; figures in bench/results/soak.json.
soak: install services
	@$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
