PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv train test bench clean translate-demo

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

# The dates example: generate the data (fixed seed), train an encoder-decoder (2.5 min),
# score the 1,000 held-out dates and show a dozen of them.
DATES := examples/dates/data
translate-demo: $(STAMP)
	$(BIN)/python examples/dates/make_dates.py $(DATES)
	$(BIN)/charrnn train --pairs $(DATES)/train.tsv --config configs/dates.yaml --out runs/dates --force
	$(BIN)/charrnn eval --pairs $(DATES)/heldout.tsv --checkpoint runs/dates/best.npz
	head -n 12 $(DATES)/heldout.tsv > runs/dates/shown.tsv
	cut -f1 runs/dates/shown.tsv | $(BIN)/charrnn translate --checkpoint runs/dates/best.npz \
	  | paste runs/dates/shown.tsv - \
	  | awk -F'\t' '{ printf "%-30s -> %s%s\n", $$1, $$3, ($$3 == $$2 ? "" : "   (expected " $$2 ")") }'

# -rs: skipped tests are listed with their reason (the browser test says what it lacks).
test: $(STAMP)
	$(BIN)/python -m pytest -q -rs

bench: $(STAMP)
	$(BIN)/charrnn bench

clean:
	rm -rf $(VENV) checkpoints .pytest_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
