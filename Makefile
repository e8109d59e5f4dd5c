PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv train test bench clean

venv: $(STAMP)

# Rebuilt only when pyproject.toml changes (editable install picks up code edits).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

train: $(STAMP)
	$(BIN)/charrnn train data/shakespeare.txt --config configs/default.yaml --force
	$(BIN)/charrnn sample --length 600 --seed 1

# -rs: skipped tests are listed with their reason (the browser test says what it lacks).
test: $(STAMP)
	$(BIN)/python -m pytest -q -rs

bench: $(STAMP)
	$(BIN)/charrnn bench

clean:
	rm -rf $(VENV) checkpoints .pytest_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
