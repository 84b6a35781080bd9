# Everything a fresh machine needs is installed by these targets (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLKIT := $(BIN)/toolkit
STAMP  := $(VENV)/.installed

# Machines with no route to the PyTorch CPU index can keep its wheels in a folder: map the
# index to it (a per-machine mirror, never written into a lockfile; see docs/lock.md).
# This workplace's machines carry torch's CPU wheel in /opt/wheels.
TORCH_CPU_WHEEL := $(firstword $(wildcard /opt/wheels/torch-*+cpu-*.whl))
ifneq ($(TORCH_CPU_WHEEL),)
export TOOLKIT_MIRRORS ?= https://download.pytorch.org/whl/cpu=$(patsubst %/,%,$(dir $(TORCH_CPU_WHEEL)))
endif

.PHONY: help venv engine base doctor lock build-cpu build-gpu cpu-run gpu-run repro-check demo \
        test test-unit test-gpu-image lint format clean

help:
	@echo "make demo        run the bundled example end to end (engine, base, build, run)"
	@echo "make test        unit + integration tests against a real Docker Engine"
	@echo "make lint        ruff + mypy"
	@echo "make engine      make sure a Docker Engine is running (installs it on Debian as root)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# CPU torch for the runtime's native tests (the images get theirs from the lockfiles)
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_CPU_WHEEL),--find-links $(dir $(TORCH_CPU_WHEEL)),--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple)
	touch $(STAMP)

venv: $(STAMP)

engine:
	@bash docker/engine.sh

base: venv engine
	$(TOOLKIT) base

doctor: venv
	$(TOOLKIT) doctor

lock: venv
	$(TOOLKIT) lock

build-cpu: base
	$(TOOLKIT) build --target cpu

# Several GB of CUDA wheels: never part of `make test`.
build-gpu: base
	$(TOOLKIT) build --target gpu

cpu-run: build-cpu
	$(TOOLKIT) run --target cpu

# Needs an NVIDIA GPU and the NVIDIA container runtime (`toolkit doctor` checks both).
gpu-run: build-gpu
	$(TOOLKIT) run --target gpu

repro-check: build-cpu
	$(TOOLKIT) repro-check --runs 2

# The README's first command: the bundled example end to end on a fresh machine.
demo: cpu-run
	$(TOOLKIT) runs

# CI sets CI=true: docker tests then fail instead of skipping when no engine answers.
test: venv engine
	$(BIN)/pytest

test-unit: venv
	$(BIN)/pytest tests/unit

test-gpu-image: venv engine
	$(BIN)/pytest -m gpu_image

lint: venv
	$(BIN)/ruff check toolkit tests benchmarks
	$(BIN)/ruff format --check toolkit tests benchmarks
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format toolkit tests benchmarks
	$(BIN)/ruff check --fix toolkit tests benchmarks

clean:
	rm -rf $(VENV) .toolkit .pytest_cache .mypy_cache .ruff_cache
