# The two README commands: `make run` (the whole system) and `make test` (every test).
SHELL := /bin/bash
# Debian installs nginx in /usr/sbin, which a non-login shell may not have on its PATH.
export PATH := $(PATH):/usr/sbin:/sbin
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run run-ha status test install services nginx migrate bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

services:
	./scripts/ensure-services.sh

# Debian's nginx (the balancers of the local cluster), installed when missing; see the script.
nginx:
	./scripts/ensure-nginx.sh

migrate: install services
	$(VENV)/bin/osago-admin migrate

# The local cluster (API.md 1.1) under supervisord, which restarts whatever exits: nginx on 8080
# (core apps on 8180 + i) and 8081 (aggregators on 8280 + i), the workers and the sandbox; counts
# from OSAGO_CORE_INSTANCES, OSAGO_AGGREGATOR_INSTANCES, OSAGO_WORKER_INSTANCES (2 each). It prints
# where the page is and streams every log with its name; Ctrl-C stops everything gracefully.
run: migrate nginx
	$(VENV)/bin/python -m local_cluster run

# The same on data stores of its own (API.md 1.1, README "make run-ha"): a PostgreSQL primary
# (5434) and streaming replica (5433), a three-node RabbitMQ cluster (5701-5703) behind nginx's
# stream balancer (127.0.0.1:5700), all under .run/ha and stopped with the cluster.
run-ha: install services
	./scripts/ensure-nginx.sh stream
	$(VENV)/bin/python -m local_cluster run-ha

# What `make run` (or `make run-ha`) runs (supervisorctl status): each program's state, pid and uptime.
status:
	@$(VENV)/bin/python -m local_cluster status

# Browser tests drive Debian's chromium through Playwright (browser downloads are not possible here).
CHROMIUM := /usr/bin/chromium

# The HA tests (tests/faults/test_ha_cluster.py) put nginx's stream balancer before their RabbitMQ nodes.
test: install services
	./scripts/ensure-nginx.sh stream
	test -x $(CHROMIUM) || (apt-get update -qq && apt-get install -y -qq chromium)
	$(VENV)/bin/pytest

# Load benchmarks (README.md, "Benchmarks"): their own database, vhost and processes,
# about 10 minutes; JSON in bench/results/. BENCH_ARGS=--quick for a smoke run, or names of benchmarks.
bench: install services
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
