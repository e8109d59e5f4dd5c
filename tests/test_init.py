"""--init uniform|normal|orthogonal, --init-scale, gradflow --compare-inits, and clipping an exploding gradient."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import optim
from charrnn.cli import main
from charrnn.config import Config
from charrnn.errors import DivergenceError
from charrnn.gradflow import compare_inits
from charrnn.initialization import initial_model
from charrnn.model import Model
from charrnn.training import Run

from conftest import DATA, TINY_TEXT


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_the_default_is_what_the_cells_draw_and_uniform_scales_it(cell):
    config = Config(hidden_size=16, cell=cell, seed=3)
    default = Model.from_config(config, 20).init(3).params
    assert all(np.array_equal(default[k], v) for k, v in initial_model(config, 20).params.items())
    doubled = initial_model(config.replace(init_scale=2.0), 20).params
    for k, v in doubled.items():
        assert np.array_equal(v, default[k] * np.float32(2.0) if k.startswith("W") else default[k])


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_orthogonal_blocks_have_unit_singular_values_and_biases_stay(cell):
    config = Config(hidden_size=16, cell=cell, init="orthogonal", init_scale=1.5, seed=0, dtype="float64")
    params = initial_model(config, 20).params
    default = Model.from_config(config, 20).init(0).params
    W_hh = params["W_hh" if cell == "elman" else "W_h"]
    for j in range(W_hh.shape[1] // 16):
        block = W_hh[:, j * 16 : (j + 1) * 16]
        assert np.allclose(block.T @ block, 1.5**2 * np.eye(16))
    W_hy = params["W_hy"]  # (16, 20): wider than tall, orthonormal rows
    assert np.allclose(W_hy @ W_hy.T, 1.5**2 * np.eye(16))
    for k in params:
        if not k.startswith("W"):
            assert np.array_equal(params[k], default[k])


def test_normal_is_a_gaussian_of_the_given_scale():
    params = initial_model(Config(hidden_size=64, init="normal", seed=0), 50).params
    w = np.concatenate([params[k].ravel() for k in params if k.startswith("W")])
    assert abs(w.mean()) < 0.02 and w.std() == pytest.approx(1.0, abs=0.02)
    assert not params["b_h"].any()
    assert np.array_equal(initial_model(Config(hidden_size=8, init="normal", seed=5), 9).params["W_hh"],
                          initial_model(Config(hidden_size=8, init="normal", seed=5), 9).params["W_hh"])


def test_compare_inits_shows_n01_exploding_and_the_default_vanishing():
    text = open(f"{DATA}/shakespeare.txt", encoding="utf-8").read()[:20000]
    flows = {f.extra["init"]: f for f in compare_inits(text, hidden_size=32, steps=20, windows=32)}
    assert flows["normal"].factor_per_step > 1.2  # each step back multiplies the gradient
    assert flows["uniform"].factor_per_step < 0.8
    assert flows["uniform"].factor_per_step < flows["orthogonal"].factor_per_step < 1
    assert flows["normal"].extra["spectral_radius"] > 3 and flows["orthogonal"].extra["spectral_radius"] == pytest.approx(1)


def test_gradflow_compare_inits_on_the_command_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TINY_TEXT)
    result = CliRunner().invoke(main, ["gradflow", str(path), "--compare-inits", "--steps", "5", "--hidden-size", "8", "--json"])
    assert result.exit_code == 0, result.output
    assert [f["label"] for f in json.loads(result.stdout)["flows"]] == ["uniform (default)", "normal N(0,1)", "orthogonal"]
    both = CliRunner().invoke(main, ["gradflow", str(path), "--compare-inits", "--compare-activations"])
    assert both.exit_code == 2


def test_a_gradient_whose_squares_overflow_float32_still_has_a_norm_and_is_clipped():
    grads = {"a": np.full(10, 1e20, np.float32), "b": np.full(3, -2e20, np.float32)}
    norm, clipped = optim.clip(grads, 5.0)
    assert norm == pytest.approx(np.sqrt(10 * 1e40 + 3 * 4e40), rel=1e-6) and clipped
    assert optim.global_norm(grads) == pytest.approx(5.0, rel=1e-5)
    assert np.isinf(optim.global_norm({"a": np.array([np.inf], np.float32)}))


def test_n01_without_clipping_diverges_and_with_clipping_trains():
    """The README's example, made small: ReLU, N(0, 1) weights, SGD."""
    text = open(f"{DATA}/shakespeare.txt", encoding="utf-8").read()
    config = Config(hidden_size=16, seq_len=16, batch_size=32, activation="relu", init="normal", optimizer="sgd",
                    lr=0.2, max_steps=60, eval_every=60, save_every=1000)
    with pytest.raises(DivergenceError, match="training diverged at step [1-9]: .*turn clipping on"):
        Run(config.replace(clip=0.0), text=text, out=None).train()
    result = Run(config.replace(clip=5.0), text=text, out=None).train()
    assert np.isfinite(result.losses).all() and result.losses[-1] < result.losses[0] / 10
