"""What a model makes of a text, character by character.

For a text c_1..c_N run as one stream from a zero state (as `charrnn eval` runs it):

    loss_i   = -ln p(c_i | c_1..c_{i-1})        i = 2..N (c_1 is not predicted: loss_1 is NaN)
    next_i   = the k likeliest characters after c_1..c_i, with their probabilities
    h_i      = the top layer's hidden state after reading c_i, (H,)

The mean of loss_2..loss_N is the loss `charrnn eval` reports on the same text. These are
the pictures of "The Unreasonable Effectiveness of Recurrent Neural Networks": text tinted
by surprise, and single hidden units that switch on inside quotes or at line ends.
`charrnn serve` and `charrnn inspect` draw them; N is the text length, V the vocabulary, k top_k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from .errors import CharRNNError

CHUNK = 512  # characters per forward pass: few Python calls, buffers of (CHUNK, H)


@dataclass
class CharScores:
    """Per-character surprise of a text and the model's guesses for each next character."""

    text: str
    losses: np.ndarray  # (N,) float64 nats; losses[0] is NaN
    top_ids: np.ndarray  # (N, k) ids of the k likeliest next characters after c_1..c_i, likeliest first
    top_probs: np.ndarray  # (N, k) their probabilities

    @property
    def predictions(self) -> int:
        return max(len(self.text) - 1, 0)

    @property
    def loss(self) -> float:
        """Mean loss over the predicted characters, nats/char (what `charrnn eval` prints)."""
        return float(np.mean(self.losses[1:])) if self.predictions else math.nan

    @property
    def bits_per_char(self) -> float:
        return self.loss / math.log(2)


def char_scores(model, vocab, text: str, top_k: int = 5) -> CharScores:
    """Each character's loss and the top_k predictions after it (see the module docstring)."""
    ids = _ids(vocab, text)
    k = max(1, min(int(top_k), len(vocab)))
    losses = np.full(len(ids), np.nan)
    top_ids = np.zeros((len(ids), k), dtype=np.int64)
    top_probs = np.zeros((len(ids), k))
    for start, h in _top_states(model, ids):
        n = h.shape[0]
        logp = _log_softmax(h @ model.params["W_hy"] + model.params["b_y"])  # (n, V) float64
        nxt = ids[start + 1 : start + n + 1]  # the characters these rows predict
        losses[start + 1 : start + 1 + len(nxt)] = -logp[np.arange(len(nxt)), nxt]
        part = np.argpartition(-logp, k - 1, axis=1)[:, :k] if k < logp.shape[1] else np.tile(np.arange(k), (n, 1))
        order = np.argsort(-np.take_along_axis(logp, part, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(part, order, axis=1)
        top_ids[start : start + n] = best
        top_probs[start : start + n] = np.exp(np.take_along_axis(logp, best, axis=1))
    return CharScores(text, losses, top_ids, top_probs)


def hidden_states(model, vocab, text: str, layer: Optional[int] = None, cell: bool = False) -> np.ndarray:
    """A layer's hidden state h (or, with cell=True, an LSTM's cell state c) after each
    character, (N, H) float32; layer defaults to the top one."""
    ids = _ids(vocab, text)
    top = len(model.layers) - 1
    layer = top if layer is None else layer
    if not 0 <= layer <= top:
        raise CharRNNError(f"layer {layer} does not exist: the model has layers 0..{top}")
    if cell and model.cell != "lstm":
        raise CharRNNError(f"only an LSTM has a cell state; this model's cell is {model.cell}")
    out = np.empty((len(ids), model.H), dtype=np.float32)
    if layer == top and not cell:  # the fast path: whole chunks through Model.run
        for start, h in _top_states(model, ids):
            out[start : start + h.shape[0]] = h
        return out
    return _stepwise(model, ids, layer, cell, out)


def _stepwise(model, ids: np.ndarray, layer: int, cell: bool, out: np.ndarray) -> np.ndarray:
    """Any layer's h, or c: one character at a time through Model.step, which returns every
    layer's state ((h, c) for an LSTM); slower than Model.run, but through the model's public
    interface."""
    state = model.zero_state(1)
    for i in range(len(ids)):
        _, state = model.step(ids[i : i + 1], state)
        s = state[layer]
        out[i] = (s[1] if cell else s[0])[0] if isinstance(s, tuple) else s[0]
    return out


def most_varying(states: np.ndarray, n: int = 20) -> list:
    """[(unit, standard deviation)] of the n units whose activation varies most, largest first."""
    std = states.std(axis=0) if len(states) else np.zeros(states.shape[1])
    order = np.argsort(-std, kind="stable")[:n]
    return [(int(u), float(std[u])) for u in order]


def _ids(vocab, text: str) -> np.ndarray:
    if not text:
        raise CharRNNError("the text is empty")
    vocab.require(text)
    return vocab.encode(text).astype(np.intp)


def _top_states(model, ids: np.ndarray) -> Iterator[tuple]:
    """(start, h (n, H)) for consecutive pieces of ids, one stream from a zero state."""
    state = model.zero_state(1)
    for start in range(0, len(ids), CHUNK):
        piece = ids[start : start + CHUNK, None]  # (n, 1)
        h, state = model.run(piece, state)  # (n, 1, H), a buffer reused by the next run
        yield start, np.array(h[:, 0, :], dtype=np.float32)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    y = logits.astype(np.float64)
    y -= y.max(axis=1, keepdims=True)
    y -= np.log(np.exp(y).sum(axis=1, keepdims=True))
    return y


# Terminal tints: 256-colour backgrounds, from none (expected) through yellow to red (surprising).
TINTS = ((1.0, None), (2.0, 230), (3.0, 229), (4.0, 222), (5.0, 215), (7.0, 209), (math.inf, 203))


def _tint(loss: float):
    if not loss >= 0:  # NaN: the first character, which nothing predicts
        return None
    return next(colour for bound, colour in TINTS if loss < bound)


def tinted(scores: CharScores) -> str:
    """The text with ANSI background colours by each character's loss; line breaks stay plain."""
    out, current = [], None
    for ch, loss in zip(scores.text, scores.losses.tolist()):
        colour = None if ch == "\n" else _tint(loss)
        if colour != current:
            out.append("\x1b[0m" if colour is None else f"\x1b[30;48;5;{colour}m")
            current = colour
        out.append(ch)
    if current is not None:
        out.append("\x1b[0m")
    return "".join(out)


LEGEND = "surprise, nats: <1 " + "".join(
    f"\x1b[30;48;5;{c}m <{b:g} \x1b[0m" if b != math.inf else f"\x1b[30;48;5;{c}m 7+ \x1b[0m"
    for b, c in TINTS[1:]) + "\n"
