"""Loss, bits per character and perplexity of a model on a text."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import CharRNNError


@dataclass
class Score:
    loss: float  # mean -log p(next char), nats
    bits_per_char: float
    perplexity: float
    predictions: int

    def to_dict(self) -> dict:
        return asdict(self)


def score_ids(model, ids: np.ndarray, streams: int = 1) -> Score:
    """Score ids[1:] given ids[:-1].

    streams=1 runs the whole text as one stream from a zero state (what `charrnn eval`
    reports). streams=S cuts it into S contiguous pieces run side by side, each from a
    zero state: every character is still scored, S times faster, slightly pessimistic.
    """
    if len(ids) < 2:
        raise CharRNNError(f"need at least 2 characters to score, got {len(ids)}")
    streams = max(1, min(streams, len(ids) // 2))
    n = len(ids) // streams
    rows = np.asarray(ids[: streams * n]).reshape(streams, n)
    total, count, _ = model.loss_sum(rows, model.zero_state(streams))
    # Characters left over by the even cut are scored as one more short stream.
    rest = ids[streams * n :]
    if len(rest) >= 2:
        t2, c2, _ = model.loss_sum(np.asarray(rest)[None, :], model.zero_state(1))
        total, count = total + t2, count + c2
    loss = total / count
    try:
        perplexity = math.exp(loss)
    except OverflowError:  # a diverged model's loss can pass 709 nats
        perplexity = math.inf
    return Score(loss, loss / math.log(2), perplexity, count)


def evaluate(source, text: str) -> Score:
    """Score a text, as `charrnn eval` does, with a checkpoint (or its path), a (model, vocab)
    pair or a training Result."""
    from .checkpoint import model_and_vocab

    model, vocab = model_and_vocab(source, "eval")
    return score_ids(model, vocab.encode(text))


@dataclass
class LineScore:
    """The negative log-likelihood of one line: its characters and its closing newline."""

    line: int  # 1-based line number
    text: str  # the line, without its newline
    predictions: int  # characters scored: the line's, plus its newline if it has one
    nats: float  # total -log p, natural log

    def to_dict(self) -> dict:
        n = max(self.predictions, 1)
        return {"line": self.line, "chars": len(self.text), "predictions": self.predictions,
                # Per prediction, the line's characters and its newline: what was scored.
                "nats": round(self.nats, 6), "nats_per_prediction": round(self.nats / n, 6),
                "bits": round(self.nats / math.log(2), 6), "bits_per_prediction": round(self.nats / n / math.log(2), 6),
                "text": self.text}


def score_lines(source, text: str, reset: bool = False) -> list:
    """Score every line of text: [LineScore], in order.

    Each line's characters and its newline are predicted from everything before: the
    preceding lines (as one stream, one forward pass over the whole text), or with
    reset=True from a zero state and a newline, as if the line were the whole text.
    The first line always starts from a zero state and a newline. `source` is a checkpoint
    (or its path), a (model, vocab) pair or a training Result.
    """
    from .batching import check_known, length_batches, pad, split_lines
    from .checkpoint import model_and_vocab

    model, vocab = model_and_vocab(source, "eval")
    if "\n" not in vocab:
        raise CharRNNError("per-line scores need a model that knows the newline character")
    lines = split_lines(text)
    if not lines:
        return []
    check_known(vocab, lines)
    terminated = [True] * (len(lines) - 1) + [text.endswith("\n")]
    counts = np.array([len(s) + t for s, t in zip(lines, terminated)], dtype=np.int64)
    if not reset:
        ids = vocab.encode("\n" + text).astype(np.intp)
        losses = _position_losses(model, ids[:, None])[:, 0]  # (len(text),)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        totals = np.add.reduceat(losses, starts)
    else:
        nl = vocab.index("\n")
        seqs = [np.concatenate(([nl], vocab.encode(s), [nl] if t else [])).astype(np.intp)
                for s, t in zip(lines, terminated)]
        totals = np.zeros(len(lines))
        for batch in length_batches(counts):
            losses = _position_losses(model, pad([seqs[i] for i in batch]))  # (T-1, b)
            mask = np.arange(losses.shape[0])[:, None] < counts[batch][None, :]
            totals[batch] = np.where(mask, losses, 0.0).sum(axis=0)
    return [LineScore(i + 1, s, int(c), float(t)) for i, (s, c, t) in enumerate(zip(lines, counts, totals))]


def _position_losses(model, ids: np.ndarray) -> np.ndarray:
    """Per-position losses of predicting ids[1:] from ids[:-1], ids (T, B), from a zero state."""
    from .batching import TIME_CHUNK

    T, B = ids.shape
    out = np.zeros((max(T - 1, 0), B))
    state = model.zero_state(B)
    for start in range(0, T - 1, TIME_CHUNK):
        stop = min(start + TIME_CHUNK, T - 1)
        out[start:stop], state = model.position_losses(ids[start:stop], ids[start + 1 : stop + 1], state)
    return out
