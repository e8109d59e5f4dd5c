"""Sentence vectors: a line's fixed-length encoding is the network's final hidden state.

Each line is fed character by character from a zero state (no newline before or after
it), and the vector is h_n of the top layer after its last character n, the state a
decoder would start from. An empty line gives the zero vector. Lines run side by side
in padded batches of similar length (see batching.py); each line's vector is read at its
own last step, so padding never enters it.
"""
from __future__ import annotations

import numpy as np

from .batching import TIME_CHUNK, check_known, length_batches, pad, split_lines, unknown_lines


def encode(source, lines) -> np.ndarray:
    """Lines (a list of str, or one str split at newlines) -> (n, H) vectors, one per line.

    Characters outside the vocabulary raise CharRNNError naming the first such line.
    """
    numbers, vectors = encode_lines(source, lines)
    return vectors


def encode_lines(source, lines, skip_unknown: bool = False) -> tuple:
    """(line numbers, (n, H) vectors); skip_unknown drops lines with unknown characters.

    Line numbers are 1-based and say which input line each row belongs to. `source` is a
    checkpoint (or its path; an encoder-decoder's encodes with its encoder), a (model, vocab)
    pair or a training Result.
    """
    from .checkpoint import Checkpoint, as_checkpoint, model_and_vocab

    if isinstance(source, str):
        source = as_checkpoint(source)
    if isinstance(lines, str):
        lines = split_lines(lines)
    seq2seq = isinstance(source, Checkpoint) and source.task == "seq2seq"
    model, vocab = (source.model(), source.src_vocab) if seq2seq else model_and_vocab(source, "encode")
    if skip_unknown:
        bad = unknown_lines(vocab, lines)
        numbers = [i + 1 for i in range(len(lines)) if i not in bad]
        lines = [line for i, line in enumerate(lines) if i not in bad]
    else:
        check_known(vocab, lines)
        numbers = list(range(1, len(lines) + 1))
    seqs = [vocab.encode(line).astype(np.intp) if line else np.zeros(0, np.intp) for line in lines]
    return numbers, (encoder_states if seq2seq else final_states)(model, seqs)


def encoder_states(model, seqs: list) -> np.ndarray:
    """An encoder-decoder's sentence vectors: its encoder's top-layer h after each line's last
    char, the state its decoder starts from (with the LSTM's c beside it). (n, H)."""
    out = np.zeros((len(seqs), model.H), dtype=model.dtype)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    for batch in length_batches(lengths):
        batch = [i for i in batch if lengths[i]]  # an empty line keeps the zero vector
        if batch:
            top = model.encode_states(pad([seqs[i] for i in batch]), lengths[batch])[-1]
            out[batch] = top[0] if isinstance(top, tuple) else top
    return out


def final_states(model, seqs: list) -> np.ndarray:
    """The top layer's hidden state after the last id of each sequence, from a zero state: (n, H)."""
    out = np.zeros((len(seqs), model.H), dtype=model.dtype)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    for batch in length_batches(lengths):
        ids = pad([seqs[i] for i in batch])  # (T, b)
        last = lengths[batch] - 1  # each row's final step
        state = model.zero_state(len(batch))
        for start in range(0, ids.shape[0], TIME_CHUNK):
            stop = min(start + TIME_CHUNK, ids.shape[0])
            h, state = model.run(ids[start:stop], state)  # (t, b, H)
            ends = (last >= start) & (last < stop)
            rows = np.flatnonzero(ends)
            out[np.asarray(batch)[rows]] = h[last[rows] - start, rows]
    return out
