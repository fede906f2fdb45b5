# One place for every command a user or CI runs. Everything installs into ./.venv.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast bench ui stack-up stack-down clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use (headless Chromium for the report screenshot, npm for the corpus).
system-deps:
	@command -v chromium >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || \
	  { apt-get update -q && apt-get install -y -q chromium npm; } || \
	  echo "warning: could not install chromium/npm; the screenshot test will be skipped"

# The main job: the demo audit of two spam-filter releases on the embedded defaults.
demo: venv
	$(BIN)/llm2loss demo

test: venv system-deps
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_quality.py
	$(BIN)/python benchmarks/bench_phrasing.py
	$(BIN)/python benchmarks/bench_scale.py

# The image benchmark's CLIP, images and audited CNN, built once into ~/.cache/llm2loss/image_bench/.
image-bench-data: venv
	$(BIN)/python benchmarks/image_bench_data.py

# The Prefect UI on the demo's data (http://127.0.0.1:4200).
ui: venv
	PREFECT_SERVER_ANALYTICS_ENABLED=false $(BIN)/prefect server start --host 127.0.0.1

stack-up: venv
	$(BIN)/python -m infra.stack up

stack-down: venv
	$(BIN)/python -m infra.stack down

clean:
	rm -rf $(VENV) .pytest_cache llm2loss-store
