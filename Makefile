# `make demo`: set everything up (idempotent), then distil the built-in digits teacher into a quarter-size
# student, quantize it, export every target and benchmark them (report in demo-out/report.html).
# `make test`: set everything up and run the test suite but its minute-long tests (`make test-heavy`; CI runs both).
# `make wheel`: dist/edge_compress-*.whl, to install in another virtualenv (README "Set-up notes").
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo-out

.PHONY: setup demo test test-heavy test-fast lint wheel
setup:
	@bash scripts/setup.sh --browser

demo: setup
	$(VENV)/bin/compress demo --student auto --ratio 0.25 --quantize int8 --target all,onnx-web \
		--bench cpu,mobile,browser --out $(DEMO_OUT) --overwrite

test: setup
	$(PY) -m pytest -q -m "not heavy"

# the minute-long end-to-end tests (whole demo runs, training to accuracy, the wheel): CI runs them too
test-heavy: setup
	$(PY) -m pytest -q -m heavy

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser"

lint:
	$(VENV)/bin/ruff check .

wheel:
	@bash scripts/setup.sh
	$(PY) -m pip wheel --no-deps --no-build-isolation -q -w dist .
	@rm -rf build
