# Two commands on a fresh machine: `make run` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Main-job settings (override: make run DATA=path EPOCHS=10 MODEL=vgg_lite).
DATA   ?= data/fer2013
MODEL  ?= seed
EPOCHS ?= 2
OUT    ?= runs/main

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	@if [ -e "$(DATA)" ]; then \
	  $(BIN)/python -m fer train --data $(DATA) --model $(MODEL) --epochs $(EPOCHS) --out $(OUT); \
	else \
	  echo "SMOKE RUN: $(DATA) not found (see data/README.md); training on a synthetic sample instead."; \
	  $(BIN)/python -m fer sample --out data/sample && \
	  $(BIN)/python -m fer train --data data/sample --model $(MODEL) --epochs $(EPOCHS) --out $(OUT)-smoke; \
	fi

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
