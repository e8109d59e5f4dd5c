PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv train test lint bench clean translate-demo peer five-minutes

venv: $(STAMP)

# Rebuilt only when pyproject.toml changes (editable install picks up code edits).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lint,threads,fast]'
	touch $@

# make train's model lives in its own directory, so it never replaces a model of yours in
# checkpoints/ (charrnn train's default --out); --force lets it retrain there each time.
MODEL_DIR := runs/make-train

train: $(STAMP)
	$(BIN)/charrnn train data/shakespeare.txt --config configs/default.yaml --out $(MODEL_DIR) --force
	$(BIN)/charrnn sample --checkpoint $(MODEL_DIR)/best.npz --length 600 --seed 1
	@echo "make train: the model is $(MODEL_DIR)/best.npz; export CHARRNN_CHECKPOINT=$(MODEL_DIR)/best.npz to make it the default of sample, eval, encode and gradflow" >&2

# The dates example: generate the data (fixed seed), train an encoder-decoder (3000 updates, at most 5 min),
# score the 1,000 held-out dates and show a dozen of them.
DATES := data/dates
translate-demo: $(STAMP)
	$(BIN)/python data/dates/make_dates.py $(DATES)
	$(BIN)/charrnn train --pairs $(DATES)/train.tsv --config configs/dates.yaml --out runs/dates --force
	$(BIN)/charrnn eval --pairs $(DATES)/heldout.tsv --checkpoint runs/dates/best.npz
	head -n 12 $(DATES)/heldout.tsv > runs/dates/shown.tsv
	cut -f1 runs/dates/shown.tsv | $(BIN)/charrnn translate --checkpoint runs/dates/best.npz \
	  | paste runs/dates/shown.tsv - \
	  | awk -F'\t' '{ printf "%-30s -> %s%s\n", $$1, $$3, ($$3 == $$2 ? "" : "   (expected " $$2 ")") }'

# -rs: skipped tests are listed with their reason (the browser test says what it lacks).
test: $(STAMP)
	$(BIN)/python -m pytest -q -rs

# ruff, configured in pyproject.toml: lint, import order, and at most 60 statements a function.
lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/charrnn bench

clean:
	rm -rf $(VENV) $(PEER) $(MODEL_DIR) .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# The PyTorch peer (bench/torch_peer.py) in its own environment: torch is never charrnn's dependency.
PEER ?= .venv-peer
peer: $(PEER)/.installed

$(PEER)/.installed:
	test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install -q torch==2.13.0 numpy PyYAML
	touch $@

# The race: each configs/shakespeare-*.yaml, charrnn then the peer, 300 s each (about 35 minutes).
# Shorter: make five-minutes RACE_ARGS="--seconds 20"
five-minutes: $(STAMP) $(PEER)/.installed
	$(BIN)/python bench/five_minutes.py --peer-python $(PEER)/bin/python $(RACE_ARGS)
