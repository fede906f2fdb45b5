# One place for every command a user or CI runs. Everything installs into ./.venv.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast bench ui stack-up stack-down clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" 2>/dev/null || \
	  $(BIN)/pip install -q --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || \
	  $(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use: headless Chromium (the report and browser tests) and npm (the
# demo corpus). Only what is missing is installed, each on its own apt line: npm and chromium
# asked together fail as one when npm conflicts with an installed nodejs. With CI=true a missing
# Chromium is an error here, as it is in the browser tests.
system-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { apt-get update -q && apt-get install -y -q chromium; } || \
	  { if [ "$(CI)" = "true" ]; then echo "error: could not install chromium (CI=true: the browser tests need it)"; exit 1; \
	    else echo "warning: could not install chromium; the browser tests will be skipped"; fi; }
	@command -v npm >/dev/null 2>&1 || \
	  { apt-get update -q && apt-get install -y -q npm; } || \
	  echo "warning: could not install npm; the demo corpus cannot be fetched"

# The main job: the demo audit of two spam-filter releases on the embedded defaults.
demo: venv
	$(BIN)/llm2loss demo

test: venv system-deps
	$(BIN)/python -m pytest -q

# The tests that need no service (no Prefect server, S3 server or Dask cluster): a quick check.
test-fast: venv
	$(BIN)/python -m pytest -q -m "not integration"

bench: venv
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_quality.py
	$(BIN)/python benchmarks/bench_phrasing.py
	$(BIN)/python benchmarks/bench_scale.py

# The image benchmark's CLIP, images and audited CNN, built once into ~/.cache/llm2loss/image_bench/.
image-bench-data: venv
	$(BIN)/python benchmarks/image_bench_data.py
	$(BIN)/python benchmarks/image_bench_data.py --audit-seed 11  # bench_image's later audit sets
	$(BIN)/python benchmarks/image_bench_data.py --audit-seed 23

# The Prefect UI on the demo's data (http://127.0.0.1:4200).
ui: venv
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/prefect server start --host 127.0.0.1

stack-up: venv
	$(BIN)/python -m infra.stack up

stack-down: venv
	$(BIN)/python -m infra.stack down

clean:
	rm -rf $(VENV) .pytest_cache llm2loss-store
