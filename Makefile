# Engagement Monitor — every entry point a person or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help install native clean-native services down status test test-cluster test-unit lint format demo bench soak bench-core worker api schemas clean

help:
	@echo "make demo      install, start Kafka + Redis + worker + API, replay a simulated stream"
	@echo "make test      install, start the services if needed, run the whole suite, stop what it started"
	@echo "make services  start local Kafka (KRaft) and Redis (no-op when already up);"
	@echo "               EM_LOCAL_KAFKA_BROKERS=3 make services starts a three-broker cluster"
	@echo "make test-cluster  a broker of a three-broker cluster killed mid-stream (a few minutes)"
	@echo "make down      stop what 'make services' started"
	@echo "make lint      ruff (lint + format check) and mypy --strict"
	@echo "make native    compile the hot modules with mypyc (make install does; clean-native undoes)"
	@echo "make bench     benchmarks"
	@echo "make soak      20 minutes of steady traffic; RSS, lag, latency over time (RELIABILITY.md)"

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The hot modules compiled with mypyc (engagement_monitor/native.py): rebuilt when a source
# changed, a no-op otherwise. `make install NATIVE=0` skips it (everything runs interpreted).
NATIVE ?= 1
install: $(STAMP)
ifeq ($(NATIVE),1)
	@$(PY) -m engagement_monitor.native build
endif

native: $(STAMP)
	@$(PY) -m engagement_monitor.native build

clean-native:
	@test -x $(PY) && $(PY) -m engagement_monitor.native clean || true

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

# A three-broker KRaft cluster of the test's own (a broker killed mid-stream); a few minutes.
test-cluster: install
	@started=$$(mktemp); \
	trap 'scripts/services.sh down --from "$$started"; rm -f "$$started"' EXIT; \
	scripts/services.sh up --started-file "$$started" && \
	$(PY) -m pytest -m cluster tests/integration/test_broker_cluster.py $(PYTEST_ARGS)

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

# 20 minutes of steady traffic: RSS, lag and latency over time, judged (see bench/soak.py).
SOAK_ARGS ?=
soak: install
	@started=$$(mktemp); \
	trap 'scripts/services.sh down --from "$$started"; rm -f "$$started"' EXIT; \
	scripts/services.sh up --started-file "$$started" && \
	$(PY) -m bench.soak $(SOAK_ARGS)

bench-core: install
	$(PY) bench/core_bench.py

worker: install
	$(VENV)/bin/engagement-monitor worker

api: install
	$(VENV)/bin/engagement-monitor api

schemas: install
	$(PY) scripts/gen_schemas.py

clean: down clean-native
	rm -rf var .cache
