# engagement-stream: one obvious way to set up, run and check.
# Every target installs what it needs on a fresh machine and is quick when it is already there.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE ?= $(HOME)/.cache/engagement-stream
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' streams/brokers/pom.xml)
KAFKA_LIB := $(CACHE)/kafka-$(KAFKA_VERSION)/lib
export ENGAGEMENT_KAFKA_LIB ?= $(abspath $(KAFKA_LIB))
PYTEST_ARGS ?=

.PHONY: help venv deps kafka-jars system-deps demo test unit agents integration lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e '.[embedded,rocksdb,fit,dev]'
	touch $@

venv: $(VENV)/.installed ## create .venv and install the project with all extras

$(KAFKA_LIB)/.complete: streams/brokers/pom.xml
	@command -v mvn >/dev/null || (apt-get update -qq && apt-get install -y -qq maven)
	mvn -q -B -f streams/brokers/pom.xml dependency:copy-dependencies -DoutputDirectory=$(KAFKA_LIB)
	touch $@

kafka-jars: $(KAFKA_LIB)/.complete ## fetch Apache Kafka's jars from Maven Central (cached outside the repo)

SYSTEM_TOOLS := kcat promtool
system-deps: ## install Debian packages the tests use (kcat, prometheus)
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat prometheus >/dev/null; \
	  (systemctl disable --now prometheus >/dev/null 2>&1 || pkill -x prometheus || true); \
	fi

deps: venv kafka-jars system-deps ## everything the tests need

demo: venv ## run the main job on the embedded broker
	$(BIN)/engagement demo

test: deps ## run every test (unit, agents, integration on Apache Kafka and Tansu)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: venv ## unit tests only (no loop, no broker)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: venv ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## remove the virtual environment and build leftovers
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
