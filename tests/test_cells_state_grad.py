"""The cells' gradient into the carried-in state (need_dstate0) and from an outside
d loss / d c_t (the LSTM's dcs), against central differences in float64: what an
encoder-decoder needs to pass the decoder's gradient back into the encoder."""
from __future__ import annotations

import numpy as np
import pytest

from charrnn.cells import CELL_CLASSES

D, H, T, B, K = 3, 4, 5, 2, 3  # K: the step whose c an outside loss reads


def layer_loss(layer, p, x, s0, R, Rc):
    hs = layer.forward(p, x, s0)
    loss = float(np.sum(hs * R))
    if Rc is not None:
        loss += float(np.sum(layer.final_state(K)[1] * Rc))
    return loss


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_state_gradients_match_finite_differences(cell):
    rng = np.random.default_rng(3)
    layer = CELL_CLASSES[cell](D, H)
    p = {k: rng.normal(0, 0.6, s) for k, s in layer.shapes().items()}
    x = rng.normal(0, 1, (T, B, D))
    s0 = layer.zero_state(B, np.float64)
    s0 = tuple(rng.normal(0, 0.5, a.shape) for a in s0) if isinstance(s0, tuple) else rng.normal(0, 0.5, s0.shape)
    R = rng.normal(0, 1, (T, B, H))
    Rc = rng.normal(0, 1, (B, H)) if cell == "lstm" else None
    layer_loss(layer, p, x, s0, R, Rc)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    extra = {}
    if Rc is not None:
        dcs = np.zeros((T, B, H))
        dcs[K - 1] = Rc  # c after K steps is c_K, the output of step index K - 1
        extra["dcs"] = dcs
    layer.backward(p, R.copy(), grads, need_dx=False, need_dstate0=True, **extra)
    analytic = list(layer.dstate0) if isinstance(s0, tuple) else [layer.dstate0]
    parts = list(s0) if isinstance(s0, tuple) else [s0]
    for a, g in zip(parts, analytic):
        num = np.zeros_like(a)
        for i in range(a.size):
            old = a.flat[i]
            a.flat[i] = old + 1e-5
            up = layer_loss(layer, p, x, tuple(parts) if isinstance(s0, tuple) else parts[0], R, Rc)
            a.flat[i] = old - 1e-5
            down = layer_loss(layer, p, x, tuple(parts) if isinstance(s0, tuple) else parts[0], R, Rc)
            a.flat[i] = old
            num.flat[i] = (up - down) / 2e-5
        assert np.max(np.abs(num - g) / np.maximum(np.abs(num) + np.abs(g), 1e-6)) < 1e-6
    if Rc is not None:  # the weights' gradients include the c path too
        for k in p:
            num = np.zeros_like(p[k])
            for i in range(p[k].size):
                old = p[k].flat[i]
                p[k].flat[i] = old + 1e-5
                up = layer_loss(layer, p, x, s0, R, Rc)
                p[k].flat[i] = old - 1e-5
                down = layer_loss(layer, p, x, s0, R, Rc)
                p[k].flat[i] = old
                num.flat[i] = (up - down) / 2e-5
            assert np.max(np.abs(num - grads[k]) / np.maximum(np.abs(num) + np.abs(grads[k]), 1e-6)) < 1e-6, k


def test_default_backward_leaves_no_state_gradient():
    layer = CELL_CLASSES["gru"](D, H)
    rng = np.random.default_rng(0)
    p = {k: rng.normal(0, 0.6, s) for k, s in layer.shapes().items()}
    layer.forward(p, rng.normal(0, 1, (T, B, D)), np.zeros((B, H)))
    layer.backward(p, np.ones((T, B, H)), {k: np.zeros_like(v) for k, v in p.items()})
    assert layer.dstate0 is None
