"""Generating text: feed a prime through the network, then draw one character at a time."""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from .errors import CharRNNError


def sample(checkpoint, length: int = 1000, temperature: float = 0.8, prime: str = "",
           seed: Optional[int] = None, top_k: Optional[int] = None) -> Iterator[str]:
    """Yield the prime's characters, then `length` generated ones, as they are produced.

    Characters are drawn from softmax(y / temperature); temperature 0 takes the most
    likely character every time. top_k keeps only the k most likely before drawing.
    The same seed gives the same text.
    """
    from . import checkpoint as ckpt

    if isinstance(checkpoint, str):
        checkpoint = ckpt.load(checkpoint)
    if length < 0:
        raise CharRNNError(f"length must be 0 or more, got {length}")
    if temperature < 0:
        raise CharRNNError(f"temperature must be 0 or more, got {temperature}")
    if top_k is not None and top_k < 1:
        raise CharRNNError(f"top-k must be at least 1, got {top_k}")
    vocab = checkpoint.vocab
    missing = vocab.missing(prime) if prime else []
    if missing:
        from .vocab import describe

        raise CharRNNError(f"the prime has characters the model never saw: {describe(missing)}")
    model = checkpoint.model()
    rng = np.random.default_rng(seed)
    state = model.zero_state(1)
    chars, V = vocab.chars, len(vocab)
    if prime:
        ids = vocab.encode(prime).astype(np.intp)
        yield prime
    elif "\n" in vocab:
        # No prime: start as if after a line break (unprinted), the most natural start of text.
        ids = np.array([vocab.index("\n")])
    else:
        ids = np.array([rng.integers(V)])
    for i in ids[:-1]:
        _, state = model.step(np.array([i]), state)
    current = int(ids[-1])
    for _ in range(length):
        logits, state = model.step(np.array([current]), state)
        current = _draw(logits[0].astype(np.float64), temperature, top_k, rng, V)
        yield chars[current]


def _draw(logits: np.ndarray, temperature: float, top_k, rng, V: int) -> int:
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature
    if top_k is not None and top_k < V:
        cut = np.partition(z, V - top_k)[V - top_k]
        z = np.where(z >= cut, z, -np.inf)
    z -= z.max()
    p = np.exp(z)
    cdf = np.cumsum(p)
    # Inverse-CDF draw: one uniform number per character, cheaper than rng.choice.
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), V - 1))
