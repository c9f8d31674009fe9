# dedup: the entry point for every task. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

# ---- set-up ---------------------------------------------------------------------------
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade 'pip==25.3' 'setuptools<81' wheel
	$(VENV)/bin/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create .venv with the project and its pinned dependencies

.PHONY: setup
setup: venv ## install everything: .venv, Kafka, Azurite, Milvus Lite, Triton, Prometheus (idempotent)
	bash stack/setup.sh

.PHONY: lock
lock: ## re-pin requirements.lock from a fresh resolve of pyproject.toml
	rm -rf /tmp/dedup-lock && $(PYTHON) -m venv /tmp/dedup-lock
	/tmp/dedup-lock/bin/pip install -q 'setuptools<81' wheel && /tmp/dedup-lock/bin/pip install -q -e '.[dev]'
	/tmp/dedup-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

# ---- the local stack ------------------------------------------------------------------
.PHONY: up
up: setup ## start Kafka, Azurite, Milvus, Triton and Prometheus on 127.0.0.1 (idempotent)
	bash stack/up.sh

.PHONY: down
down: ## stop the local stack
	bash stack/down.sh

.PHONY: status
status: ## show which parts of the local stack run, their PIDs and ports
	bash stack/status.sh

# ---- code -----------------------------------------------------------------------------
.PHONY: proto
proto: venv ## regenerate the Python code of protos/ into libs/dedup/v1
	bash scripts/gen_proto.sh

.PHONY: proto-check
proto-check: venv ## fail when the checked-in generated code is stale
	bash scripts/gen_proto.sh --check

.PHONY: lint
lint: venv ## ruff, mypy and the import layers (apps -> services -> dedup, no service imports another)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: venv ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: unit
unit: venv ## unit tests (no stack needed)
	$(VENV)/bin/pytest -m 'not integration and not faults'

.PHONY: integration
integration: setup ## integration tests against the real stack (started and stopped by the tests)
	$(VENV)/bin/pytest -m integration

.PHONY: chart
chart: venv ## lint, render and validate the Helm chart, its alerts, dashboard and Dockerfiles
	bash scripts/chart.sh

.PHONY: test
test: setup proto-check lint chart ## everything CI runs: set-up, proto check, lint, chart, unit, integration and fault tests, the images
	$(VENV)/bin/pytest
	$(MAKE) faults
	$(MAKE) images images-smoke

.PHONY: faults
faults: setup ## the fault suite on a private stack: kills, outages, poison, replicas (tests/faults)
	$(VENV)/bin/pytest tests/faults -m faults

.PHONY: demo
demo: setup ## run the main job on the local stack and print what happened
	bash scripts/demo.sh

# ---- images ---------------------------------------------------------------------------
# Settings (DEDUP_IMAGES_REPOSITORY, _STORAGE, _RUNTIME, _ULIMITS, _CA_BUNDLE): images/lib.sh.
.PHONY: images
images: ## build the base image (debootstrap, no registry) and every service's image with podman
	nice -n 10 bash images/build.sh

.PHONY: images-smoke
images-smoke: ## each image: uid 10001, /healthz, not ready without its dependencies, SIGTERM at any point
	bash images/smoke.sh

.PHONY: images-play
images-play: setup ## the chart's Deployments with podman kube play on a private stack: pods ready, the demo's photos decided as make demo decides them
	bash images/play-demo.sh

.PHONY: images-push
images-push: ## push the images to REGISTRY (e.g. REGISTRY=registry.example.com/team/dedup)
	bash images/push.sh $(REGISTRY)

# ---- measurements ---------------------------------------------------------------------
# The peers bench/scan_cost.py runs, in a venv of their own: Immaculate needs Python >= 3.12.
PEERS_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12))
PEERS_VENV := bench/.venv-peers
$(PEERS_VENV)/.installed: bench/peers-requirements.txt
	@test -n "$(PEERS_PYTHON)" || { echo "bench-peers: no Python 3.12 (set PEERS_PYTHON)" >&2; exit 1; }
	rm -rf $(PEERS_VENV) && $(PEERS_PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q -r bench/peers-requirements.txt
	touch $@

.PHONY: bench-peers
bench-peers: $(PEERS_VENV)/.installed ## the venv of the peers bench/scan_cost.py compares with (Immaculate 0.3.0, Python 3.12)

# Milvus standalone for bench/milvus_growth.py --server standalone, in a venv of its own.
MILVUS_VENV := bench/.venv-milvus
STANDALONE_SIZES ?= 10000,100000
$(MILVUS_VENV)/.installed: bench/milvus-requirements.txt
	rm -rf $(MILVUS_VENV) && $(PYTHON) -m venv $(MILVUS_VENV)
	$(MILVUS_VENV)/bin/pip install -q -r bench/milvus-requirements.txt
	touch $@

.PHONY: bench-milvus
bench-milvus: $(MILVUS_VENV)/.installed ## the venv of the Milvus standalone server bench/milvus_growth.py measures indexes on (Milvus 2.3.5)

.PHONY: bench
bench: setup bench-peers bench-milvus ## dedup scan's cost vs decode-only and the peers (FILES=N), the matcher's with its LSH screen and without, the ranker's state spilled and in memory, then on the local stack: hasher throughput, back-fill lister, embedder throughput, the pipeline streaming; Milvus cost at 10k/100k/1M stored (GROWTH_SIZES=..., a private Milvus Lite), and HNSW's at 10k/100k on a Milvus standalone (STANDALONE_SIZES=...); each service's RSS from 1k to 10k images seen (MEMORY_IMAGES=100000)
	$(PY) -m bench.scan_cost $(if $(FILES),--files $(FILES))
	$(PY) -m bench.matcher_cost --against screen_inliers=0
	$(PY) -m bench.ranker_state
	$(MAKE) up
	$(PY) bench/hasher_throughput.py --milvus
	$(PY) bench/backfill_lister.py
	$(PY) bench/embedder_eval.py --throughput-only
	$(PY) -m bench.streaming
	$(PY) bench/milvus_growth.py $(if $(GROWTH_SIZES),--sizes $(GROWTH_SIZES))
	$(PY) bench/milvus_growth.py --server standalone --kinds embedding --embedding-index HNSW --sizes $(STANDALONE_SIZES)
	$(PY) -m bench.memory_growth $(if $(MEMORY_IMAGES),--images $(MEMORY_IMAGES))

.PHONY: bench-rss
bench-rss: setup ## dedup scan's peak RSS (all its processes) on 100 and 1,000 files (SIZES=100,1000,10000)
	$(PY) -m bench.scan_cost --rss-sweep $(if $(SIZES),--sweep-sizes $(SIZES))

.PHONY: bench-decode-memory
bench-decode-memory: venv ## the hasher's peak RSS with four 11500x11500 flat PNGs in flight vs its chart limit
	$(PY) -m bench.decode_memory $(if $(CODE),--code $(CODE))

.PHONY: eval
eval: setup ## dedup scan vs imagehash phash/whash and PDQ on the labelled sets (DATA=../shared/data/dev) and a generated set; the kept copy on edited groups
	$(PY) -m bench.eval $(if $(DATA),--data $(DATA))
	$(PY) -m bench.keeper $(if $(DATA),--data $(DATA))

.PHONY: clean
clean: down ## stop the stack and remove the run directory (keeps installed tools)
	rm -rf .run
