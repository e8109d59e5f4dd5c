"""Gradients against central differences, for the tests of every training path (numpy's cells,
the compiled ones)."""
from __future__ import annotations

import numpy as np


def check_gradients(model, x, y, state, train: bool) -> float:
    """The largest relative error between backward() and central differences, over all parameters."""

    def loss():
        # the same dropout masks at every evaluation
        return model.forward(x, y, state, train=train, rng=np.random.default_rng(7))[0]

    loss()
    grads = {k: g.copy() for k, g in model.backward().items()}
    eps, worst = 1e-6, 0.0
    for name, p in model.params.items():
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = loss()
            p[i] = old - eps
            down = loss()
            p[i] = old
            num[i] = (up - down) / (2 * eps)
        err = np.abs(num - grads[name]).max() / max(1e-8, np.abs(num).max() + np.abs(grads[name]).max())
        assert np.abs(grads[name]).max() > 0, f"{name} has an all-zero gradient"
        worst = max(worst, err)
        assert err <= 1e-6, f"{name}: relative error {err:.2e}"
    return worst
