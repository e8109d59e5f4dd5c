"""The training loop: truncated BPTT with a carried state, stopping rules, validation, determinism."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from charrnn import checkpoint as ckpt
from charrnn.data import Streams, split
from charrnn.model import Model

from conftest import TINY_TEXT, run


def of_kind(events, kind):
    return [e for e in events if e["kind"] == kind]


def test_loss_goes_down(tmp_path):
    result, events = run(tmp_path, max_steps=80)
    losses = [e["loss"] for e in of_kind(events, "step")]
    V = len(set(TINY_TEXT))
    assert len(losses) == 80 == result.steps
    assert losses[0] == pytest.approx(math.log(V), rel=0.1)  # a fresh model is near uniform
    assert np.mean(losses[-10:]) < 0.6 * losses[0]
    vals = [e["val_loss"] for e in of_kind(events, "eval")]
    assert len(vals) == 4 and vals[-1] < vals[0]
    assert result.best_val_loss == min(vals)


def test_hello_example(hello_dir):
    """The textbook "hello" example: after 'h', 'he', 'hel', 'hell' come 'e', 'l', 'l', 'o'."""
    checkpoint = ckpt.load(os.path.join(hello_dir, "latest.npz"))
    assert checkpoint.vocab.chars == "ehlo"
    model = checkpoint.model()
    for prefix, expected in [("h", "e"), ("he", "l"), ("hel", "l"), ("hell", "o")]:
        state = model.zero_state(1)
        for ch in prefix:
            logits, state = model.step(np.array([checkpoint.vocab.index(ch)]), state)
        assert checkpoint.vocab.chars[int(np.argmax(logits[0]))] == expected, prefix


def test_streams_are_contiguous_chunks():
    ids = np.arange(50)
    s = Streams(ids, batch_size=3, seq_len=4)
    n = (50 - 1) // 3  # 16 characters per stream
    assert (s.n, s.chunks_per_epoch) == (n, 4)
    for k in range(s.chunks_per_epoch):
        x, y = s.chunk(k)
        assert x.shape == y.shape == (4, 3)
        for b in range(3):
            start = b * n + k * 4
            np.testing.assert_array_equal(x[:, b], ids[start:start + 4])
            np.testing.assert_array_equal(y[:, b], ids[start + 1:start + 5])
    # Chunk k+1 of a stream continues exactly where chunk k stopped: carrying h is right.
    x0, _ = s.chunk(0)
    x1, _ = s.chunk(1)
    np.testing.assert_array_equal(x1[0], x0[-1] + 1)


def test_state_is_carried_and_reset_only_at_epoch_start(tmp_path, monkeypatch):
    """Each update starts from the state the previous one left, zero only when an epoch begins."""
    calls = []
    real_forward = Model.forward

    def spy(self, x, y, state, **kwargs):
        if x.shape == (16, 4):  # training chunks, not validation
            calls.append([h.copy() for h in state])
        loss, new_state = real_forward(self, x, y, state, **kwargs)
        if x.shape == (16, 4):
            calls[-1].append([h.copy() for h in new_state])
        return loss, new_state

    monkeypatch.setattr(Model, "forward", spy)
    text = TINY_TEXT[:4 * 16 * 3 + 1]  # exactly 3 chunks per epoch
    result, _ = run(tmp_path, text=text, max_steps=7, val_fraction=0)
    assert result.steps == 7 and len(calls) == 7
    for step, (h0, _) in enumerate(calls):
        if step % 3 == 0:
            assert not np.any(h0), f"step {step} starts an epoch: zero state"
        else:
            assert np.any(h0)
            np.testing.assert_array_equal(h0, calls[step - 1][1][0], err_msg=f"step {step}")


def test_same_seed_same_parameters(tmp_path):
    a, _ = run(tmp_path, "a", max_steps=20, seed=3)
    b, _ = run(tmp_path, "b", max_steps=20, seed=3)
    c, _ = run(tmp_path, "c", max_steps=20, seed=4)
    pa, pb, pc = (ckpt.load(r.latest).params for r in (a, b, c))
    for k in pa:
        assert pa[k].tobytes() == pb[k].tobytes(), k
    assert any(pa[k].tobytes() != pc[k].tobytes() for k in pa)
    assert a.train_loss == b.train_loss and a.val_loss == b.val_loss


def test_validation_is_the_tail():
    ids = np.arange(1000) % 7
    data = split(ids, 0.05, batch_size=4, seq_len=16)
    assert len(data.val) == 50 and data.note == ""
    np.testing.assert_array_equal(data.val, ids[-50:])
    np.testing.assert_array_equal(data.train, ids[:-50])


def test_validation_split_recorded_in_checkpoint(tmp_path):
    result, events = run(tmp_path, max_steps=20)
    meta = ckpt.load(result.best).meta
    n_val = int(len(TINY_TEXT) * 0.05)
    assert meta["val_chars"] == n_val and meta["train_chars"] == len(TINY_TEXT) - n_val
    start = of_kind(events, "start")[0]
    assert start["val_chars"] == n_val
    assert not of_kind(events, "info")


def test_small_corpus_trains_without_validation_and_says_so(tmp_path):
    text = TINY_TEXT[:4 * 16 + 2]  # room for one batch, not for a validation tail as well
    result, events = run(tmp_path, text=text, max_steps=5)
    infos = [e["message"] for e in of_kind(events, "info")]
    assert any("validation" in m and "too small" in m for m in infos), infos
    assert result.steps == 5 and result.val_loss is None and result.best is None
    assert not of_kind(events, "eval")
    assert os.path.exists(result.latest) and not os.path.exists(tmp_path / "out" / "best.npz")


def test_epochs_stop_rule(tmp_path):
    text = TINY_TEXT[:4 * 16 * 3 + 1]
    result, _ = run(tmp_path, text=text, max_steps=None, epochs=2, val_fraction=0)
    assert result.steps == 6 and result.epoch == pytest.approx(2.0)
    result, _ = run(tmp_path, "b", text=text, max_steps=4, epochs=2, val_fraction=0)
    assert result.steps == 4  # whichever comes first


def test_max_time_stop_rule(tmp_path):
    result, _ = run(tmp_path, max_steps=None, max_time=0.2)
    assert result.steps >= 1 and result.seconds >= 0.2


def test_float64_training(tmp_path):
    result, _ = run(tmp_path, max_steps=5, dtype="float64")
    params = ckpt.load(result.latest).params
    assert all(p.dtype == np.float64 for p in params.values())


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("optimizer", ["adam", "adagrad"])
def test_every_activation_and_optimizer_learns(tmp_path, activation, optimizer):
    result, events = run(tmp_path, max_steps=60, activation=activation, optimizer=optimizer,
                         lr=0.1 if optimizer == "adagrad" else 3e-2)
    losses = [e["loss"] for e in of_kind(events, "step")]
    assert np.mean(losses[-10:]) < 0.6 * losses[0]
