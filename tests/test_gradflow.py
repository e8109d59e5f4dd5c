"""charrnn gradflow: the norms are true gradients, the CLI's table, JSON, plot and errors."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import main
from charrnn.gradflow import compare_activations, gradient_flow
from charrnn.model import Model

from conftest import TINY_TEXT


def _last_loss(model, state, inputs, target) -> float:
    """L_T = -log p_T[target], running `inputs` one step at a time from `state` (the layers' own step)."""
    for c in inputs:
        logits, state = model.step(np.array([c]), state)
    y = logits[0]
    return float(np.log(np.exp(y - y.max()).sum()) + y.max() - y[target])


def _with_h(state, h):
    """The top layer's state with its h replaced (an LSTM's c kept)."""
    top = state[-1]
    return state[:-1] + [(h, top[1]) if isinstance(top, tuple) else h]


def _h_of(state):
    top = state[-1]
    return top[0] if isinstance(top, tuple) else top


CASES = [("elman", "tanh", 1), ("elman", "relu", 1), ("elman", "sigmoid", 1), ("elman", "tanh", 2),
         ("gru", "tanh", 1), ("lstm", "tanh", 1), ("lstm", "tanh", 2)]


@pytest.mark.parametrize("cell,activation,layers", CASES)
def test_norms_are_norms_of_the_true_gradient(cell, activation, layers):
    """Each ||d L_T / d h_{T-k}|| against central differences on h_{T-k} itself (float64)."""
    rng = np.random.default_rng(5)
    V, H, K = 5, 6, 6
    kwargs = {"cell": cell} if cell != "elman" else {}
    model = Model(V, H, activation, layers=layers, dtype="float64", **kwargs).init(2)
    ids = rng.integers(0, V, K + 2)  # one window: T = K + 1 inputs and the last target
    flow = gradient_flow(model, ids, steps=K, windows=1, warmup=0)
    assert flow.windows == 1 and flow.steps == K and flow.cell == cell
    T = K + 1
    states, state = [], model.zero_state(1)  # the state after each input, from a zero state
    for c in ids[:T]:
        _, state = model.step(np.array([c]), state)
        states.append(state)
    eps = 1e-4  # the far gradients are small: a smaller step would drown them in rounding
    for k in range(1, K + 1):
        s = states[T - 1 - k]  # the state holding h_{T-k}; the inputs after it are ids[T-k .. T-1]
        inputs, target = ids[T - k : T], ids[T]
        h = _h_of(s)
        g = np.zeros(H)
        for j in range(H):
            hp, hm = h.copy(), h.copy()
            hp[0, j] += eps
            hm[0, j] -= eps
            g[j] = (_last_loss(model, _with_h(s, hp), inputs, target)
                    - _last_loss(model, _with_h(s, hm), inputs, target)) / (2 * eps)
        expected = np.linalg.norm(g)
        assert expected > 0
        assert abs(flow.mean_norm[k - 1] - expected) / expected <= 1e-6, (k, flow.mean_norm[k - 1], expected)


def test_norms_are_averaged_over_windows_and_sigmoid_vanishes_faster_than_tanh():
    from charrnn.vocab import Vocab

    text = TINY_TEXT
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    flows = {a: gradient_flow(Model(len(vocab), 16, a).init(0), ids, steps=20, windows=64)
             for a in ("tanh", "sigmoid")}
    for f in flows.values():
        assert f.windows == 64 and len(f.mean_norm) == 20
        assert all(np.isfinite(f.mean_norm)) and f.mean_norm[-1] < f.mean_norm[0]
    # sigmoid' <= 1/4 where tanh' <= 1: with the same weights it loses the gradient faster.
    assert flows["sigmoid"].factor_per_step < flows["tanh"].factor_per_step
    assert flows["sigmoid"].mean_norm[-1] < flows["tanh"].mean_norm[-1]


def test_cli_table_and_json_on_a_checkpoint(trained_ckpt, tiny_corpus):
    runner = CliRunner()
    r = runner.invoke(main, ["gradflow", tiny_corpus, "--checkpoint", trained_ckpt, "--steps", "12",
                             "--windows", "32"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    rows = [l.split() for l in lines if l.split() and l.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, 13))
    assert all(float(r[1]) > 0 for r in rows)
    assert lines[-1].startswith("per step")
    r = runner.invoke(main, ["gradflow", tiny_corpus, "--checkpoint", trained_ckpt, "--steps", "12",
                             "--windows", "32", "--json"])
    assert r.exit_code == 0, r.output
    (flow,) = json.loads(r.output)["flows"]
    assert flow["k"] == list(range(1, 13)) and flow["windows"] == 32 and flow["activation"] == "tanh"
    assert flow["cell"] == "elman"
    assert [float(x[1]) for x in rows] == pytest.approx(flow["mean_norm"], rel=1e-3)


def test_cli_errors_are_one_line(trained_ckpt, tmp_path):
    runner = CliRunner()
    short = tmp_path / "short.txt"
    short.write_text("ROMEO.\n", encoding="utf-8")
    r = runner.invoke(main, ["gradflow", str(short), "--checkpoint", trained_ckpt])
    assert r.exit_code == 1 and "needs at least" in r.output and "Traceback" not in r.output
    unseen = tmp_path / "unseen.txt"
    unseen.write_text("zzz" * 100, encoding="utf-8")
    r = runner.invoke(main, ["gradflow", str(unseen), "--checkpoint", trained_ckpt])
    assert r.exit_code == 1 and "never saw" in r.output
    r = runner.invoke(main, ["gradflow", str(unseen), "--checkpoint", str(tmp_path / "none.npz")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1


def test_plot_without_matplotlib_names_the_extra(trained_ckpt, tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    out = tmp_path / "flow.png"
    r = CliRunner().invoke(main, ["gradflow", tiny_corpus, "--checkpoint", trained_ckpt, "--plot", str(out)])
    assert r.exit_code == 1
    assert r.output.strip() == "Error: plotting needs matplotlib: pip install 'charrnn[plot]'"
    assert not out.exists()
    # --json needs no matplotlib.
    r = CliRunner().invoke(main, ["gradflow", tiny_corpus, "--checkpoint", trained_ckpt, "--json", "--steps", "5"])
    assert r.exit_code == 0 and len(json.loads(r.output)["flows"][0]["mean_norm"]) == 5


def test_plot_writes_a_small_png(trained_ckpt, tiny_corpus, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "flow.png"
    r = CliRunner().invoke(main, ["gradflow", tiny_corpus, "--checkpoint", trained_ckpt, "--steps", "10",
                                  "--plot", str(out)])
    assert r.exit_code == 0, r.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 100_000
    r = CliRunner().invoke(main, ["gradflow", tiny_corpus, "--checkpoint", trained_ckpt, "--steps", "10",
                                  "--plot", str(tmp_path / "flow.notaformat")])
    assert r.exit_code == 1 and r.output.startswith("Error: cannot write") and len(r.output.splitlines()) == 1


def test_compare_activations_trains_three_models_from_their_initial_weights():
    text = TINY_TEXT * 3
    flows = compare_activations(text, hidden_size=16, steps=10, windows=32, max_steps=3)
    assert [f.label for f in flows] == [f"{a}, {s}" for a in ("tanh", "relu", "sigmoid")
                                        for s in ("initialised", "trained")]
    for init, trained in zip(flows[::2], flows[1::2]):
        assert init.activation == trained.activation
        assert trained.extra["updates"] == 3
        assert init.mean_norm != trained.mean_norm  # training changed the weights measured
    by = {f.label: f for f in flows}
    assert by["sigmoid, initialised"].factor_per_step < by["tanh, initialised"].factor_per_step


def test_cli_compare_activations_json(tmp_path):
    corpus = tmp_path / "t.txt"
    corpus.write_text(TINY_TEXT * 3, encoding="utf-8")
    r = CliRunner().invoke(main, ["gradflow", str(corpus), "--compare-activations", "--seconds", "0.1",
                                  "--hidden-size", "8", "--steps", "5", "--windows", "16", "--json"])
    assert r.exit_code == 0, r.output
    flows = json.loads(r.output.splitlines()[-1])["flows"]  # progress lines go to stderr
    assert len(flows) == 6 and {f["activation"] for f in flows} == {"tanh", "relu", "sigmoid"}
    assert all(f["extra"]["updates"] >= 1 for f in flows[1::2])


def test_json_has_no_nan_or_infinity_when_a_norm_overflows():
    from charrnn.gradflow import Flow

    d = Flow("relu", 4, [2.0, 1e300, float("inf")]).to_dict()
    assert d["mean_norm"] == [2.0, 1e300, None] and d["factor_per_step"] is None
    json.dumps(d, allow_nan=False)  # strict JSON
    assert Flow("tanh", 4, [1.0, 0.5, 0.25]).factor_per_step == pytest.approx(0.5)


def test_compare_activations_on_too_short_a_text_is_one_line(tmp_path):
    corpus = tmp_path / "t.txt"
    corpus.write_text(TINY_TEXT[:500], encoding="utf-8")
    r = CliRunner().invoke(main, ["gradflow", str(corpus), "--compare-activations"])
    assert r.exit_code == 1 and "needs at least 2049 characters, got 500" in r.output


def test_cli_reads_stdin(trained_ckpt):
    r = CliRunner().invoke(main, ["gradflow", "-", "--checkpoint", trained_ckpt, "--steps", "3", "--json"],
                           input=TINY_TEXT)
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["flows"][0]["mean_norm"]) == 3
