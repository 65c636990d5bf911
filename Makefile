# `make demo`: set everything up (idempotent) and run the main job on the built-in digits teacher.
# `make test`: set everything up and run the test suite (what CI runs).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo-out

.PHONY: setup demo test test-fast lint
setup:
	@bash scripts/setup.sh --browser

demo: setup
	$(VENV)/bin/compress demo --target all --bench cpu,mobile,browser --out $(DEMO_OUT) --overwrite

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser"

lint:
	$(VENV)/bin/ruff check .
