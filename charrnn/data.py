"""Corpus -> ids -> a training split, a validation tail, and (T, B) chunks for truncated BPTT.

Dimensions: B parallel streams, T characters per stream per update.
The training ids are cut into B equal streams; update k reads characters
[k*T, (k+1)*T) of every stream and predicts the character after each.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import CharRNNError


def read_text(path: str) -> str:
    """Read a UTF-8 file ('-' is stdin) with one-line errors a user can act on."""
    try:
        if path == "-":
            raw = sys.stdin.buffer.read()
            path = "<stdin>"
        else:
            if os.path.isdir(path):
                raise CharRNNError(f"{path} is a directory, not a text file")
            with open(path, "rb") as fh:
                raw = fh.read()
    except FileNotFoundError:
        raise CharRNNError(f"file not found: {path}") from None
    except PermissionError:
        raise CharRNNError(f"permission denied: {path}") from None
    except OSError as exc:
        raise CharRNNError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CharRNNError(
            f"{path} is not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        ) from None


def read_corpus(paths) -> str:
    """Several files are concatenated in order, as if they were one."""
    if isinstance(paths, str):
        paths = [paths]
    text = "".join(read_text(p) for p in paths)
    if not text:
        raise CharRNNError(f"the corpus is empty: {', '.join(paths)}")
    return text


@dataclass
class Split:
    train: np.ndarray  # (N_train,) ids
    val: Optional[np.ndarray]  # (N_val,) ids, the tail; None when the corpus is too small
    note: str = ""  # why there is no validation split, for the user


def split(ids: np.ndarray, val_fraction: float, batch_size: int, seq_len: int) -> Split:
    """Hold out the last `val_fraction` of the ids, unless that leaves too little to train on."""
    need = min_train_length(batch_size, seq_len)
    if len(ids) < need:
        raise CharRNNError(
            f"corpus too short: {len(ids)} characters, but batch_size {batch_size} x seq_len "
            f"{seq_len} needs at least {need}; use a smaller --batch-size or --seq-len"
        )
    n_val = int(len(ids) * val_fraction)
    if val_fraction == 0:
        return Split(ids, None, "no validation split (val_fraction is 0)")
    if n_val < 2 or len(ids) - n_val < need:
        return Split(ids, None, f"corpus of {len(ids)} characters is too small for a validation split; training on all of it")
    return Split(ids[:-n_val], ids[-n_val:])


def min_train_length(batch_size: int, seq_len: int) -> int:
    return batch_size * seq_len + 1


class Streams:
    """B streams over the training ids, served in (T, B) chunks, time-major.

    Stream b holds inputs ids[b*n : (b+1)*n] and targets shifted by one, n = (N-1)//B,
    so every character but the last is an input exactly once per epoch.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int):
        B, T = batch_size, seq_len
        n = (len(ids) - 1) // B
        if n < T:
            raise CharRNNError(f"corpus too short for batch_size {B} x seq_len {T}")
        self.B, self.T, self.n = B, T, n
        self.inputs = ids[: B * n].reshape(B, n)  # views: the corpus is never copied
        self.targets = ids[1 : B * n + 1].reshape(B, n)
        self.chunks_per_epoch = n // T

    def chunk(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk k of the epoch: (inputs, targets), each (T, B) contiguous intp arrays."""
        sl = slice(k * self.T, (k + 1) * self.T)
        x = np.ascontiguousarray(self.inputs[:, sl].T, dtype=np.intp)
        y = np.ascontiguousarray(self.targets[:, sl].T, dtype=np.intp)
        return x, y
