# engagement-stream: one obvious way to set up, run and check.
# Every target installs what it needs on a fresh machine and is quick when it is already there.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE ?= $(HOME)/.cache/engagement-stream
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' streams/testbed/brokers/pom.xml)
KAFKA_LIB := $(CACHE)/kafka-$(KAFKA_VERSION)/lib
export ENGAGEMENT_KAFKA_LIB ?= $(abspath $(KAFKA_LIB))
REGISTRY_VERSION := $(shell sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' streams/testbed/registry/pom.xml)
REGISTRY_DIR := $(CACHE)/apicurio-registry-$(REGISTRY_VERSION)
export ENGAGEMENT_REGISTRY_DIR ?= $(abspath $(REGISTRY_DIR))
PYTEST_ARGS ?=
HELM_VERSION := v3.22.0
HELM := $(CACHE)/bin/helm
# As helm's own Makefile: its version, and Kubernetes 1.37 (its client-go) as the default
# .Capabilities.KubeVersion and lint target (a plain `go install` would say 1.20).
HELM_LDFLAGS := -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37 \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37
export ENGAGEMENT_HELM ?= $(abspath $(HELM))
CHART := helm/engagement-stream

.PHONY: help venv compiled deps kafka-jars registry system-deps helm-bin chart demo test faults unit lint format clean bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e '.[embedded,rocksdb,fit,registry,dev]'
	touch $@

# The pure core (agents/logic) compiled by mypyc (from the dev extra's mypy) into build/compiled, with
# agents/build_compiled.py; rebuilt when a source it is compiled from changes. agents.logic loads
# it only while its stamp matches the sources (else it runs the .py files and warns why). The list
# of source names is a prerequisite too, rewritten only when a module is added or removed (the
# folders' own times also change when Python writes their __pycache__, which needs no rebuild).
COMPILED := build/compiled/agents-logic.stamp.json
COMPILED_SOURCES := $(sort $(wildcard agents/logic/*.py) $(wildcard schemas/*.py))
COMPILED_LIST := build/compiled-sources.txt
$(shell mkdir -p build && printf '%s\n' $(COMPILED_SOURCES) > $(COMPILED_LIST).new && \
  { cmp -s $(COMPILED_LIST).new $(COMPILED_LIST) && rm $(COMPILED_LIST).new || mv $(COMPILED_LIST).new $(COMPILED_LIST); })
COMPILED_FROM := $(filter-out agents/logic/__init__.py,$(COMPILED_SOURCES)) agents/build_compiled.py $(COMPILED_LIST)
$(COMPILED): $(COMPILED_FROM) $(VENV)/.installed
	@command -v cc >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null)
	@test -f "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-dev >/dev/null)
	$(BIN)/python -m agents.build_compiled

compiled: $(COMPILED) ## compile agents/logic with mypyc into build/ (ENGAGEMENT_PURE_PYTHON=1 runs the .py files)

venv: $(VENV)/.installed $(COMPILED) ## create .venv, install the project with all extras, compile agents/logic

$(KAFKA_LIB)/.complete: streams/testbed/brokers/pom.xml
	@command -v mvn >/dev/null || (apt-get update -qq && apt-get install -y -qq maven)
	mvn -q -B -f streams/testbed/brokers/pom.xml dependency:copy-dependencies -DoutputDirectory=$(KAFKA_LIB)
	touch $@

kafka-jars: $(KAFKA_LIB)/.complete ## fetch Apache Kafka's jars from Maven Central (cached outside the repo)

$(REGISTRY_DIR)/.complete: streams/testbed/registry/pom.xml
	@command -v mvn >/dev/null || (apt-get update -qq && apt-get install -y -qq maven)
	mvn -q -B -f streams/testbed/registry/pom.xml package -Dregistry.dir=$(abspath $(REGISTRY_DIR))
	touch $@

registry: $(REGISTRY_DIR)/.complete ## build the test Schema Registry (Apicurio, from Maven Central; cached outside the repo)

SYSTEM_TOOLS := kcat promtool chromium valgrind
system-deps: ## install Debian packages the tests use (kcat, prometheus, chromium, valgrind)
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat prometheus chromium valgrind >/dev/null; \
	  (systemctl disable --now prometheus >/dev/null 2>&1 || pkill -x prometheus || true); \
	fi

$(HELM):
	@command -v go >/dev/null || { echo "helm-bin needs Go (https://go.dev/dl/)"; exit 1; }
	GOBIN=$(abspath $(CACHE)/bin) CGO_ENABLED=0 go install -trimpath -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

helm-bin: $(HELM) ## build helm from the Go module proxy (cached outside the repo)

chart: venv helm-bin ## helm lint every ci/ scenario, then the chart tests (render, schemas, image)
	@for f in "" $(CHART)/ci/*-values.yaml; do \
	  echo "helm lint --strict $(CHART) $${f:+-f $$f}"; $(HELM) lint --strict --quiet $(CHART) $${f:+-f $$f} || exit 1; \
	done
	$(BIN)/python -m pytest tests/unit/test_helm_chart.py $(PYTEST_ARGS)

deps: venv kafka-jars registry system-deps helm-bin ## everything the tests need

demo: venv ## run the main job on the embedded broker
	$(BIN)/engagement demo

test: deps ## run every test (unit, agents, integration on Apache Kafka and Tansu, chart, fault scenarios; unit and agents once more on pure Python)
	@for f in "" $(CHART)/ci/*-values.yaml; do \
	  $(HELM) lint --strict --quiet $(CHART) $${f:+-f $$f} >/dev/null || exit 1; \
	done
	$(BIN)/python -m pytest -m "not faults" $(PYTEST_ARGS)
	ENGAGEMENT_PURE_PYTHON=1 $(BIN)/python -m pytest tests/unit tests/agents $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests/faults -m faults $(PYTEST_ARGS)

faults: deps ## fault scenarios on Apache Kafka (kill -9, takeover, broker restart, SIGTERM, DLQ, abuse)
	$(BIN)/python -m pytest tests/faults -m faults $(PYTEST_ARGS)

# Quix Streams (a system the bench compares with) in a virtual environment of its own, from
# pinned requirements, so that its pins never touch ours.
QUIX_VENV := .venv-quix
$(QUIX_VENV)/.installed: bench/quix-requirements.txt
	$(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install -q --disable-pip-version-check -r bench/quix-requirements.txt
	touch $@

BENCH_ARGS ?=
bench: venv kafka-jars $(QUIX_VENV)/.installed ## benchmark vs the raw-client limit, Quix Streams with state and naive Faust (quick: BENCH_ARGS="--events 200000 --users 20000 --skip-large")
	$(BIN)/engagement bench --quix-python $(QUIX_VENV)/bin/python $(BENCH_ARGS)

unit: venv helm-bin ## unit tests only (no loop, no broker)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: venv ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## remove the virtual environment and build leftovers
	rm -rf $(VENV) $(QUIX_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
