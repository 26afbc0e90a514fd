# Engagement Monitor — every entry point a person or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help install services down status test test-unit lint format demo bench bench-core worker api schemas clean

help:
	@echo "make demo      install, start Kafka + Redis + worker + API, replay a simulated stream"
	@echo "make test      install, start the services if needed, run the whole suite, stop what it started"
	@echo "make services  start local Kafka (KRaft) and Redis (no-op when already up)"
	@echo "make down      stop what 'make services' started"
	@echo "make lint      ruff (lint + format check) and mypy --strict"
	@echo "make bench     benchmarks"

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

services: install
	@scripts/services.sh up

down:
	@scripts/services.sh down

status:
	@scripts/services.sh status

# Starts only what is not already running, and stops only that afterwards, even on failure.
test: install
	@started=$$(mktemp); \
	trap 'scripts/services.sh down --from "$$started"; rm -f "$$started"' EXIT; \
	scripts/services.sh up --started-file "$$started" && \
	scripts/install_browser.sh && \
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests --ignore=tests/integration $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Everything on one machine until Ctrl-C; stops only what it started.
DEMO_ARGS ?=
demo: install
	@started=$$(mktemp); \
	trap 'scripts/services.sh down --from "$$started"; rm -f "$$started"' EXIT; \
	scripts/services.sh up --started-file "$$started" && \
	$(VENV)/bin/engagement-monitor demo $(DEMO_ARGS)

BENCH_ARGS ?=
bench: install
	@started=$$(mktemp); \
	trap 'scripts/services.sh down --from "$$started"; rm -f "$$started"' EXIT; \
	scripts/services.sh up --started-file "$$started" && \
	$(VENV)/bin/engagement-monitor bench $(BENCH_ARGS)

bench-core: install
	$(PY) bench/core_bench.py

worker: install
	$(VENV)/bin/engagement-monitor worker

api: install
	$(VENV)/bin/engagement-monitor api

schemas: install
	$(PY) scripts/gen_schemas.py

clean: down
	rm -rf var .cache
