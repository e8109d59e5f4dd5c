"""Using a trained encoder-decoder: translate lines (greedy, sampled or beam), score pairs.

Each source is encoded once; the decoder then starts from START and writes one character a
step until it writes END or reaches `max_length` characters. Greedy decoding takes the
likeliest character each step, `temperature` > 0 draws from softmax(y / temperature), and
`beam` > 1 keeps the `beam` likeliest partial outputs (decoding.beam_search, the language
model's, driven by the decoder's step function). `logprob` is ln p(output, END | source) under the model
(at temperature 1), summed over the output's characters and its END.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from .decoding import log_softmax
from .errors import CharRNNError
from .seq2seq import END, START

BATCH = 64  # sources decoded side by side


@dataclass
class Translation:
    line: int  # 1-based input line
    source: str
    output: Optional[str]  # None when the line could not be translated
    logprob: Optional[float]
    finished: bool = True  # wrote END before max_length
    error: Optional[str] = None

    def to_dict(self) -> dict:
        d = {"line": self.line, "source": self.source, "output": self.output,
             "logprob": None if self.logprob is None else round(self.logprob, 5), "finished": self.finished}
        if self.error:
            d["error"] = self.error
        return d


def require_seq2seq(checkpoint, command: str = "translate"):
    if checkpoint.task != "seq2seq":
        raise CharRNNError(f"{command} needs an encoder-decoder checkpoint (charrnn train --pairs); "
                           f"{checkpoint.path or 'this checkpoint'} is a language model (use charrnn sample)")
    return checkpoint


def encode_sources(model, seqs: list) -> list:
    """The decoder's start state for id sequences (all non-empty): per layer, (B, ...)."""
    from .batching import pad

    src = pad(seqs)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    return model.encode_states(src, lengths)


def greedy(model, seqs: list, start: int, end: int, max_length: int, temperature: float = 0.0,
           rng: Optional[np.random.Generator] = None) -> list:
    """[(ids, logprob, finished)] for id sequences, decoded side by side."""
    B = len(seqs)
    state = encode_sources(model, seqs)
    x = np.full(B, start, np.intp)
    out = [[] for _ in range(B)]
    logp = np.zeros(B)
    live, finished = np.ones(B, bool), np.zeros(B, bool)
    rows = np.arange(B)
    for t in range(max_length + 1):  # the last step may only write END
        logits, state = model.decoder_step(x, state)
        lp = log_softmax(logits)
        if temperature == 0:
            x = lp.argmax(axis=1)
        else:
            z = np.exp((lp - lp.max(axis=1, keepdims=True)) / temperature)
            cdf = np.cumsum(z, axis=1)
            u = rng.random(B) * cdf[:, -1]
            x = np.minimum((cdf <= u[:, None]).sum(axis=1), lp.shape[1] - 1)
        logp += np.where(live, lp[rows, x], 0.0)
        ended = live & (x == end)
        finished |= ended
        live &= ~ended
        if t == max_length:
            break
        for b in np.flatnonzero(live).tolist():
            out[b].append(int(x[b]))
        if not live.any():
            break
    return [(out[b], float(logp[b]), bool(finished[b])) for b in range(B)]


def beam(model, ids: np.ndarray, start: int, end: int, width: int, max_length: int) -> tuple:
    """(ids, logprob, finished) of the likeliest output for ONE source, by decoding.beam_search
    (the language model's beam search, through the decoder's step function)."""
    from .decoding import beam_search, log_softmax

    def step(state, x):
        logits, state = model.decoder_step(x, state)
        return log_softmax(logits), state

    state = model.encode_states(ids[:, None], np.array([len(ids)]))
    best = beam_search(step, state, start, width, max_length + 1, stop=[end])[0]
    out = best.ids[:-1] if best.stopped else best.ids[:max_length]
    return out, best.logprob, best.stopped


class Translator:
    """A checkpoint made ready to translate: its model, vocabularies and decoding settings."""

    def __init__(self, checkpoint, temperature: float = 0.0, beam: int = 1, seed: Optional[int] = None,
                 max_length: Optional[int] = None):
        from .checkpoint import as_checkpoint
        from .pairs import MAX_CHARS

        if temperature < 0:
            raise CharRNNError(f"temperature must be 0 or more, got {temperature}")
        if beam < 1:
            raise CharRNNError(f"beam must be at least 1, got {beam}")
        if beam > 1 and temperature > 0:
            raise CharRNNError("--beam searches for the likeliest output; it does not sample: drop --temp or --beam")
        ck = require_seq2seq(as_checkpoint(checkpoint))
        self.model, self.src_vocab, self.tgt_vocab = ck.model(), ck.src_vocab, ck.vocab
        self.start, self.end = self.tgt_vocab.index(START), self.tgt_vocab.index(END)
        self.limit = max_length or int(ck.meta.get("max_output", 2 * MAX_CHARS))
        self.temperature, self.beam = temperature, beam
        self.rng = np.random.default_rng(seed)

    def check(self, line: str) -> Optional[str]:
        """Why `line` cannot be translated, or None."""
        from .pairs import MAX_CHARS
        from .vocab import describe

        if not line:
            return "empty source"
        if len(line) > MAX_CHARS:
            return f"the source has {len(line)} characters, more than the cap of {MAX_CHARS}"
        missing = self.src_vocab.missing(line)
        if missing:
            return f"the source has characters the model never saw: {describe(missing)}"
        return None

    def translate(self, lines: list, first: int = 1) -> list:
        """[Translation] for `lines` (str, or an error message as an Exception), numbered from `first`."""
        todo, out = [], []
        for j, line in enumerate(lines):
            err = str(line) if isinstance(line, Exception) else self.check(line)
            out.append(Translation(first + j, "" if isinstance(line, Exception) else line, None, None, False, err))
            if err is None:
                todo.append(j)
        seqs = [self.src_vocab.encode(out[j].source).astype(np.intp) for j in todo]
        if self.beam > 1:
            results = [beam(self.model, ids, self.start, self.end, self.beam, self.limit) for ids in seqs]
        else:
            results = []
            for i in range(0, len(seqs), BATCH):
                results += greedy(self.model, seqs[i : i + BATCH], self.start, self.end, self.limit,
                                  self.temperature, self.rng)
        for j, (ids, lp, fin) in zip(todo, results):
            out[j].output, out[j].logprob, out[j].finished = self.tgt_vocab.decode(ids), lp, fin
        return out


def translate_lines(checkpoint, lines: Iterable[str], temperature: float = 0.0, beam: int = 1,
                    seed: Optional[int] = None, max_length: Optional[int] = None) -> Iterator[Translation]:
    """Translate sources, one per line; yields a Translation per line, in order.

    A line that cannot be translated (empty, over the length cap, characters the encoder
    never saw) yields output None and `error` saying why; the others go on.
    """
    tr = Translator(checkpoint, temperature, beam, seed, max_length)
    batch, first = [], 1
    for line in lines:
        batch.append(line.rstrip("\n").rstrip("\r"))
        if len(batch) == BATCH:
            yield from tr.translate(batch, first)
            first, batch = first + len(batch), []
    yield from tr.translate(batch, first)


def available_lines(source, chunk: int = 1 << 16) -> Iterator[list]:
    """Lines from a file descriptor (or a stream), a list at a time: all the complete lines read so far.

    os.read returns what has arrived, so a pipeline that feeds one line and waits gets that
    line translated at once, and a file is read in big batches. Each line is a str, or a
    CharRNNError for a line that is not valid UTF-8.
    """
    import io
    import os

    if not isinstance(source, int):
        try:
            source = source.fileno()
        except (AttributeError, ValueError, io.UnsupportedOperation):  # an in-memory stream: line by line
            for raw in getattr(source, "buffer", source):
                yield [_decode(raw.rstrip(b"\n"))]
            return
    rest = b""
    while True:
        data = os.read(source, chunk)
        if not data:
            break
        rest += data
        *complete, rest = rest.split(b"\n")
        if complete:
            yield [_decode(b) for b in complete]
    if rest:
        yield [_decode(rest)]


def _decode(raw: bytes):
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return CharRNNError(f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}")


@dataclass
class PairScore:
    loss: float  # mean -log p per target char (each target's chars and its END), nats
    bits_per_char: float
    exact_match: float  # share of pairs whose greedy output is exactly the target
    pairs: int
    target_chars: int

    def to_dict(self) -> dict:
        return {"loss": self.loss, "bits_per_char": self.bits_per_char, "exact_match": self.exact_match,
                "pairs": self.pairs, "target_chars": self.target_chars}


def evaluate_pairs(checkpoint, pairs, batch_size: int = 256, max_length: Optional[int] = None) -> PairScore:
    """Per-char target loss (teacher forcing) and greedy exact-match accuracy on `pairs` (a pairs.Pairs)."""
    from .checkpoint import as_checkpoint
    from .pairs import Encoded

    ck = require_seq2seq(as_checkpoint(checkpoint), "eval --pairs")
    return score_encoded(ck.model(), Encoded(pairs, ck.src_vocab, ck.vocab), batch_size,
                         max_length or int(ck.meta.get("max_output", 0)) or None)


def score_encoded(model, data, batch_size: int = 256, max_length: Optional[int] = None) -> PairScore:
    from .pairs import sorted_batches

    total, right = 0.0, 0
    limit = max_length or int(data.tgt_len.max()) * 2
    for index in sorted_batches(np.stack([data.src_len, data.tgt_len]), batch_size):
        batch = data.batch(index)
        total += float(model.loss_sums(batch).sum())
        outs = greedy(model, [data.src[i] for i in index], data.start, data.end, limit)
        right += sum(out == data.tgt[i].tolist() for i, (out, _, _) in zip(index, outs))
    chars = data.target_chars()
    loss = total / chars
    return PairScore(loss, loss / math.log(2), right / len(data), len(data), chars)
