"""The whole encoder-decoder's gradient against central differences, in float64: every
parameter of both networks, every cell, one and two layers, with rows of different source
and target lengths (so padding and masking are exercised)."""
from __future__ import annotations

import numpy as np
import pytest

from charrnn.seq2seq import Batch, Seq2Seq

Vs, Vt, H = 5, 6, 3
STEP = 1e-3  # with the five-point stencil, truncation error O(STEP^4)


def make_batch(rng):
    src_len = np.array([4, 2, 3, 1])
    tgt_len = np.array([2, 4, 3, 1])
    src = rng.integers(0, Vs, (src_len.max(), 4))
    dec_in = rng.integers(0, Vt, (tgt_len.max(), 4))
    dec_out = rng.integers(0, Vt, (tgt_len.max(), 4))
    return Batch(src, src_len, dec_in, dec_out, tgt_len)


def worst_relative_error(cell: str, layers: int) -> float:
    rng = np.random.default_rng(1)
    model = Seq2Seq(Vs, Vt, H, layers, cell, dtype="float64").init(0)
    for p in model.params.values():
        p[...] = rng.normal(0, 0.6, p.shape)
    batch = make_batch(rng)
    model.forward(batch)
    analytic = {k: g.copy() for k, g in model.backward().items()}
    worst = 0.0
    for k, p in model.params.items():
        flat = p.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            f = {}
            for m in (-2, -1, 1, 2):
                flat[i] = old + m * STEP
                f[m] = model.forward(batch)
            flat[i] = old
            num = (f[-2] - 8 * f[-1] + 8 * f[1] - f[2]) / (12 * STEP)
            a = analytic[k].reshape(-1)[i]
            worst = max(worst, abs(a - num) / max(abs(a) + abs(num), 1e-6))
    return worst


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_encoder_decoder_gradient(cell, layers):
    assert worst_relative_error(cell, layers) < 1e-6


def test_padding_changes_nothing():
    """A row's loss is the same alone as in a padded batch with longer rows."""
    rng = np.random.default_rng(2)
    model = Seq2Seq(Vs, Vt, H, 1, "lstm", dtype="float64").init(0)
    batch = make_batch(rng)
    sums = model.loss_sums(batch)
    for b in range(batch.size):
        n, m = batch.src_len[b], batch.tgt_len[b]
        alone = Batch(batch.src[:n, b : b + 1], batch.src_len[b : b + 1], batch.dec_in[:m, b : b + 1],
                      batch.dec_out[:m, b : b + 1], batch.tgt_len[b : b + 1])
        assert model.loss_sums(alone)[0] == pytest.approx(sums[b], rel=1e-12)


def test_gradient_reaches_the_encoder():
    rng = np.random.default_rng(3)
    model = Seq2Seq(Vs, Vt, H, 1, "gru", dtype="float64").init(0)
    model.forward(make_batch(rng))
    grads = model.backward()
    assert np.abs(grads["enc.W_h"]).max() > 0 and np.abs(grads["enc.W_x"]).max() > 0
