# The two README commands: `make run` (the whole system) and `make test` (every test).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test install services migrate bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

services:
	./scripts/ensure-services.sh

migrate: install services
	$(VENV)/bin/osago-admin migrate

run: migrate
	@echo "Web page: http://127.0.0.1:8080/ (second core app: http://127.0.0.1:8180/); Ctrl-C stops everything"
	$(VENV)/bin/honcho start -f Procfile

# Browser tests drive Debian's chromium through Playwright (browser downloads are not possible here).
CHROMIUM := /usr/bin/chromium

test: install services
	test -x $(CHROMIUM) || (apt-get update -qq && apt-get install -y -qq chromium)
	$(VENV)/bin/pytest

# Load benchmarks (README.md, "Benchmarks"): their own database, vhost and processes,
# about 10 minutes; JSON in bench/results/. BENCH_ARGS=--quick for a smoke run, or names of benchmarks.
bench: install services
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
