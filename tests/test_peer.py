"""The PyTorch peer (bench/torch_peer.py) runs charrnn's recipe: what can be checked without torch,
and, where `make peer` has built .venv-peer, a short run of it."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
from dataclasses import fields

import pytest

from charrnn import optim
from charrnn.config import Config

from conftest import CONFIGS, REPO, TINY_TEXT

PEER = os.path.join(REPO, "bench", "torch_peer.py")
PEER_PYTHON = os.path.join(REPO, ".venv-peer", "bin", "python")


def load_peer():
    spec = importlib.util.spec_from_file_location("torch_peer", PEER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # torch is imported inside functions only
    return module


@pytest.mark.parametrize("changes", [
    {}, {"lr_schedule": "cosine", "warmup_steps": 50, "max_time": 300.0},
    {"lr_schedule": "step", "lr_decay": 0.5, "lr_decay_every": 7, "warmup_steps": 3},
    {"lr_schedule": "cosine", "lr_min": 1e-4, "max_steps": 100},
])
def test_the_learning_rate_schedule_is_charrnns(changes):
    peer, config = load_peer(), Config(**changes)
    for step in (1, 2, 3, 10, 49, 50, 51, 99, 500):
        for progress in (0.0, 0.3, 0.999, 1.0):
            assert peer.lr_at(config, step, progress) == optim.lr_at(config, step, progress)


def test_every_config_key_is_a_peer_flag_and_the_race_configs_load():
    args = load_peer().parse(["train", "x.txt", "--config", os.path.join(CONFIGS, "shakespeare-gru.yaml"),
                              "--hidden-size", "8", "--lr-schedule", "step"])
    assert all(hasattr(args, f.name) for f in fields(Config))
    assert args.hidden_size == 8 and args.lr_schedule == "step" and args.config_file.endswith("gru.yaml")


@pytest.mark.skipif(not os.path.exists(PEER_PYTHON), reason="no .venv-peer (make peer builds it)")
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_peer_trains_evaluates_and_samples(tmp_path, cell):
    corpus = tmp_path / "c.txt.gz"
    import gzip

    corpus.write_bytes(gzip.compress(TINY_TEXT.encode()))
    model = str(tmp_path / "m.pt")
    run = lambda *a: subprocess.run([PEER_PYTHON, PEER, *a], capture_output=True, text=True, timeout=300)  # noqa: E731
    trained = run("train", str(corpus), "--cell", cell, "--hidden-size", "16", "--batch-size", "4", "--seq-len", "16",
                  "--max-steps", "30", "--eval-every", "10", "--lr", "0.01", "--dropout", "0.1", "--layers", "2",
                  "--lr-schedule", "cosine", "--warmup-steps", "5", "--out", model, "--quiet", "--threads", "1")
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout.strip().splitlines()[-1])
    uniform = math.log(len(set(TINY_TEXT)))  # the loss of a model that learned nothing
    assert result["steps"] == 30 and result["cell"] == cell and result["best_val_loss"] < uniform
    plain = tmp_path / "c.txt"
    plain.write_text(TINY_TEXT)
    scored = run("eval", str(plain), "--model", model, "--json")
    assert scored.returncode == 0, scored.stderr
    score = json.loads(scored.stdout)
    assert score["predictions"] == len(TINY_TEXT) - 1 and 0 < score["loss"] < uniform
    sampled = run("sample", "--model", model, "--length", "40", "--seed", "1", "--prime", "ROMEO")
    assert sampled.returncode == 0 and sampled.stdout.startswith("ROMEO") and len(sampled.stdout) == 46
    refused = run("train", str(plain), "--activation", "sigmoid", "--out", model)
    assert refused.returncode == 1 and "sigmoid" in refused.stderr
