"""Decoding through `charrnn sample` and the library: top-p, the repetition penalty, beam search."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.decoding import REPEAT_CONTEXT
from charrnn.sampling import likeliest, samples


def run(*argv):
    result = CliRunner().invoke(main, list(argv))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("extra", [[], ["--prime", "JULIET.\n"], ["--stop-at", "o"]])
def test_beam_one_is_temperature_zero(trained_ckpt, extra):
    greedy = run("sample", "--checkpoint", trained_ckpt, "--temp", "0", "--length", "120", *extra)
    assert run("sample", "--checkpoint", trained_ckpt, "--beam", "1", "--length", "120", *extra) == greedy
    g = json.loads(run("sample", "--checkpoint", trained_ckpt, "--temp", "0", "--length", "120", "--json", *extra))
    b = json.loads(run("sample", "--checkpoint", trained_ckpt, "--beam", "1", "--length", "120", "--json", *extra))
    assert b["text"] == g["text"] and b["stopped"] == g["stopped"]
    assert b["logprob"] == pytest.approx(g["logprob"], abs=1e-3)
    assert b["logprobs"] == pytest.approx(g["logprobs"], abs=1e-4)


def test_a_wider_beam_finds_likelier_text_than_greedy_on_the_trained_model(trained_ckpt):
    greedy = samples(trained_ckpt, 1, length=60, temperature=0)[0]
    found = likeliest(trained_ckpt, beam=8, length=60)
    assert len(found) == 8 and [b.rank for b in found] == list(range(1, 9))
    assert [b.logprob for b in found] == sorted((b.logprob for b in found), reverse=True)
    assert found[0].logprob > greedy.logprob
    assert found[0].logprob == pytest.approx(sum(found[0].logprobs), abs=1e-3)
    # Its log probability is the model's: scoring the same text gives the same number.
    ck = charrnn.load(trained_ckpt)
    ids = ck.vocab.encode("\n" + found[0].text).astype(np.intp)
    model = ck.model()
    nll, _ = model.position_losses(ids[:-1, None], ids[1:, None], model.zero_state(1))
    assert -nll.sum() == pytest.approx(found[0].logprob, abs=1e-3)


def test_json_beams_are_one_per_line(trained_ckpt):
    lines = run("sample", "--checkpoint", trained_ckpt, "--beam", "3", "--length", "20", "--json").splitlines()
    beams = [json.loads(line) for line in lines]
    assert [b["rank"] for b in beams] == [1, 2, 3] and all(b["beam"] == 3 for b in beams)
    assert len({b["text"] for b in beams}) == 3


def test_a_tiny_top_p_or_top_k_one_is_greedy(trained_ckpt):
    greedy = samples(trained_ckpt, 2, length=80, temperature=0)[0].text
    assert samples(trained_ckpt, 1, length=80, temperature=1.0, top_p=1e-6, seed=3)[0].text == greedy
    assert samples(trained_ckpt, 1, length=80, temperature=1.0, top_k=1, top_p=0.9, seed=3)[0].text == greedy


def test_top_p_one_changes_nothing_and_a_smaller_one_does(trained_ckpt):
    plain = samples(trained_ckpt, 4, length=200, temperature=1.0, seed=5)
    assert [s.text for s in samples(trained_ckpt, 4, length=200, temperature=1.0, seed=5, top_p=1.0)] == \
           [s.text for s in plain]
    nucleus = samples(trained_ckpt, 4, length=200, temperature=1.0, seed=5, top_p=0.5)
    assert [s.text for s in nucleus] != [s.text for s in plain]
    # A nucleus of half the mass leaves out the unlikely characters: every drawn one is more likely.
    assert np.mean([np.mean(s.logprobs) for s in nucleus]) > np.mean([np.mean(s.logprobs) for s in plain])


def repeats(text: str) -> int:
    """How many characters continue a string of REPEAT_CONTEXT characters the way it was continued before."""
    seen, count = set(), 0
    for t in range(REPEAT_CONTEXT, len(text)):
        key = text[t - REPEAT_CONTEXT : t + 1]
        count += key in seen
        seen.add(key)
    return count


def test_the_repetition_penalty_breaks_greedy_loops(trained_ckpt):
    greedy = samples(trained_ckpt, 1, length=150, temperature=0)[0]
    guarded = samples(trained_ckpt, 1, length=150, temperature=0, repetition_penalty=1e9)[0]
    assert repeats(greedy.text) > 50  # a small model's greedy text loops
    assert repeats(guarded.text) == 0
    mild = samples(trained_ckpt, 1, length=150, temperature=0, repetition_penalty=1.5)[0]
    assert mild.repetition_penalty == 1.5 and repeats(mild.text) <= repeats(greedy.text)


def test_drawing_options_with_beam_are_a_usage_error(trained_ckpt):
    result = CliRunner().invoke(main, ["sample", "--checkpoint", trained_ckpt, "--beam", "2", "-n", "3"])
    assert result.exit_code == 2 and "--num-samples does not apply" in result.output
