"""Pairs of lines (source TAB target) for the encoder-decoder: reading, vocabularies, batches.

A pairs file is UTF-8 text, one pair a line: the source, one TAB, the target. Empty lines
are skipped. A line without a TAB (or with more than one), an empty source or target, a
side longer than MAX_CHARS characters, or a target holding one of the decoder's two marker
characters (U+0002, U+0003) is an error that names the line.

Batches take pairs of similar length (see `Batcher`), so padding costs little; each batch
is a `seq2seq.Batch` of time-major padded ids.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import CharRNNError
from .seq2seq import END, START, Batch
from .vocab import Vocab, describe

MAX_CHARS = 1000  # characters per side of a pair: the cap on a line's length
POOL_BATCHES = 50  # batches sorted by length together: bigger pools pad less, shuffle less
GROUP_BATCHES = 4  # within a pool, runs of this many batches of close source lengths are re-sorted by target length


@dataclass
class Pairs:
    sources: list
    targets: list
    line_numbers: list  # 1-based line of each pair in its file

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, index) -> "Pairs":
        return Pairs([self.sources[i] for i in index], [self.targets[i] for i in index],
                     [self.line_numbers[i] for i in index])


def parse_line(line: str, number: int) -> tuple:
    """(source, target) of one line; CharRNNError naming the line otherwise."""
    tabs = line.count("\t")
    if tabs != 1:
        what = "no TAB" if tabs == 0 else f"{tabs} TABs"
        raise CharRNNError(f"line {number} has {what}; expected source TAB target")
    source, target = line.split("\t")
    if not source:
        raise CharRNNError(f"line {number} has an empty source")
    if not target:
        raise CharRNNError(f"line {number} has an empty target")
    for side, text in (("source", source), ("target", target)):
        if len(text) > MAX_CHARS:
            raise CharRNNError(f"line {number}: the {side} has {len(text)} characters, more than the cap of {MAX_CHARS}")
    if START in target or END in target:
        raise CharRNNError(f"line {number}: the target holds a marker character (U+0002 or U+0003), which is reserved")
    return source, target


def parse_pairs(text: str) -> Pairs:
    lines = text.split("\n")
    sources, targets, numbers = [], [], []
    for n, line in enumerate(lines, 1):
        line = line[:-1] if line.endswith("\r") else line
        if not line:
            continue
        s, t = parse_line(line, n)
        sources.append(s)
        targets.append(t)
        numbers.append(n)
    if not sources:
        raise CharRNNError("no pairs: the file holds no source TAB target lines")
    return Pairs(sources, targets, numbers)


def read_pairs(path: str) -> Pairs:
    """Read a pairs file ('-' is stdin), with data.read_text's one-line errors."""
    from .data import read_text

    text = read_text(path)
    try:
        return parse_pairs(text)
    except CharRNNError as exc:
        name = "<stdin>" if path == "-" else path
        raise CharRNNError(f"{name}: {exc}") from None


def vocabularies(pairs: Pairs) -> tuple:
    """(source vocabulary, target vocabulary with the START and END markers)."""
    return Vocab.from_text("".join(pairs.sources)), Vocab.from_text("".join(pairs.targets) + START + END)


def check_sources(vocab: Vocab, sources: list, numbers: list) -> None:
    """Raise naming the first source with characters the encoder never saw, and its line."""
    missing = set(vocab.missing("".join(sources)))
    if not missing:
        return
    for s, n in zip(sources, numbers):
        bad = sorted(set(s) & missing)
        if bad:
            raise CharRNNError(f"line {n}: the source has characters the model never saw: {describe(bad)}")


def split_validation(pairs: Pairs, fraction: float, seed: int) -> tuple:
    """(train, validation or None): a random share of the pairs, fixed by the seed.

    Random, not the file's tail, because pairs files are often sorted.
    """
    n_val = int(round(len(pairs) * fraction))
    if fraction == 0 or n_val < 1 or len(pairs) - n_val < 1:
        return pairs, None
    order = np.random.default_rng([seed, 2]).permutation(len(pairs))
    return pairs.subset(np.sort(order[n_val:])), pairs.subset(np.sort(order[:n_val]))


class Encoded:
    """Pairs as id arrays, with the lengths the batcher sorts by."""

    def __init__(self, pairs: Pairs, src_vocab: Vocab, tgt_vocab: Vocab):
        check_sources(src_vocab, pairs.sources, pairs.line_numbers)
        missing = tgt_vocab.missing("".join(pairs.targets))
        if missing:
            raise CharRNNError(f"the targets have characters the model never saw: {describe(missing)}")
        self.src = [src_vocab.encode(s).astype(np.intp) for s in pairs.sources]
        self.tgt = [tgt_vocab.encode(t).astype(np.intp) for t in pairs.targets]
        self.src_len = np.array([len(s) for s in self.src], dtype=np.int64)
        self.tgt_len = np.array([len(t) + 1 for t in self.tgt], dtype=np.int64)  # + END
        self.start, self.end = tgt_vocab.index(START), tgt_vocab.index(END)

    def __len__(self) -> int:
        return len(self.src)

    def target_chars(self) -> int:
        return int(self.tgt_len.sum())

    def batch(self, index) -> Batch:
        index = list(index)
        B = len(index)
        src_len, tgt_len = self.src_len[index], self.tgt_len[index]
        src = np.zeros((int(src_len.max()), B), np.intp)
        Tt = int(tgt_len.max())
        dec_in = np.full((Tt, B), self.end, np.intp)  # padding reads END: any id would do, it is masked
        dec_out = np.full((Tt, B), self.end, np.intp)
        dec_in[0] = self.start
        for b, i in enumerate(index):
            src[: src_len[b], b] = self.src[i]
            t = self.tgt[i]
            dec_in[1 : len(t) + 1, b] = t
            dec_out[: len(t), b] = t  # then END at position len(t)
        return Batch(src, src_len, dec_in, dec_out, tgt_len)


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list:
    """Index lists of at most batch_size, in order of length (for validation and evaluation)."""
    order = np.lexsort((lengths[1], lengths[0])) if lengths.ndim == 2 else np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


class Batcher:
    """One epoch's batches: shuffle, sort pools of POOL_BATCHES batches by source length, re-sort
    each run of GROUP_BATCHES batches by target length (so both sides are close), cut, shuffle the batches.

    The order depends only on (seed, epoch), so a resumed run sees the same batches.
    """

    def __init__(self, data: Encoded, batch_size: int, seed: int):
        self.data, self.B, self.seed = data, min(batch_size, len(data)), seed
        self.batches_per_epoch = -(-len(data) // self.B)

    def epoch(self, k: int) -> list:
        rng = np.random.default_rng([self.seed, 3, k])
        order = rng.permutation(len(self.data))
        pool = self.B * POOL_BATCHES
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.lexsort((self.data.tgt_len[chunk], self.data.src_len[chunk]))]
            group = self.B * GROUP_BATCHES
            for g in range(0, len(chunk), group):
                run = chunk[g : g + group]
                run = run[np.lexsort((self.data.src_len[run], self.data.tgt_len[run]))]
                batches += [run[i : i + self.B].tolist() for i in range(0, len(run), self.B)]
        return [batches[i] for i in rng.permutation(len(batches))]


def padding_share(data: Encoded, batches: list) -> dict:
    """The share of computed steps that are padding, in the encoder and in the decoder."""
    real_s = pad_s = real_t = pad_t = 0
    for b in batches:
        sl, tl = data.src_len[b], data.tgt_len[b]
        real_s += int(sl.sum())
        pad_s += int(sl.max()) * len(b)
        real_t += int(tl.sum())
        pad_t += int(tl.max()) * len(b)
    return {"encoder": 1 - real_s / pad_s, "decoder": 1 - real_t / pad_t,
            "all": 1 - (real_s + real_t) / (pad_s + pad_t)}
