# Two commands on a fresh machine: `make run` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The main job runs the EDA notebook and the evaluation notebook on the shipped model (its PublicTest
# results), then a short, labelled demonstration training run, all with papermill into reports/runs/.
# More: make run ARGS="--steps eda train evaluate -p model_name=seed -p epochs=5 -p data_dir=path/to/fer2013"
ARGS ?=

SWEEP ?= sweeps/smoke.yaml

.PHONY: setup run sweep test lint bench lab demo browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[research,dev,demo,scale]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m fer run --demo $(ARGS)

sweep: $(STAMP)
	$(BIN)/python -m fer sweep $(SWEEP)

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# JupyterLab on the notebooks; they import `fer` from the editable install (no sys.path edits).
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# The browser demo on http://127.0.0.1:7860 (photos, webcam, clips): make demo ARGS="--host 0.0.0.0" for a class.
demo: $(STAMP)
	$(BIN)/python -m fer demo $(ARGS)

# The demo's browser test drives Debian's Chromium (Playwright uses it; nothing is downloaded from a browser CDN).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser test"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	  || echo "warning: could not install chromium (apt-get); tests/test_demo_browser.py will skip (fail with CI=true)"; }

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf $(VENV) runs reports/runs reports/runs.csv .pytest_cache .ruff_cache
