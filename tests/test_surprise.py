"""Per-character surprise, next-character guesses and hidden states; `charrnn inspect`."""
from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn import checkpoint as ckpt
from charrnn.cli import main
from charrnn.surprise import char_scores, hidden_states, most_varying, tinted
from charrnn.vectors import final_states

TEXT = "JULIET.\nO Romeo, Romeo, wherefore art thou Romeo?\n" * 3


@pytest.fixture(scope="module")
def loaded(trained_ckpt):
    c = ckpt.load(trained_ckpt)
    return c, c.model(), c.vocab


def test_mean_surprise_is_eval_loss(loaded):
    c, model, vocab = loaded
    s = char_scores(model, vocab, TEXT)
    ref = charrnn.evaluate(c, TEXT)
    assert np.isnan(s.losses[0]) and np.all(s.losses[1:] > 0)
    assert s.loss == pytest.approx(ref.loss, abs=1e-5) and s.predictions == ref.predictions
    assert s.bits_per_char == pytest.approx(ref.bits_per_char, abs=1e-5)


def test_top_guesses_are_the_likeliest_and_predict_the_next_loss(loaded):
    c, model, vocab = loaded
    s = char_scores(model, vocab, TEXT, top_k=len(vocab))  # every character: a full distribution
    assert np.allclose(s.top_probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(s.top_probs, axis=1) <= 0)
    ids = vocab.encode(TEXT)
    for i in (0, 7, len(TEXT) - 2):
        p_next = s.top_probs[i][list(s.top_ids[i]).index(ids[i + 1])]
        assert -np.log(p_next) == pytest.approx(s.losses[i + 1], abs=1e-5)
    assert char_scores(model, vocab, TEXT, top_k=3).top_ids.shape == (len(TEXT), 3)


def test_hidden_states_end_in_the_sentence_vector(loaded):
    c, model, vocab = loaded
    h = hidden_states(model, vocab, TEXT)
    assert h.shape == (len(TEXT), model.H)
    vector = final_states(c.model(), [vocab.encode(TEXT).astype(np.intp)])[0]
    np.testing.assert_allclose(h[-1], vector, atol=1e-6)
    ranked = most_varying(h, 5)
    assert [u for u, _ in ranked] == list(np.argsort(-h.std(axis=0), kind="stable")[:5])


def test_long_text_runs_in_pieces_as_one_stream(loaded):
    c, model, vocab = loaded
    long = TEXT * 12  # over one CHUNK
    s = char_scores(model, vocab, long)
    assert s.loss == pytest.approx(charrnn.evaluate(c, long).loss, abs=1e-5)


def test_unknown_characters_are_named(loaded):
    _, model, vocab = loaded
    with pytest.raises(charrnn.CharRNNError, match="never saw: 'Q'"):
        char_scores(model, vocab, "ROMEO Q")


def test_tinted_text_is_the_text_plus_colours(loaded):
    _, model, vocab = loaded
    out = tinted(char_scores(model, vocab, TEXT))
    assert re.sub(r"\x1b\[[0-9;]*m", "", out) == TEXT
    assert "\x1b[30;48;5;" in out


def test_cli_inspect_plain_and_coloured(trained_ckpt, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    runner = CliRunner()
    res = runner.invoke(main, ["inspect", str(path), "--checkpoint", trained_ckpt])  # not a TTY: plain text
    assert res.exit_code == 0 and res.stdout == TEXT
    loss = charrnn.evaluate(ckpt.load(trained_ckpt), TEXT).loss
    assert f"loss {loss:.4f} nats/char" in res.stderr
    res = runner.invoke(main, ["inspect", str(path), "--checkpoint", trained_ckpt, "--color", "always"])
    assert res.exit_code == 0 and "\x1b[" in res.stdout
    assert re.sub(r"\x1b\[[0-9;]*m", "", res.stdout) == TEXT


@pytest.mark.parametrize("text,message", [("ROMEO Q", "the text has characters the model never saw: 'Q'"),
                                          ("R", "need at least 2 characters to score, got 1")])
def test_cli_inspect_bad_input(trained_ckpt, tmp_path, text, message):
    path = tmp_path / "t.txt"
    path.write_text(text)
    res = CliRunner().invoke(main, ["inspect", str(path), "--checkpoint", trained_ckpt])
    assert res.exit_code == 1 and res.stderr.strip() == f"Error: {message}"


def test_cli_inspect_tints_on_a_terminal(trained_ckpt, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import run_on_terminal

    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc, out = run_on_terminal([sys.executable, "-m", "charrnn", "inspect", str(path), "--checkpoint", trained_ckpt],
                                stderr=subprocess.PIPE, env=env)
    assert proc.returncode == 0 and b"\x1b[30;48;5;" in out
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out.decode()).replace("\r\n", "\n")  # the pty adds \r
    assert plain == TEXT


@pytest.fixture(scope="module")
def lstm2(tmp_path_factory, tiny_corpus):
    from conftest import tiny_config

    out = tmp_path_factory.mktemp("lstm2") / "run"
    charrnn.train(tiny_config(cell="lstm", layers=2, max_steps=20), tiny_corpus, out=str(out))
    c = ckpt.load(str(out / "best.npz"))
    return c, c.model(), c.vocab


def test_any_layer_and_the_cell_state(lstm2):
    from charrnn.surprise import _stepwise

    _, model, vocab = lstm2
    ids = vocab.encode(TEXT).astype(np.intp)
    top = hidden_states(model, vocab, TEXT)
    np.testing.assert_allclose(_stepwise(model, ids, 1, False, np.empty_like(top)), top, atol=1e-5)
    _, final = model.run(ids[:, None], model.zero_state(1))  # every layer's (h, c) after the text
    h0, c0 = hidden_states(model, vocab, TEXT, layer=0), hidden_states(model, vocab, TEXT, layer=0, cell=True)
    np.testing.assert_allclose(h0[-1], final[0][0][0], atol=1e-5)
    np.testing.assert_allclose(c0[-1], final[0][1][0], atol=1e-5)
    assert not np.allclose(h0, c0)
    with pytest.raises(charrnn.CharRNNError, match="layer 2 does not exist: the model has layers 0..1"):
        hidden_states(model, vocab, TEXT, layer=2)


def test_only_an_lstm_has_a_cell_state(loaded):
    _, model, vocab = loaded
    with pytest.raises(charrnn.CharRNNError, match="only an LSTM has a cell state"):
        hidden_states(model, vocab, TEXT, cell=True)
