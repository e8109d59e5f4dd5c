"""The divergence guard: a non-finite loss, gradient or weight stops training, and the last
good checkpoint stays as it was."""
from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint as ckpt
from charrnn.cli import main
from charrnn.errors import DivergenceError
from charrnn.training import train

from conftest import TINY_TEXT, sha, tiny_config


@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_absurd_learning_rate_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, optimizer):
    out = str(tmp_path / "run")
    # Six sane updates first, so there is a good model worth keeping.
    train(tiny_config(max_steps=6, eval_every=3, save_every=3, optimizer=optimizer), text=TINY_TEXT, out=out)
    latest, best = os.path.join(out, "latest.npz"), os.path.join(out, "best.npz")
    before = {p: sha(p) for p in (latest, best)}
    # Then the same run with an absurd step size (relu, no clipping, so nothing saturates).
    crazy = tiny_config(max_steps=50, eval_every=3, save_every=3, optimizer=optimizer, lr=1e10, clip=0,
                        activation="relu")
    with pytest.raises(DivergenceError) as info:
        train(crazy, text=TINY_TEXT, out=str(tmp_path / "fresh"))
    msg = str(info.value)
    assert "training diverged at step 2: the loss is not finite" in msg
    assert "lower the learning rate (--lr 1e+10)" in msg and "\n" not in msg
    # Resumed with the absurd rate (the learning rate may change on resume): it diverges
    # (its weights overflow at step 7) before the next save (step 9), and both checkpoints
    # are byte for byte what they were.
    crazy_resume = tiny_config(max_steps=50, eval_every=3, save_every=3, optimizer=optimizer, lr=1e39)
    with pytest.raises(DivergenceError, match=r"diverged at step 8: the loss is not finite"):
        train(crazy_resume, text=TINY_TEXT, out=out, resume=True)
    assert {p: sha(p) for p in before} == before
    good = ckpt.load(latest)
    assert good.meta["step"] == 6 and all(np.isfinite(a).all() for a in good.params.values())


def test_with_a_save_every_step_the_newest_checkpoint_is_finite(tmp_path):
    out = str(tmp_path / "run")
    config = tiny_config(max_steps=50, save_every=1, eval_every=100, activation="relu", lr=1e10, clip=0)
    with pytest.raises(DivergenceError, match="diverged at step 2"):
        train(config, text=TINY_TEXT, out=out)
    good = ckpt.load(os.path.join(out, "latest.npz"))  # loading refuses non-finite weights
    assert good.meta["step"] == 1


def test_weights_that_overflow_in_the_update_are_never_saved(tmp_path):
    """lr 1e39 makes Adam's first update overflow float32 to inf before any loss sees it."""
    out = str(tmp_path / "run")
    with pytest.raises(DivergenceError, match=r"diverged at step 1: parameter \S+ is not finite"):
        train(tiny_config(max_steps=5, save_every=1, lr=1e39), text=TINY_TEXT, out=out)
    assert not os.path.exists(os.path.join(out, "latest.npz"))
    assert not os.path.exists(out) or not os.listdir(out)


def test_cli_divergence_is_one_line_and_exit_1(tmp_path, tiny_corpus):
    out = str(tmp_path / "run")
    runner = CliRunner()
    args = ["train", tiny_corpus, "--out", out, "--hidden-size", "16", "--batch-size", "4", "--seq-len", "16",
            "--activation", "relu", "--clip", "0", "--lr", "1e10", "--max-steps", "50", "--save-every", "1", "-q"]
    r = runner.invoke(main, args)
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: training diverged at step 2")
    assert "turn clipping on" in lines[0] and "kept the last good checkpoints" in lines[0]
    assert ckpt.load(os.path.join(out, "latest.npz")).meta["step"] == 1

