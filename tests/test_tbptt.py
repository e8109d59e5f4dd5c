"""TBPTT(k1, k2): overlapping windows, the loss over the k1 newest predictions, the carried state."""
from __future__ import annotations

import numpy as np
import pytest

from charrnn.config import Config
from charrnn.data import Streams
from charrnn.errors import ConfigError
from charrnn.model import Model
from charrnn.training import train

from conftest import tiny_config


def _loss_of(model, x, y, state, k1):
    loss, _ = model.forward(x, y, state, advance=k1)
    return loss


@pytest.mark.parametrize("cell,activation", [("elman", "tanh"), ("elman", "sigmoid"), ("gru", "tanh"),
                                             ("lstm", "tanh")])
def test_gradient_of_k1_lt_k2_loss_matches_central_differences(cell, activation):
    rng = np.random.default_rng(3)
    V, H, T, B, k1 = 5, 6, 7, 3, 2
    model = Model(V, H, activation, dtype="float64", **({"cell": cell} if cell != "elman" else {})).init(1)
    x = rng.integers(0, V, (T, B))
    y = rng.integers(0, V, (T, B))
    # A carried-in state, as in training (an LSTM's is the pair (h, c)).
    state = [tuple(rng.normal(0, 0.5, (B, H)) for _ in range(2)) if cell == "lstm" else rng.normal(0, 0.5, (B, H))]
    model.forward(x, y, state, advance=k1)
    grads = {k: g.copy() for k, g in model.backward().items()}
    eps = 1e-5
    for name, p in model.params.items():
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            plus = _loss_of(model, x, y, state, k1)
            p[i] = old - eps
            minus = _loss_of(model, x, y, state, k1)
            p[i] = old
            num[i] = (plus - minus) / (2 * eps)
        err = np.abs(num - grads[name]).max() / max(np.abs(num).max() + np.abs(grads[name]).max(), 1e-12)
        assert err <= 1e-6, (name, err)
        assert np.abs(grads[name]).max() > 0, name  # every parameter gets some gradient


def test_k1_loss_is_the_mean_over_the_newest_k1_predictions_only():
    rng = np.random.default_rng(0)
    V, H, T, B, k1 = 4, 5, 6, 2, 2
    model = Model(V, H, dtype="float64").init(0)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = model.zero_state(B)
    loss, _ = model.forward(x, y, state, advance=k1)
    # The same loss from the logits of every step, keeping the last k1.
    logits, s = [], state
    for t in range(T):
        out, s = model.step(x[t], s)
        logits.append(out)
    logp = np.stack(logits) - np.log(np.exp(np.stack(logits)).sum(-1, keepdims=True))
    per_step = -np.take_along_axis(logp, y[..., None], -1)[..., 0]  # (T, B)
    assert loss == pytest.approx(per_step[T - k1 :].mean(), rel=1e-12)
    assert loss != pytest.approx(per_step.mean(), rel=1e-6)
    # The context targets do not matter; the newest ones do.
    y2 = y.copy()
    y2[: T - k1] = (y2[: T - k1] + 1) % V
    assert model.forward(x, y2, state, advance=k1)[0] == pytest.approx(loss, rel=1e-12)


def test_k1_equal_k2_is_the_plain_chunked_form():
    rng = np.random.default_rng(1)
    model = Model(4, 5, dtype="float64").init(0)
    x, y = rng.integers(0, 4, (6, 2)), rng.integers(0, 4, (6, 2))
    state = [rng.normal(size=(2, 5))]
    a, sa = model.forward(x, y, state)
    ga = {k: g.copy() for k, g in model.backward().items()}
    b, sb = model.forward(x, y, state, advance=6)
    gb = model.backward()
    assert a == b and np.array_equal(sa[0], sb[0])
    assert all(np.array_equal(ga[k], gb[k]) for k in ga)


def test_streams_serve_overlapping_windows_advancing_by_the_stride():
    ids = np.arange(1 + 2 * 20, dtype=np.uint8)  # two streams of 20 inputs
    s = Streams(ids, batch_size=2, seq_len=8, stride=2)
    assert s.chunks_per_epoch == (20 - 8) // 2 + 1
    x0, y0 = s.chunk(0)
    x1, _ = s.chunk(1)
    assert x0.shape == (8, 2)
    assert x0[:, 0].tolist() == list(range(0, 8)) and x0[:, 1].tolist() == list(range(20, 28))
    assert x1[:, 0].tolist() == list(range(2, 10))  # 6 characters shared with window 0
    assert np.array_equal(y0, x0 + 1)
    last_x, _ = s.chunk(s.chunks_per_epoch - 1)
    assert last_x[-1, 0] == 19  # the last window ends at the stream's end
    plain = Streams(ids, batch_size=2, seq_len=8)
    assert plain.chunks_per_epoch == 20 // 8 and plain.chunk(1)[0][0, 0] == 8


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_carried_state_is_the_state_k1_steps_into_the_previous_window(cell):
    """Chaining windows must give the state of running the stream straight through."""
    rng = np.random.default_rng(2)
    V, H, B, T, k1 = 6, 8, 3, 8, 3
    ids = rng.integers(0, V, 1 + B * 40).astype(np.uint8)
    streams = Streams(ids, B, T, stride=k1)
    model = Model(V, H, dtype="float64", layers=2, **({"cell": cell} if cell != "elman" else {})).init(0)
    state = model.zero_state(B)
    for k in range(5):
        x, y = streams.chunk(k)
        _, state = model.forward(x, y, state, advance=k1)
    # Straight through the first 5*k1 inputs of each stream, one step at a time.
    ref = model.zero_state(B)
    for t in range(5 * k1):
        _, ref = model.step(np.ascontiguousarray(streams.inputs[:, t], dtype=np.intp), ref)
    for got, want in zip(state, ref):  # every layer; an LSTM's (h, c) pair in full
        for g, w in zip(*(s if isinstance(s, tuple) else (s,) for s in (got, want))):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_config_checks_the_stride():
    assert Config(seq_len=8, tbptt_stride=2).tbptt_stride == 2
    for bad in (0, 9):
        with pytest.raises(ConfigError, match="tbptt_stride"):
            Config(seq_len=8, tbptt_stride=bad)


def test_training_with_a_stride_learns_and_reports_characters_advanced(tiny_text, tmp_path):
    events = []
    cfg = tiny_config(seq_len=16, tbptt_stride=4, max_steps=40, eval_every=40, save_every=40)
    result = train(cfg, text=tiny_text, out=str(tmp_path / "c"), callback=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.5
    start = next(e for e in events if e["kind"] == "start")
    n = (start["train_chars"] - 1) // cfg.batch_size
    assert start["chars_per_epoch"] == ((n - 16) // 4 + 1) * cfg.batch_size * 4
    assert result.epoch == pytest.approx(40 / ((n - 16) // 4 + 1))


def test_cli_flag(tiny_corpus, tmp_path):
    from click.testing import CliRunner

    from charrnn import checkpoint as ckpt
    from charrnn.cli import main

    out = tmp_path / "c"
    common = ["train", tiny_corpus, "--hidden-size", "8", "--batch-size", "2", "--seq-len", "16",
              "--max-steps", "3", "--out", str(out), "-q"]
    r = CliRunner().invoke(main, common + ["--tbptt-stride", "4"])
    assert r.exit_code == 0, r.output
    assert ckpt.load(str(out / "latest.npz")).config.tbptt_stride == 4
    r = CliRunner().invoke(main, common + ["--tbptt-stride", "17", "--force"])
    assert r.exit_code == 1
    assert r.output.strip() == "Error: tbptt_stride: must be between 1 and seq_len (16), got 17"
