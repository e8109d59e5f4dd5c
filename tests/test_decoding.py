"""Decoding filters (repetition penalty, top-k, top-p) and beam search, on hand-made scores."""
from __future__ import annotations

import math

import numpy as np
import pytest

from charrnn.decoding import apply_repetition_penalty, beam_search, draw, filter_logits, log_softmax, repeated_continuations


def logits_of(probs):
    return np.log(np.asarray([probs], dtype=np.float64))


def kept(z):
    return np.flatnonzero(np.isfinite(z[0])).tolist()


@pytest.mark.parametrize("p, expected", [(0.45, [0]), (0.75, [0, 1]), (0.81, [0, 1, 2]), (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_the_smallest_set_reaching_p(p, expected):
    z = logits_of([0.5, 0.3, 0.15, 0.05])[:, [2, 0, 3, 1]]  # shuffled: ids 1, 3, 0, 2 by likelihood
    order = [1, 3, 0, 2]
    assert kept(filter_logits(z, top_p=p)) == sorted(order[: len(expected)])


def test_top_k_and_top_p_combine_as_both():
    z = logits_of([0.4, 0.3, 0.2, 0.1])
    assert kept(filter_logits(z.copy(), top_k=2, top_p=0.95)) == [0, 1]  # top-k is the stricter
    assert kept(filter_logits(z.copy(), top_k=3, top_p=0.35)) == [0]  # top-p is the stricter


def test_top_p_measures_the_distribution_after_temperature():
    z = logits_of([0.6, 0.3, 0.1])
    assert kept(filter_logits(z.copy(), top_p=0.7)) == [0, 1]
    # Temperature 0.5 squares and renormalises: 0.36/0.46 = 0.78 >= 0.7, so one character is left.
    assert kept(filter_logits(z / 0.5, top_p=0.7)) == [0]


def test_draw_follows_the_cumulative_distribution():
    z = logits_of([0.25, 0.25, 0.5])
    assert draw(np.repeat(z, 4, axis=0), np.array([0.0, 0.3, 0.6, 0.999])).tolist() == [0, 1, 2, 2]
    z[0, 1] = -np.inf  # a filtered character is never drawn
    assert draw(np.repeat(z, 3, axis=0), np.array([0.2, 0.4, 0.9])).tolist() == [0, 2, 2]


def test_repeated_continuations_name_what_followed_the_same_context():
    text = np.frombuffer(b"abcdXyyabcdZqqabcd", dtype=np.uint8)
    assert sorted(repeated_continuations(text, context=4).tolist()) == [ord("X"), ord("Z")]
    assert repeated_continuations(text, context=5).tolist() == []  # "cdabcd" never occurred before
    assert repeated_continuations(text[:-1], context=4).tolist() == []  # "Zqqabc" is new


def test_repetition_penalty_divides_the_probability_by_r():
    logits = np.zeros((1, 128))
    history = np.frombuffer(b"the cat the cat the ca", dtype=np.uint8)
    apply_repetition_penalty(logits, [history], 2.0)
    assert np.flatnonzero(logits[0]).tolist() == [ord("t")]
    assert logits[0, ord("t")] == pytest.approx(-math.log(2.0))


def toy_step(table):
    """A step function over a fixed table: the next id's log-probs depend on the last id only."""
    logp = log_softmax(np.log(np.asarray(table)))

    def step(state, last):
        return logp[last], state

    return step


# From 0: 'a' (1) 0.6, 'b' (2) 0.4; after 'a' three ids at 1/3 each; after 'b' 'c' (3) for sure.
TABLE = [[1e-9, 0.6, 0.4, 1e-9], [1 / 3, 1 / 3, 1 / 3, 1e-9], [1e-9, 1e-9, 1e-9, 1.0], [1.0, 1e-9, 1e-9, 1e-9]]


def test_beam_search_finds_a_more_likely_string_than_greedy():
    step = toy_step(TABLE)
    greedy = beam_search(step, np.zeros((1, 1)), 0, beam=1, length=2)[0]
    best = beam_search(step, np.zeros((1, 1)), 0, beam=2, length=2)[0]
    assert greedy.ids[0] == 1 and best.ids == [2, 3]
    assert greedy.logprob == pytest.approx(math.log(0.6) + math.log(1 / 3))
    assert best.logprob == pytest.approx(math.log(0.4), abs=1e-6)
    assert best.logprob > greedy.logprob + 0.5
    assert sum(best.logprobs) == pytest.approx(best.logprob)


def test_beam_one_is_greedy_on_random_scores():
    rng = np.random.default_rng(0)
    table = rng.dirichlet(np.ones(7) * 0.3, size=7)
    step = toy_step(table)
    ids, last = [], 0
    for _ in range(30):
        last = int(np.argmax(table[last]))
        ids.append(last)
    assert beam_search(step, np.zeros((1, 1)), 0, beam=1, length=30)[0].ids == ids


def test_beam_search_state_follows_its_hypotheses():
    # The state counts each hypothesis's ids; a wrong reorder would mix the counts up.
    V = 3

    def step(state, last):
        counts = state + np.eye(V)[last]  # (K, V)
        return log_softmax(-counts), counts  # repeating an id is ever less likely

    for beam in (1, 2, 5):
        for b in beam_search(step, np.zeros((1, V)), 0, beam=beam, length=9):
            expected = sum(math.log(np.exp(-c).item() / np.exp(-np.bincount([0] + b.ids[:i], minlength=V)).sum())
                           for i, c in enumerate(np.array([np.bincount([0] + b.ids[:i], minlength=V)[x]
                                                           for i, x in enumerate(b.ids)])))
            assert b.logprob == pytest.approx(expected)


def test_beam_search_sets_aside_hypotheses_at_the_stop_sequence():
    step = toy_step(TABLE)
    beams = beam_search(step, np.zeros((1, 1)), 0, beam=3, length=10, stop=[3, 0])
    assert beams[0].stopped and beams[0].ids == [2, 3, 0]
    assert [b.logprob for b in beams] == sorted((b.logprob for b in beams), reverse=True)
    assert len(beams) == 3


def test_beam_search_ranks_by_penalised_score_and_reports_the_model_logprob():
    step = toy_step([[0.1, 0.9], [0.1, 0.9]])
    plain = beam_search(step, np.zeros((1, 1)), 1, beam=1, length=8)[0]
    assert plain.ids == [1] * 8
    guarded = beam_search(step, np.zeros((1, 1)), 1, beam=1, length=8, repetition_penalty=100.0)[0]
    # 1 1111: the context 1111 occurred before, followed by 1, so 1 is penalised and 0 wins.
    assert guarded.ids[:5] == [1, 1, 1, 1, 0]
    assert guarded.score <= guarded.logprob
    assert guarded.logprob == pytest.approx(sum(math.log(0.9 if i else 0.1) for i in guarded.ids))
