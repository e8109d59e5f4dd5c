"""Analytic gradients against central finite differences, in float64.

Every parameter of every layer, each activation, one and two layers, starting from a
non-zero carried-in hidden state (truncated BPTT treats it as a constant input).
"""
from __future__ import annotations

import numpy as np
import pytest

from charrnn import optim
from charrnn.cells import activate
from charrnn.model import Model

V, H, T, B = 5, 4, 5, 3
STEP = 1e-3  # finite-difference step
TOL = 1e-6


def rel_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-6) -> float:
    """max |a - b| / max(|a| + |b|, floor), elementwise.

    The gradients here are about 1e-3 to 1; the floor only matters where both are
    (nearly) zero, such as a dead relu unit's weights, where the finite difference is
    rounding noise of about 1e-13: any absolute error above 1e-12 still fails.
    """
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))


def make_case(activation: str, layers: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    model = Model(V, H, activation, layers=layers, dtype="float64").init(seed)
    # Non-zero biases and larger weights than the initialisation, so that every term of
    # the gradient (and every activation regime) is exercised.
    for p in model.params.values():
        p[...] = rng.normal(0, 0.6, p.shape)
    x = rng.integers(0, V, (T, B))
    y = rng.integers(0, V, (T, B))
    state = [rng.normal(0, 0.5, (B, H)) for _ in range(layers)]
    if activation == "relu":
        state = [np.abs(h) for h in state]  # a relu layer's state is never negative
    elif activation == "sigmoid":
        state = [1 / (1 + np.exp(-h)) for h in state]
    return model, x, y, state


def reference_preactivations(model: Model, x, state) -> list:
    """Every layer's pre-activation a_t = x_t W_xh + h_{t-1} W_hh + b_h, by hand."""
    p, pres = model.params, []
    inp = None
    for l in range(model.L):
        s = f".{l}" if l else ""
        h = state[l]
        a_all, hs = [], []
        for t in range(x.shape[0]):
            xin = p["W_xh" + s][x[t]] if l == 0 else inp[t] @ p["W_xh" + s]
            a = xin + h @ p["W_hh" + s] + p["b_h" + s]
            h = activate(model.activation, a.copy(), np.empty_like(a))
            a_all.append(a)
            hs.append(h)
        pres.append(np.array(a_all))
        inp = hs
    return pres


def numerical_grads(model: Model, x, y, state, check=None) -> dict:
    """Central differences, the five-point stencil (error O(STEP^4) instead of O(STEP^2)):

        f'(p) = (f(p - 2s) - 8 f(p - s) + 8 f(p + s) - f(p + 2s)) / 12s

    `check()`, if given, is called at every perturbed point and must return True.
    """
    grads = {}
    for k, p in model.params.items():
        g = np.zeros_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            f = {}
            for m in (-2, -1, 1, 2):
                flat[i] = old + m * STEP
                f[m], _ = model.forward(x, y, [h.copy() for h in state])
                assert check is None or check(), f"{k}[{i}] +{m}*STEP crosses a relu kink"
            flat[i] = old
            gflat[i] = (f[-2] - 8 * f[-1] + 8 * f[1] - f[2]) / (12 * STEP)
        grads[k] = g
    return grads


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_gradients_match_finite_differences(activation, layers):
    model, x, y, state = make_case(activation, layers)
    check = None
    if activation == "relu":
        # Finite differences are only valid away from relu's kink: no perturbation may
        # flip the sign of any pre-activation.
        signs = [np.sign(a) for a in reference_preactivations(model, x, state)]

        def check():
            now = reference_preactivations(model, x, state)
            return all(np.array_equal(np.sign(a), s) for a, s in zip(now, signs))
    loss, _ = model.forward(x, y, [h.copy() for h in state])
    analytic = {k: g.copy() for k, g in model.backward().items()}
    numeric = numerical_grads(model, x, y, state, check)
    expected = {"W_xh", "W_hh", "b_h", "W_hy", "b_y"}
    expected |= {f"{n}.{l}" for l in range(1, layers) for n in ("W_xh", "W_hh", "b_h")}
    assert set(analytic) == expected
    for k in expected:
        assert np.any(analytic[k] != 0), f"{k}: gradient is identically zero"
        err = rel_error(analytic[k], numeric[k])
        assert err <= TOL, f"{activation}, {layers} layer(s), {k}: relative error {err:.2e}"


def test_carried_state_changes_loss_and_gradients():
    """The carried-in state is really used: a different h_0 gives a different loss and W_hh gradient."""
    model, x, y, state = make_case("tanh", 1)
    loss1, _ = model.forward(x, y, state)
    g1 = model.backward()["W_hh"].copy()
    loss0, _ = model.forward(x, y, model.zero_state(B))
    g0 = model.backward()["W_hh"].copy()
    assert loss1 != loss0
    assert not np.allclose(g1, g0)


def test_first_layer_forward_matches_hand_computed_equations():
    model, x, y, state = make_case("tanh", 1, seed=3)
    p = model.params
    loss, new_state = model.forward(x, y, [h.copy() for h in state])
    h = state[0]
    losses = []
    for t in range(T):
        h = np.tanh(p["W_xh"][x[t]] + h @ p["W_hh"] + p["b_h"])
        logits = h @ p["W_hy"] + p["b_y"]
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        losses.append(-logp[np.arange(B), y[t]])
    assert loss == pytest.approx(np.mean(losses), rel=1e-12)
    np.testing.assert_allclose(new_state[0], h, rtol=1e-12)


def test_clip_by_global_norm():
    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    original = {k: g.copy() for k, g in grads.items()}
    norm = np.sqrt(sum((g**2).sum() for g in original.values()))

    reported, clipped = optim.clip_by_global_norm(grads, max_norm=norm / 2)
    assert clipped and reported == pytest.approx(norm, rel=1e-12)
    assert optim.global_norm(grads) == pytest.approx(norm / 2, rel=1e-5)
    for k in grads:  # the direction is kept: every array is scaled by the same factor
        np.testing.assert_allclose(grads[k], original[k] * (norm / 2) / norm, rtol=1e-5)

    grads = {k: g.copy() for k, g in original.items()}
    reported, clipped = optim.clip_by_global_norm(grads, max_norm=norm * 2)
    assert not clipped and reported == pytest.approx(norm, rel=1e-12)
    for k in grads:
        np.testing.assert_array_equal(grads[k], original[k])

    reported, clipped = optim.clip_by_global_norm(grads, max_norm=0)  # 0 turns clipping off
    assert not clipped
    for k in grads:
        np.testing.assert_array_equal(grads[k], original[k])


def test_adam_two_steps_match_the_formula():
    rng = np.random.default_rng(1)
    p0 = rng.normal(size=(3, 2))
    g1, g2 = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    params = {"w": p0.copy()}
    opt = optim.Adam(params, lr=lr, beta1=b1, beta2=b2, eps=eps)

    m = v = np.zeros_like(p0)
    expected = p0.copy()
    for t, g in enumerate((g1, g2), start=1):
        opt.step(params, {"w": g.copy()})
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        expected = expected - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(params["w"], expected, rtol=1e-12, atol=1e-15)
    assert opt.t == 2
    np.testing.assert_allclose(opt.state_dict()["m/w"], m, rtol=1e-12)


def test_adagrad_step_matches_min_char_rnn():
    rng = np.random.default_rng(2)
    p0, g = rng.normal(size=4), rng.normal(size=4)
    params = {"w": p0.copy()}
    opt = optim.Adagrad(params, lr=0.1)
    opt.step(params, {"w": g.copy()})
    opt.step(params, {"w": g.copy()})
    mem1, mem2 = g * g, 2 * g * g
    expected = p0 - 0.1 * g / np.sqrt(mem1 + 1e-8) - 0.1 * g / np.sqrt(mem2 + 1e-8)
    np.testing.assert_allclose(params["w"], expected, rtol=1e-12)
