"""Sampling N streams in one batch: seeds, separators, stop strings, JSON with log-probabilities."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.sampling import samples, unescape
from charrnn.scoring import score_ids

from conftest import TINY_TEXT, tiny_config


@pytest.fixture(scope="module")
def ckpt64(tmp_path_factory):
    """A float64 model: batch and single-stream rounding cannot change a draw."""
    out = tmp_path_factory.mktemp("ck64")
    charrnn.train(tiny_config(dtype="float64", max_steps=40), text=TINY_TEXT, out=str(out))
    return charrnn.load(str(out / "latest.npz"))


def test_same_seed_same_samples_and_sample_i_uses_seed_plus_i(ckpt64):
    a = samples(ckpt64, 4, length=60, seed=10)
    b = samples(ckpt64, 4, length=60, seed=10)
    assert [s.text for s in a] == [s.text for s in b]
    assert [s.seed for s in a] == [10, 11, 12, 13]
    assert len({s.text for s in a}) == 4  # the streams are not copies of one another
    for i, s in enumerate(a):
        alone = samples(ckpt64, 1, length=60, seed=10 + i)[0]
        assert alone.text == s.text
    # The streaming generator is the same draw as sample 1 of the batch.
    assert "".join(charrnn.sample(ckpt64, length=60, seed=10)) == a[0].text


def test_logprobs_are_the_models_own_scores(ckpt64):
    s = samples(ckpt64, 2, length=50, seed=3, temperature=1.3)[1]
    assert len(s.logprobs) == len(s.text) == 50
    assert all(lp < 0 for lp in s.logprobs)
    # No prime: generation starts after an unprinted newline, so score "\n" + text.
    ids = ckpt64.vocab.encode("\n" + s.text)
    expected = score_ids(ckpt64.model(), ids)
    assert -sum(s.logprobs) / len(s.logprobs) == pytest.approx(expected.loss, abs=1e-4)


def test_stop_at_ends_each_sample_at_its_first_occurrence(ckpt64):
    out = samples(ckpt64, 8, length=300, seed=0, stop_at="o")
    for s in out:
        assert s.text.count("o") == (1 if s.stopped else 0)
        assert s.text.endswith("o") == s.stopped
        assert s.stopped or len(s.text) == 300
        assert len(s.logprobs) == len(s.text)
    assert any(s.stopped for s in out)
    two = samples(ckpt64, 8, length=300, seed=0, stop_at="o, ")
    assert all(s.text.endswith("o, ") and s.text.count("o, ") == 1 for s in two if s.stopped)


def test_prime_is_shared_and_printed_once_per_sample(ckpt64):
    out = samples(ckpt64, 3, length=10, seed=1, prime="ROMEO.\n")
    assert all(s.prime == "ROMEO.\n" and len(s.text) == 10 for s in out)
    # The prime's state is the same as feeding the prime to one stream.
    assert out[0].text == samples(ckpt64, 1, length=10, seed=1, prime="ROMEO.\n")[0].text


def test_temperature_zero_is_greedy_and_ignores_the_seed(ckpt64):
    a = samples(ckpt64, 3, length=30, temperature=0, seed=1)
    assert len({s.text for s in a}) == 1
    assert a[0].text == samples(ckpt64, 1, length=30, temperature=0, seed=99)[0].text


def test_top_k_one_is_greedy(ckpt64):
    greedy = samples(ckpt64, 1, length=30, temperature=0)[0].text
    assert samples(ckpt64, 2, length=30, temperature=1.0, top_k=1, seed=4)[1].text == greedy


def test_draws_follow_the_distribution():
    # The inverse-CDF draw, against exact probabilities, over many rows at once.
    from charrnn.sampling import _draw

    V, N = 5, 40000
    logits = np.tile(np.log(np.array([0.1, 0.2, 0.3, 0.35, 0.05], np.float32)), (N, 1))
    u = np.random.default_rng(0).random(N)
    z, cdf = np.empty_like(logits), np.empty_like(logits)
    drawn = _draw(logits, 1.0, None, u, np.triu(np.ones((V, V), np.float32)), z, cdf)
    freq = np.bincount(drawn, minlength=V) / N
    assert np.allclose(freq, [0.1, 0.2, 0.3, 0.35, 0.05], atol=0.01)
    no_tri = _draw(logits, 1.0, None, u, None, z, cdf)
    assert (no_tri == drawn).mean() > 0.999


def test_cli_num_samples_separator_and_json(trained_ckpt):
    runner = CliRunner()
    base = ["sample", "--checkpoint", trained_ckpt, "--length", "40", "--seed", "7", "-n", "3"]
    r = runner.invoke(main, base + ["--separator", r"\n%%\n"])
    assert r.exit_code == 0, r.output
    j = runner.invoke(main, base + ["--json"])
    rows = [json.loads(line) for line in j.output.splitlines()]
    texts = [row["text"] for row in rows]
    assert len(texts) == 3 and all(len(t) == 40 for t in texts)
    joined = "\n%%\n".join(texts)
    assert r.output == joined + ("" if joined.endswith("\n") else "\n")  # text ends with a newline
    assert [row["seed"] for row in rows] == [7, 8, 9]
    assert all(row["temperature"] == 0.8 and len(row["logprobs"]) == 40 for row in rows)


def test_seed_is_reported_when_not_given(ckpt64):
    s = samples(ckpt64, 1, length=20)[0]
    assert isinstance(s.seed, int)
    assert samples(ckpt64, 1, length=20, seed=s.seed)[0].text == s.text


def test_bad_stop_and_prime_are_one_line_errors(ckpt64):
    with pytest.raises(charrnn.CharRNNError, match="stop string"):
        samples(ckpt64, 1, length=5, stop_at="\u20ac")
    with pytest.raises(charrnn.CharRNNError, match="prime"):
        samples(ckpt64, 1, length=5, prime="\u20ac")


def test_unescape():
    assert unescape(r"a\nb\t\\n\0") == "a\nb\t\\n\0"
    assert unescape("plain") == "plain" and unescape(None) is None
