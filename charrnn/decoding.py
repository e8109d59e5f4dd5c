"""Decoding: how the next character is chosen from the model's scores.

Dimensions: N streams (samples or beam hypotheses), V vocabulary.

**Sampling** turns a row of logits y (V,) into one drawn character. The filters run in
this order, each on what the one before left:

1. repetition penalty R (off at 1): a character that would continue a repeat of the text's
   last `REPEAT_CONTEXT` characters, as it continued them before in the last `REPEAT_WINDOW`
   characters, has its probability divided by R (y_c -= ln R);
2. temperature τ: y / τ (τ = 0 takes the most likely character: greedy, no draw);
3. top-k: only the k largest of y / τ keep their weight;
4. top-p (nucleus): only the most likely characters whose probabilities (after 1-3) sum to
   at least p keep their weight; the most likely one always stays;
5. draw from softmax of what is left.

Filters 3 and 4 combine as "both": a character survives if it is in the top k and in the
nucleus. The repetition penalty comes first so that it also steers greedy decoding, and
top-p measures the nucleus of the distribution that is actually drawn from.

Character-level text reuses every letter constantly, so penalising recently used characters
(the rule for word tokens, Keskar et al. 2019) would penalise ordinary spelling; what a loop
repeats is a string, so the penalty falls on continuing a string that already occurred.

**Beam search** keeps the `beam` most likely continuations (by total log probability under
the model) one character further at each step; `beam=1` is greedy decoding. It takes a
step function, so any model with a "state, last character -> log-probabilities" step can
use it (`charrnn translate --beam` does).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

REPEAT_CONTEXT = 4  # characters of context a repeat must share to be penalised
REPEAT_WINDOW = 256  # how far back the repetition penalty looks for an earlier occurrence


# -- sampling filters ------------------------------------------------------------------

def repeated_continuations(history: np.ndarray, context: int = REPEAT_CONTEXT,
                           window: int = REPEAT_WINDOW) -> np.ndarray:
    """The distinct ids that followed earlier occurrences of history's last `context` ids.

    history (S,) is one stream's text so far (prime and generated), oldest first; only its
    last `window` ids are searched.
    """
    h = np.asarray(history)[-window:]
    if len(h) <= context:
        return np.zeros(0, dtype=np.intp)
    tail = h[-context:]
    grams = np.lib.stride_tricks.sliding_window_view(h[:-1], context)  # (S-context, context)
    starts = np.flatnonzero((grams == tail).all(axis=1))  # earlier occurrences of the tail
    return np.unique(h[starts + context]).astype(np.intp)


def apply_repetition_penalty(logits: np.ndarray, histories: Sequence[np.ndarray], penalty: float) -> None:
    """In place: logits (N, V) of each stream lowered by ln(penalty) where a repeat would continue."""
    if penalty == 1:
        return
    cut = np.log(penalty)
    for row, history in zip(logits, histories):
        row[repeated_continuations(history)] -= cut


def filter_logits(z: np.ndarray, top_k: Optional[int] = None, top_p: Optional[float] = None) -> np.ndarray:
    """In place: set to -inf what top-k and top-p remove from each row of z (N, V), the
    logits already divided by the temperature. Returns z."""
    V = z.shape[1]
    if top_k is not None and top_k < V:
        cut = np.partition(z, V - top_k, axis=1)[:, V - top_k : V - top_k + 1]  # k-th largest
        z[z < cut] = -np.inf
    if top_p is not None and top_p < 1:
        order = np.argsort(-z, axis=1, kind="stable")  # (N, V) most likely first
        zs = np.take_along_axis(z, order, axis=1)
        p = np.exp(zs - zs[:, :1])
        p /= p.sum(axis=1, keepdims=True)
        more_likely = np.cumsum(p, axis=1) - p  # mass of the characters ranked above each
        np.put_along_axis(z, order, np.where(more_likely >= top_p, -np.inf, zs), axis=1)
    return z


def draw(z: np.ndarray, u: np.ndarray, tri: Optional[np.ndarray] = None,
         cdf: Optional[np.ndarray] = None) -> np.ndarray:
    """One id per row of the filtered, scaled logits z (N, V), drawn with uniforms u (N,).

    Overwrites z with unnormalised probabilities. tri, the (V, V) upper triangle of ones,
    makes the cumulative sum one matrix product (several times faster than np.cumsum for
    small V); cdf is an optional (N, V) work buffer.
    """
    V = z.shape[1]
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    if cdf is None:
        cdf = np.empty_like(z)
    if tri is not None:
        np.matmul(z, tri, out=cdf)
    else:
        np.cumsum(z, axis=1, out=cdf)
    # Inverse-CDF draw: the first index whose cumulative weight passes u * total.
    drawn = (cdf <= (u * cdf[:, -1])[:, None]).sum(axis=1)
    return np.minimum(drawn, V - 1, out=drawn)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """ln softmax of each row, in float64 (a beam's score adds hundreds of them)."""
    y = np.asarray(logits, dtype=np.float64)
    y = y - y.max(axis=-1, keepdims=True)
    return y - np.log(np.exp(y).sum(axis=-1, keepdims=True))


# -- beam search -----------------------------------------------------------------------

@dataclass
class Beam:
    """One hypothesis: the ids generated (after the start), their total and per-id ln p."""

    ids: list
    logprob: float  # sum of logprobs: ln p(ids | start) under the model
    logprobs: list = field(default_factory=list)
    stopped: bool = False  # ended with the stop sequence (which ids include)
    score: float = 0.0  # what beams are ranked by: logprob, less any repetition penalty


def take_rows(state, rows: np.ndarray):
    """The state of hypotheses `rows`: indexes axis 0 of every array in nested lists,
    tuples and dicts (the default way beam_search reorders a step function's state)."""
    if isinstance(state, np.ndarray):
        return state[rows]
    if isinstance(state, dict):
        return {k: take_rows(v, rows) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(take_rows(s, rows) for s in state)
    raise TypeError(f"cannot reorder a beam state of type {type(state).__name__}")


def beam_search(step: Callable, state, start: int, beam: int, length: int,
                stop: Optional[Sequence[int]] = None, repetition_penalty: float = 1.0,
                history: Sequence[int] = (), reorder: Callable = take_rows) -> list:
    """The `beam` most likely continuations of up to `length` ids, best first: [Beam].

    step(state, ids) -> (logp, new_state): ids (K,) are the last id of K hypotheses whose
    state is `state` (batched along axis 0 of its arrays), logp (K, V) the log-probabilities
    of the next id. `state` is for one hypothesis (batch 1) and `start` its last id. A
    hypothesis that ends with the `stop` ids is finished and set aside; the search ends when
    `length` ids are generated or no live hypothesis can beat the best finished one (scores
    only fall). `history` (ids before start, with start last) feeds the repetition penalty.
    Hypotheses are ranked by total log probability; ties go to the smaller id, so beam=1
    is exactly greedy decoding.
    """
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    stop = None if not stop else np.asarray(stop, dtype=np.intp)
    ids = np.zeros((1, 0), dtype=np.intp)  # (K, t) generated ids of each live hypothesis
    lps = np.zeros((1, 0))  # (K, t) their log-probabilities
    score, total = np.zeros(1), np.zeros(1)
    last = np.array([start], dtype=np.intp)
    prefix = np.asarray(history, dtype=np.intp) if len(history) else np.array([start], dtype=np.intp)
    finished: list = []
    for _ in range(length):
        logp, state = step(state, last)  # (K, V)
        logp = np.asarray(logp, dtype=np.float64)
        ranked = logp
        if repetition_penalty != 1:
            ranked = logp.copy()
            apply_repetition_penalty(ranked, [np.concatenate([prefix, row]) for row in ids], repetition_penalty)
        K, V = logp.shape
        cand = (score[:, None] + ranked).ravel()  # (K*V,)
        n = min(beam, cand.size)
        best = np.argsort(-cand, kind="stable")[:n]  # stable: ties go to the lower index
        parent, nxt = best // V, best % V
        ids = np.concatenate([ids[parent], nxt[:, None]], axis=1)
        lps = np.concatenate([lps[parent], logp[parent, nxt][:, None]], axis=1)
        score, total = cand[best], total[parent] + logp[parent, nxt]
        state, last = reorder(state, parent), nxt
        done = np.zeros(n, dtype=bool)
        if stop is not None and ids.shape[1] >= len(stop):
            done = (ids[:, -len(stop):] == stop).all(axis=1)
        for i in np.flatnonzero(done):
            finished.append(Beam(ids[i].tolist(), float(total[i]), lps[i].tolist(), True, float(score[i])))
        if done.any():
            keep = np.flatnonzero(~done)
            ids, lps, score, total, last = ids[keep], lps[keep], score[keep], total[keep], last[keep]
            state = reorder(state, keep)
        if len(ids) == 0:
            break
        finished.sort(key=lambda b: -b.score)
        if len(finished) >= beam and finished[beam - 1].score >= score.max():
            break  # no live hypothesis can overtake the beam-th finished one
    live = [Beam(ids[i].tolist(), float(total[i]), lps[i].tolist(), False, float(score[i])) for i in range(len(ids))]
    return sorted(finished + live, key=lambda b: -b.score)[:beam]
