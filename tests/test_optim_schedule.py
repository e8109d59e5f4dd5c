"""Optimizers, weight decay, clipping modes and learning-rate schedules."""
from __future__ import annotations

import math

import numpy as np
import pytest

from charrnn import optim
from charrnn.config import Config
from charrnn.errors import ConfigError


def _params():
    rng = np.random.default_rng(0)
    return {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}


def _grads():
    rng = np.random.default_rng(1)
    return {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}


def test_sgd_with_momentum_follows_its_formula():
    p, g = _params(), _grads()
    start = {k: v.copy() for k, v in p.items()}
    opt = optim.make("sgd", p, lr=0.1, momentum=0.5)
    opt.step(p, g)
    opt.step(p, g)
    # m1 = g, m2 = 0.5 g + g: p = p0 - 0.1 (g + 1.5 g)
    for k in p:
        np.testing.assert_allclose(p[k], start[k] - 0.1 * 2.5 * g[k])


def test_rmsprop_follows_its_formula():
    p, g = _params(), _grads()
    start = {k: v.copy() for k, v in p.items()}
    opt = optim.make("rmsprop", p, lr=0.01)
    opt.step(p, g)
    for k in p:
        v = 0.01 * g[k] ** 2
        np.testing.assert_allclose(p[k], start[k] - 0.01 * g[k] / (np.sqrt(v) + 1e-8))
    assert set(opt.state_dict()) == {"t", "v/W", "v/b"}


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam"])
def test_weight_decay_shrinks_matrices_not_biases(name):
    p = _params()
    start = {k: v.copy() for k, v in p.items()}
    zero = {k: np.zeros_like(v) for k, v in p.items()}
    opt = optim.make(name, p, lr=0.1, weight_decay=0.5)
    opt.step(p, zero)
    np.testing.assert_allclose(p["W"], start["W"] * (1 - 0.1 * 0.5))
    np.testing.assert_allclose(p["b"], start["b"])


def test_clip_by_value_and_by_norm():
    g = {"a": np.array([3.0, -0.5, -7.0]), "b": np.array([[0.1]])}
    norm, clipped = optim.clip({k: v.copy() for k, v in g.items()}, 1.0, "value")
    assert clipped and norm == pytest.approx(math.sqrt(9 + 0.25 + 49 + 0.01))
    c = {k: v.copy() for k, v in g.items()}
    optim.clip(c, 1.0, "value")
    np.testing.assert_array_equal(c["a"], [1.0, -0.5, -1.0])
    np.testing.assert_array_equal(c["b"], [[0.1]])
    c = {k: v.copy() for k, v in g.items()}
    optim.clip(c, 1.0, "norm")
    assert optim.global_norm(c) == pytest.approx(1.0, rel=1e-5)
    assert c["a"][0] / c["a"][2] == pytest.approx(3.0 / -7.0)  # direction kept
    assert optim.clip({"a": np.array([0.5])}, 1.0, "value") == (0.5, False)


def test_warmup_then_constant():
    c = Config(lr=0.01, warmup_steps=4)
    assert [optim.lr_at(c, s, 0.0) for s in (1, 2, 4, 5, 100)] == pytest.approx([0.0025, 0.005, 0.01, 0.01, 0.01])


def test_step_schedule():
    c = Config(lr=0.01, lr_schedule="step", lr_decay=0.5, lr_decay_every=10)
    assert [optim.lr_at(c, s, 0.0) for s in (1, 9, 10, 25)] == pytest.approx([0.01, 0.01, 0.005, 0.0025])


def test_cosine_schedule_runs_from_lr_to_lr_min_over_the_run():
    c = Config(lr=0.01, lr_schedule="cosine", lr_min=0.001, warmup_steps=2)
    assert optim.lr_at(c, 1, 0.0) == pytest.approx(0.005)  # warmup first
    assert optim.lr_at(c, 3, 0.0) == pytest.approx(0.01)
    assert optim.lr_at(c, 50, 0.5) == pytest.approx(0.0055)
    assert optim.lr_at(c, 99, 1.0) == pytest.approx(0.001)


@pytest.mark.parametrize("bad", [dict(dropout=1.0), dict(dropout=-0.1), dict(layers=0), dict(momentum=1.0),
                                 dict(weight_decay=-1.0), dict(patience=0), dict(lr_decay=0.0),
                                 dict(lr_min=1.0, lr=0.1), dict(warmup_steps=-1), dict(cell="transformer"),
                                 dict(clip_mode="both"), dict(lr_schedule="linear"),
                                 dict(activation="relu", cell="lstm")])
def test_new_options_are_validated_by_name(bad):
    with pytest.raises(ConfigError) as info:
        Config(**bad)
    assert next(iter(bad if len(bad) == 1 else {k: 0 for k in bad if k not in ("lr", "cell")})) in str(info.value)
