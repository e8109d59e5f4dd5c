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


def evaluate(checkpoint, text: str) -> Score:
    """Score a text with a checkpoint (a Checkpoint or a path), as `charrnn eval` does."""
    from . import checkpoint as ckpt

    if isinstance(checkpoint, str):
        checkpoint = ckpt.load(checkpoint)
    missing = checkpoint.vocab.missing(text)
    if missing:
        from .vocab import describe

        raise CharRNNError(f"the text has characters the model never saw: {describe(missing)}")
    return score_ids(checkpoint.model(), checkpoint.vocab.encode(text))
