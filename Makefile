# The two commands of the README. Both create .venv when it is missing and install the project.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo_output

# LightGBM's OpenMP threads spin on a busy host; MLflow stays quiet offline.
export OMP_WAIT_POLICY := passive
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: demo test lint bench clean screenshots

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/churnml generate --out $(DEMO)/world --accounts 2000 --months 36 --seed 42 --fit 1
	$(BIN)/churnml validate --data $(DEMO)/world
	cd $(DEMO) && ../$(BIN)/churnml train --data world --config ../configs/demo.yaml
	cd $(DEMO) && ../$(BIN)/churnml score --data world --as-of 2025-12-01 --out scores_previous --config ../configs/demo.yaml
	cd $(DEMO) && ../$(BIN)/churnml score --data world --as-of 2026-01-01 --out scores --previous scores_previous --config ../configs/demo.yaml
	cd $(DEMO) && ../$(BIN)/churnml report --scores scores --out report
	cd $(DEMO) && ../$(BIN)/churnml monitor --data world --scores scores_previous --scores scores --out monitoring --config ../configs/demo.yaml
	cd $(DEMO) && ../$(BIN)/churnml fit-score --data world --since 2025-07-01 --out fit --config ../configs/demo.yaml
	@echo "Open $(CURDIR)/$(DEMO)/report/index.html, $(CURDIR)/$(DEMO)/monitoring/monitoring.html and $(CURDIR)/$(DEMO)/fit/fit.html"

# Screenshots of the demo's report pages in both languages for the README (after `make demo`).
screenshots: $(STAMP)
	cd $(DEMO) && ../$(BIN)/churnml report --scores scores --out report
	cd $(DEMO) && ../$(BIN)/churnml report --scores scores --out report_ja --lang ja
	cd $(DEMO) && ../$(BIN)/churnml fit-score --data world --since 2025-07-01 --out fit_ja --lang ja --config ../configs/demo.yaml
	$(BIN)/python docs/screenshots.py $(DEMO)/report $(DEMO)/report_ja --monitoring $(DEMO)/monitoring/monitoring.html --fit $(DEMO)/fit/fit.html $(DEMO)/fit_ja/fit.html --out docs/img

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# The benchmarks that fit in 15 minutes on 2 cores, and one table of ratios (benchmarks/bench.py).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(DEMO) .pytest_cache
