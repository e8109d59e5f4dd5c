"""Generating text: feed a prime through the network, then draw one character at a time.

N samples are drawn side by side as N streams of one batch (B = N in the model's step), so
64 samples cost little more than one. Sample i draws its random numbers from its own
generator, seeded `seed + i`: the same command with the same seed gives the same samples,
and sample i does not depend on how many samples are drawn with it (up to float rounding,
which differs between batch sizes in BLAS, so `--seed S+i` alone almost always, not always,
repeats sample i of a `--seed S` run).

How a character is chosen from the model's scores (temperature, top-k, top-p, the repetition
penalty, and in which order) is `decoding.py`'s; `beam` searches for the likeliest text instead
of drawing it.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Iterator, Optional

import numpy as np

from . import decoding
from .checkpoint import model_and_vocab
from .errors import CharRNNError
from .model import map_state

RANDOM_BLOCK = 256  # uniform numbers drawn per generator at a time (same stream as one by one)
PRIME_CHUNK = 1024  # prime characters run through the network per forward pass


@dataclass
class Sample:
    """One generated sample; `text` excludes the prime, `logprobs` has one entry per char of it."""

    seed: int
    temperature: float
    top_k: Optional[int]
    prime: str
    text: str
    logprobs: list = field(default_factory=list)  # ln p(char) under the model (temperature 1, no top-k)
    stopped: bool = False  # ended at the stop string (which `text` includes)
    top_p: Optional[float] = None
    repetition_penalty: float = 1.0
    logprob: float = 0.0  # sum of logprobs: ln p(text | prime)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BeamText:
    """One result of a beam search: the text (after the prime) and its log probability."""

    prime: str
    text: str
    logprob: float  # ln p(text | prime) under the model, the sum of logprobs
    logprobs: list = field(default_factory=list)
    stopped: bool = False  # ended at the stop string (which `text` includes)
    beam: int = 1  # the beam width that found it
    rank: int = 1  # 1 for the likeliest text the search found

    def to_dict(self) -> dict:
        return asdict(self)


def sample(source, length: int = 1000, temperature: float = 0.8, prime: str = "",
           seed: Optional[int] = None, top_k: Optional[int] = None,
           stop_at: Optional[str] = None, top_p: Optional[float] = None,
           repetition_penalty: float = 1.0) -> Iterator[str]:
    """Yield the prime, then up to `length` generated characters, as they are produced.

    Characters are drawn from softmax(y / temperature); temperature 0 takes the most
    likely character every time. top_k keeps only the k most likely before drawing, top_p
    the most likely whose probabilities sum to at least p, and repetition_penalty R >= 1
    divides the probability of continuing an earlier string by R (decoding.py has the
    order). stop_at ends the sample after the first occurrence of that string in the generated
    text. The same seed gives the same text. `source` is a checkpoint (or its path), a
    (model, vocab) pair or a training Result.
    """
    gen = Generation(*model_and_vocab(source, "sample"), 1, length, temperature, prime, seed, top_k, stop_at,
                     top_p=top_p, repetition_penalty=repetition_penalty)
    if prime:
        yield prime
    chars = gen.vocab.chars
    for ids, live, _ in gen.steps():
        if not live[0]:
            break
        yield chars[ids[0]]


def samples(source, num_samples: int = 1, length: int = 1000, temperature: float = 0.8,
            prime: str = "", seed: Optional[int] = None, top_k: Optional[int] = None,
            stop_at: Optional[str] = None, logprobs: bool = True, top_p: Optional[float] = None,
            repetition_penalty: float = 1.0) -> list:
    """Draw `num_samples` samples in one batch; sample i uses seed + i. Returns [Sample]."""
    gen = Generation(*model_and_vocab(source, "sample"), num_samples, length, temperature, prime, seed, top_k,
                     stop_at, logprobs,
                     top_p, repetition_penalty)
    for _ in gen.steps():
        pass
    return gen.results()


def stream(source, num_samples: int = 1, length: int = 1000, temperature: float = 0.8,
           prime: str = "", seed: Optional[int] = None, top_k: Optional[int] = None,
           stop_at: Optional[str] = None, separator: str = "\n\n", top_p: Optional[float] = None,
           repetition_penalty: float = 1.0) -> Iterator[str]:
    """The text `charrnn sample` prints: sample 1 as it is generated, then the others.

    All samples are generated together; the first is written character by character,
    the rest once the batch is done, each preceded by the separator.
    """
    gen = Generation(*model_and_vocab(source, "sample"), num_samples, length, temperature, prime, seed, top_k,
                     stop_at, top_p=top_p, repetition_penalty=repetition_penalty)
    if prime:
        yield prime
    chars = gen.vocab.chars
    for ids, live, _ in gen.steps():
        if live[0]:
            yield chars[ids[0]]
    for result in gen.results()[1:]:
        yield separator + result.prime + result.text


class Generation:
    """The state of N streams of a model over a vocabulary being generated together."""

    def __init__(self, model, vocab, num_samples, length, temperature, prime, seed, top_k,
                 stop_at=None, logprobs=False, top_p=None, repetition_penalty=1.0):
        if num_samples < 1:
            raise CharRNNError(f"num-samples must be at least 1, got {num_samples}")
        if length < 0:
            raise CharRNNError(f"length must be 0 or more, got {length}")
        if temperature < 0:
            raise CharRNNError(f"temperature must be 0 or more, got {temperature}")
        if top_k is not None and top_k < 1:
            raise CharRNNError(f"top-k must be at least 1, got {top_k}")
        check_decoding(top_p, repetition_penalty)
        self.vocab = vocab
        check_prime_and_stop(vocab, prime, stop_at)
        self.top_p, self.penalty = top_p, repetition_penalty
        self.model = model
        self.N, self.length, self.temperature, self.top_k = num_samples, length, temperature, top_k
        self.prime, self.want_logprobs = prime, logprobs
        self.seed = int.from_bytes(os.urandom(4), "little") if seed is None else int(seed)
        self.seeds = [self.seed + i for i in range(num_samples)]
        self.rngs = [np.random.default_rng(s) for s in self.seeds]
        self.stop = None if not stop_at else vocab.encode(stop_at).astype(np.intp)
        self._ids: list = []  # per step: (N,) ids drawn
        self._logp: list = []  # per step: (N,) ln p of the drawn ids
        self.lengths = np.zeros(num_samples, dtype=np.int64)  # chars generated per stream
        self.stopped = np.zeros(num_samples, dtype=bool)

    def _start(self):
        """The first input of every stream and the state after the prime, (N,) and [(N, H)]."""
        model, vocab, N = self.model, self.vocab, self.N
        if self.prime:
            ids = vocab.encode(self.prime).astype(np.intp)
            state = model.zero_state(1)
            for start in range(0, len(ids) - 1, PRIME_CHUNK):  # the prime runs once, not N times
                _, state = model.run(ids[start : min(start + PRIME_CHUNK, len(ids) - 1), None], state)
            state = map_state(lambda a: np.repeat(a, N, axis=0), state)
            return np.full(N, ids[-1], dtype=np.intp), state
        state = model.zero_state(N)
        if "\n" in vocab:
            # No prime: start as if after a line break (unprinted), the most natural start of text.
            return np.full(N, vocab.index("\n"), dtype=np.intp), state
        return np.array([rng.integers(len(vocab)) for rng in self.rngs], dtype=np.intp), state

    def steps(self) -> Iterator[tuple]:
        """Yield (ids (N,), live (N,), logp (N,) or None) per generated position.

        live[i] is False once stream i has ended at the stop string; its ids are then filler.
        """
        current, state = self._start()
        N, V = self.N, len(self.vocab)
        P = max(len(self.prime), 1)
        history = np.empty((N, P + self.length), dtype=np.intp)  # each stream's text so far, for the penalty
        history[:, :P] = self.vocab.encode(self.prime) if self.prime else current[:, None]
        rows = np.arange(N)
        live = np.ones(N, dtype=bool)
        k = 0 if self.stop is None else len(self.stop)
        window = np.full((N, max(k, 1)), -1, dtype=np.intp)  # each stream's last k ids
        uniforms = None
        z, cdf = np.empty((N, V), np.float32), np.empty((N, V), np.float32)
        # Cumulative sums along rows as a product with a triangle of ones: several times
        # faster than np.cumsum(axis=1) on (N, V) with small V, and O(V^2) memory, so small V only.
        tri = np.triu(np.ones((V, V), np.float32)) if V <= 256 else None
        for t in range(self.length):
            logits, state = self.model.step(current, state)  # (N, V)
            logp = None
            scores = logits
            if self.penalty != 1:
                scores = logits.copy()
                decoding.apply_repetition_penalty(scores, history[:, : P + t], self.penalty)
            if self.temperature == 0:
                nxt = scores.argmax(axis=1)
            else:
                j = t % RANDOM_BLOCK
                if j == 0:
                    uniforms = np.stack([rng.random(RANDOM_BLOCK) for rng in self.rngs])  # (N, block)
                nxt = _draw(scores, self.temperature, self.top_k, uniforms[:, j], tri, z, cdf, self.top_p)
            history[:, P + t] = nxt
            if self.want_logprobs:
                y = logits.astype(np.float64)
                y -= y.max(axis=1, keepdims=True)
                logp = y[rows, nxt] - np.log(np.exp(y).sum(axis=1))
                self._logp.append(logp)
            self._ids.append(nxt)
            self.lengths += live
            yield nxt, live.copy(), logp
            if k:
                window[:, :-1] = window[:, 1:]
                window[:, -1] = nxt
                hit = live & (window == self.stop).all(axis=1)
                self.stopped |= hit
                live &= ~hit
                if not live.any():
                    break
            current = nxt

    def results(self) -> list:
        ids = np.stack(self._ids, axis=1) if self._ids else np.zeros((self.N, 0), dtype=np.intp)  # (N, S)
        logp = np.stack(self._logp, axis=1) if self._logp else None
        out = []
        for i in range(self.N):
            n = int(self.lengths[i])
            lp = [round(float(v), 5) for v in logp[i, :n]] if logp is not None else []
            total = round(float(logp[i, :n].sum()), 5) if logp is not None else 0.0
            out.append(Sample(self.seeds[i], self.temperature, self.top_k, self.prime,
                              self.vocab.decode(ids[i, :n]), lp, bool(self.stopped[i]),
                              self.top_p, self.penalty, total))
        return out


def _draw(logits, temperature, top_k, u, tri, z, cdf, top_p=None) -> np.ndarray:
    """One character per row of logits (N, V), drawn with the uniforms u (N,): steps 2-5 of
    decoding.py's order. z and cdf are (N, V) float32 work buffers; tri is the (V, V) upper
    triangle of ones, or None."""
    np.multiply(logits, 1.0 / temperature, out=z)
    decoding.filter_logits(z, top_k, top_p)
    return decoding.draw(z, u, tri, cdf)


def check_decoding(top_p, repetition_penalty) -> None:
    if top_p is not None and not 0 < top_p <= 1:
        raise CharRNNError(f"top-p must be in (0, 1], got {top_p}")
    if not repetition_penalty >= 1:
        raise CharRNNError(f"the repetition penalty must be 1 (off) or more, got {repetition_penalty}")


def check_prime_and_stop(vocab, prime: str, stop_at: Optional[str]) -> None:
    from .vocab import describe

    vocab.require(prime, "the prime")
    if stop_at == "":
        raise CharRNNError("the stop string is empty")
    unproducible = vocab.missing(stop_at) if stop_at else []
    if unproducible:
        raise CharRNNError(f"the stop string has characters the model never produces: {describe(unproducible)}")


def likeliest(source, beam: int = 4, length: int = 1000, prime: str = "", stop_at: Optional[str] = None,
         repetition_penalty: float = 1.0) -> list:
    """The `beam` likeliest continuations of the prime found by beam search, best first: [BeamText].

    Beam search keeps the `beam` most likely texts one character further at each step
    (decoding.beam_search); beam=1 is greedy decoding, the same text as temperature 0.
    Each result ends at `length` characters or after the stop string.
    """
    model, vocab = model_and_vocab(source, "sample")
    if beam < 1:
        raise CharRNNError(f"beam must be at least 1, got {beam}")
    if length < 0:
        raise CharRNNError(f"length must be 0 or more, got {length}")
    check_decoding(None, repetition_penalty)
    check_prime_and_stop(vocab, prime, stop_at)
    gen = Generation(model, vocab, 1, length, 0.0, prime, 0, None)  # for its start: the prime run through
    current, state = gen._start()

    def step(state, ids):
        logits, new_state = model.step(ids, state)
        return decoding.log_softmax(logits), new_state

    history = vocab.encode(prime).astype(np.intp) if prime else current
    stop = vocab.encode(stop_at).astype(np.intp) if stop_at else None
    found = decoding.beam_search(step, state, int(current[0]), beam, length, stop, repetition_penalty, history)
    return [BeamText(prime, vocab.decode(b.ids), round(b.logprob, 5), [round(x, 5) for x in b.logprobs],
                     b.stopped, beam, rank) for rank, b in enumerate(found, 1)]


def unescape(text: Optional[str]) -> Optional[str]:
    r"""The backslash escapes \n, \t, \0 and \\ in an option value, as a shell user means them."""
    if text is None or "\\" not in text:
        return text
    out, i = [], 0
    table = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\", "r": "\r"}
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in table:
            out.append(table[text[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)
