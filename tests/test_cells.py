"""LSTM and GRU layers, stacked layers and dropout: gradients against central differences.

Every check is float64, on small random shapes, with a random carried-in state, over every
element of every parameter, and, with dropout, with the masks fixed by passing a freshly seeded generator.
"""
from __future__ import annotations

import numpy as np
import pytest
from gradcheck_util import check_gradients

from charrnn.cells import GRU, LSTM
from charrnn.model import Model

V, H, T, B = 5, 4, 3, 2


def _model(cell, layers, dropout=0.0, seed=0):
    model = Model(V, H, layers=layers, dtype="float64", cell=cell, dropout=dropout).init(seed)
    rng = np.random.default_rng(seed + 10)
    for p in model.params.values():  # move every bias off its initial value so all paths count
        p += rng.normal(0, 0.3, p.shape)
    return model, rng


def _random_state(model, rng):
    state = []
    for s in model.zero_state(B):
        if isinstance(s, tuple):
            state.append(tuple(rng.normal(0, 0.5, a.shape) for a in s))
        else:
            state.append(rng.normal(0, 0.5, s.shape))
    return state


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_gradients_match_finite_differences(cell, layers):
    model, rng = _model(cell, layers)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    check_gradients(model, x, y, _random_state(model, rng), train=True)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_gradients_with_dropout_masks_fixed(cell):
    model, rng = _model(cell, 2, dropout=0.4)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = _random_state(model, rng)
    check_gradients(model, x, y, state, train=True)
    # The masks did something: the training loss differs from the evaluation loss.
    rng = np.random.default_rng(7)
    assert model.forward(x, y, state, train=True, rng=rng)[0] != model.forward(x, y, state)[0]


def test_dropout_is_inverted_and_training_only():
    model, rng = _model("lstm", 1, dropout=0.5)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = model.zero_state(B)
    a = model.forward(x, y, state)[0]
    assert model.forward(x, y, state)[0] == a  # no dropout outside training
    model.forward(x, y, state, train=True, rng=np.random.default_rng(0))
    mask = model.last.masks[0]
    assert set(np.unique(mask)) <= {0.0, 2.0}  # kept units are scaled by 1 / (1 - p)
    assert 0 < (mask == 0).mean() < 1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chunked_forward_equals_step_by_step(cell):
    """forward() over a chunk, with the state carried between chunks, is step() repeated."""
    model, rng = _model(cell, 2)
    ids = rng.integers(0, V, (2 * T + 1, B))
    state = _random_state(model, rng)
    s_chunks = state
    for k in range(2):
        x = ids[k * T : (k + 1) * T]
        _, s_chunks = model.forward(x, ids[k * T + 1 : (k + 1) * T + 1], s_chunks)
    s_steps = state
    for t in range(2 * T):
        _, s_steps = model.step(ids[t], s_steps)
    for a, b in zip(s_chunks, s_steps):
        np.testing.assert_allclose(np.concatenate(a if isinstance(a, tuple) else (a,)),
                                   np.concatenate(b if isinstance(b, tuple) else (b,)), rtol=1e-12, atol=1e-12)


def test_lstm_gate_layout_and_forget_bias():
    layer = LSTM(V, H, embed=True)
    p = layer.init(np.random.default_rng(0), np.float64)
    assert p["W_x"].shape == (V, 4 * H) and p["W_h"].shape == (H, 4 * H) and p["b"].shape == (4 * H,)
    assert np.all(p["b"][H : 2 * H] == 1) and np.all(p["b"][:H] == 0) and np.all(p["b"][2 * H :] == 0)
    # Gate order i, f, o, g: with W = 0 and only the forget-gate bias huge, c is carried unchanged.
    p = {k: np.zeros_like(v) for k, v in p.items()}
    p["b"][H : 2 * H] = 50
    p["b"][:H] = -50  # input gate shut
    h, c = layer.step(p, np.array([0]), (np.zeros((1, H)), np.full((1, H), 0.7)))
    np.testing.assert_allclose(c, 0.7)
    np.testing.assert_allclose(h, 0.5 * np.tanh(0.7))  # o = sigmoid(0) = 1/2


def test_gru_gate_layout():
    layer = GRU(V, H, embed=True, suffix=".1")
    assert layer.shapes() == {"W_x.1": (V, 3 * H), "W_h.1": (H, 3 * H), "b.1": (3 * H,), "b_hn.1": (H,)}
    p = {k: np.zeros(s) for k, s in layer.shapes().items()}
    p["b.1"][H : 2 * H] = 50  # z = 1: h is kept
    h0 = np.full((1, H), 0.3)
    np.testing.assert_allclose(layer.step(p, np.array([1]), h0), h0)
    p["b.1"][H : 2 * H] = -50  # z = 0: h = n = tanh(x_n + r * b_hn)
    p["b_hn.1"][:] = 2.0
    p["b.1"][:H] = 50  # r = 1
    np.testing.assert_allclose(layer.step(p, np.array([1]), h0), np.tanh(2.0))


def test_parameter_names_per_cell_and_layer():
    def names(cell):
        return sorted(Model(V, H, layers=2, cell=cell).shapes())

    assert names("elman") == sorted(["W_xh", "W_hh", "b_h", "W_xh.1", "W_hh.1", "b_h.1", "W_hy", "b_y"])
    assert names("lstm") == sorted(["W_x", "W_h", "b", "W_x.1", "W_h.1", "b.1", "W_hy", "b_y"])
    assert names("gru") == sorted(["W_x", "W_h", "b", "b_hn", "W_x.1", "W_h.1", "b.1", "b_hn.1", "W_hy", "b_y"])


def test_every_cell_has_a_plain_reference_recurrence():
    """A cell removed (or added without its reference) fails here rather than being skipped."""
    from charrnn import reference
    from charrnn.cells import CELL_CLASSES

    assert set(CELL_CLASSES) == {"elman", "lstm", "gru"}
    assert {kind: cls.kind for kind, cls in CELL_CLASSES.items()} == {k: k for k in CELL_CLASSES}
    assert set(reference.RECURRENCES) == set(CELL_CLASSES)


@pytest.mark.parametrize("cell,activation", [("elman", "tanh"), ("elman", "relu"), ("elman", "sigmoid"),
                                             ("gru", "tanh"), ("lstm", "tanh")])
def test_each_layer_forward_is_its_plain_float64_recurrence(cell, activation):
    from charrnn import reference

    rng = np.random.default_rng(4)
    V, H, T, B = 5, 6, 7, 3
    model = Model(V, H, activation, layers=2, cell=cell, dtype="float64").init(3)
    x = rng.integers(0, V, (T, B))
    for layer in model.layers:  # the second layer's input is the first's output
        out = layer.forward(model.params, x, layer.zero_state(B, np.float64))
        hs, _ = reference.RECURRENCES[layer.kind](layer, reference.params_of(layer, model.params), x)
        np.testing.assert_allclose(out, hs[1:], rtol=1e-12, atol=1e-14)
        x = out.copy()


def test_dropout_needs_its_generator():
    """The masks' generator is an argument: no hidden default seed."""
    model, rng = _model("gru", 2, dropout=0.3)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    with pytest.raises(ValueError, match="generator"):
        model.forward(x, y, model.zero_state(B), train=True)
    model.forward(x, y, model.zero_state(B), train=False)  # no dropout, no generator needed


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_each_cell_names_its_kind_and_gate_count(cell):
    model = Model(V, H, cell=cell)
    layer = model.layers[0]
    assert layer.kind == cell
    assert layer.shapes()[layer.key_h] == (H, layer.n_gates * H)
    assert model.flops_per_char() == 6 * layer.n_gates * H * H + 6 * H * V


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_bench_lists_the_products_an_update_performs(cell):
    """charrnn bench --cell times these alone against an update: they must be the update's own.
    Their multiply-adds: the model's FLOPs per character / 2 for each of the T*B characters, less
    the backward product at t = 0 (truncated BPTT skips it), plus the one-hot's product."""
    from charrnn.bench import update_products

    T, B, H, V = 5, 3, 8, 11
    model = Model(V, H, layers=2, cell=cell)
    macs = 0
    for a, b, out in update_products(model, T, B):
        assert np.matmul(a, b).shape == out.shape
        macs += int(np.prod(out.shape[:-2], dtype=int)) * a.shape[-2] * a.shape[-1] * b.shape[-1]
    GH = model.layers[0].n_gates * H
    expected = model.flops_per_char() * T * B // 2 - 2 * GH * H * B + GH * T * B * V
    assert macs == expected
