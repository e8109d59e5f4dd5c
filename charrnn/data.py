"""Corpus -> ids -> a training split, a validation tail, and (T, B) chunks for truncated BPTT.

Dimensions: B parallel streams, T characters per stream per update.
The training ids are cut into B equal streams; update k reads characters
[k*T, (k+1)*T) of every stream and predicts the character after each.
"""
from __future__ import annotations

import codecs
import hashlib
import itertools
import os
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .compressed import decompress, read_chunks
from .errors import CharRNNError


def read_text(path: str) -> str:
    """Read a UTF-8 file ('-' is stdin) with one-line errors a user can act on."""
    return "".join(text for _, text in _decoded(path))


CHUNK_BYTES = 1 << 22  # corpus files are read in 4 MB pieces, so memory stays near 1 byte/char


@dataclass
class Corpus:
    ids: np.ndarray  # (N,) character ids in the smallest dtype
    vocab: "object"  # charrnn.vocab.Vocab
    sha256: str  # of the UTF-8 bytes, to recognise the same corpus on resume


def _decoded(path: str):
    """Yield (bytes, text) for each chunk of a file ('-' is stdin), decoded as UTF-8.

    The incremental decoder keeps a character cut by a chunk boundary for the next chunk;
    an invalid byte is a CharRNNError naming it and its offset in the file.
    """
    name = "<stdin>" if path == "-" else path
    chunks = iter([_stdin_bytes()]) if path == "-" else _file_chunks(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file before this chunk
    for chunk in itertools.chain(chunks, [b""]):
        pending = len(decoder.getstate()[0])  # bytes of a cut character, decoded with this chunk
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise CharRNNError(f"{name} is not valid UTF-8: byte 0x{exc.object[exc.start]:02x} "
                               f"at offset {offset - pending + exc.start}") from None
        offset += len(chunk)
        yield chunk, text


def _file_chunks(path):
    if os.path.isdir(path):
        raise CharRNNError(f"{path} is a directory, not a text file")
    try:
        yield from read_chunks(path, CHUNK_BYTES)  # gzip, bzip2 and xz files decompressed
    except FileNotFoundError:
        raise CharRNNError(f"file not found: {path}") from None
    except PermissionError:
        raise CharRNNError(f"permission denied: {path}") from None
    except OSError as exc:
        raise CharRNNError(f"cannot read {path}: {exc.strerror or exc}") from None


def _stdin_bytes() -> bytes:
    return decompress(sys.stdin.buffer.read(), "<stdin>")


def _codepoints(text: str) -> np.ndarray:
    if text.isascii():  # the common case: one byte per code point
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def load_corpus(paths) -> Corpus:
    """Read files ('-' is stdin) as one text, straight to ids, without a Python string of it.

    Two passes over the files (the vocabulary, then the ids) keep peak memory near one
    byte per character for a vocabulary of up to 256 characters; stdin is read once into
    memory.
    """
    from .vocab import Vocab, id_dtype

    if isinstance(paths, str):
        paths = [paths]
    if "-" in paths:  # stdin can be read once only: keep its pieces for the second pass
        stdin = list(_decoded("-"))

    def pieces():
        for p in paths:
            yield from stdin if p == "-" else _decoded(p)

    digest, n, seen = hashlib.sha256(), 0, set()
    for chunk, text in pieces():
        digest.update(chunk)
        cps = _codepoints(text)
        n += len(cps)
        present = np.flatnonzero(np.bincount(cps)) if cps.dtype == np.uint8 else np.unique(cps)
        seen.update(present.tolist())
    if n == 0:
        raise CharRNNError(f"the corpus is empty: {', '.join(paths)}")
    vocab = Vocab(sorted(seen))
    lut = np.zeros(int(max(seen)) + 1, dtype=id_dtype(len(vocab)))
    lut[vocab.codepoints] = np.arange(len(vocab))
    ids = np.empty(n, dtype=lut.dtype)
    at = 0
    for _, text in pieces():
        cps = _codepoints(text)
        for i in range(0, len(cps), 1 << 20):  # take() makes an intp copy of its indices
            part = cps[i : i + (1 << 20)]
            np.take(lut, part, out=ids[at : at + len(part)])
            at += len(part)
    return Corpus(ids, vocab, digest.hexdigest())


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
    """B streams over the training ids, served in (T, B) windows, time-major.

    Stream b holds inputs ids[b*n : (b+1)*n] and targets shifted by one, n = (N-1)//B.
    Window k covers positions [k*S, k*S + T) of every stream, S the stride. With S = T
    (the default) the windows are consecutive chunks and every character but the last is
    an input exactly once per epoch; with S < T (TBPTT(k1=S, k2=T)) neighbouring windows
    overlap by T - S characters and the newest S of each window are the ones trained on.
    The windows are views of the corpus; only the (T, B) chunk served is copied.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, stride: Optional[int] = None):
        B, T = batch_size, seq_len
        S = T if stride is None else stride
        if not 1 <= S <= T:
            raise CharRNNError(f"stride {S} must be between 1 and seq_len {T}")
        n = (len(ids) - 1) // B
        if n < T:
            raise CharRNNError(f"corpus too short for batch_size {B} x seq_len {T}")
        self.B, self.T, self.S, self.n = B, T, S, n
        self.inputs = ids[: B * n].reshape(B, n)  # views: the corpus is never copied
        self.targets = ids[1 : B * n + 1].reshape(B, n)
        self.chunks_per_epoch = (n - T) // S + 1

    def chunk(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Window k of the epoch: (inputs, targets), each (T, B) contiguous intp arrays."""
        sl = slice(k * self.S, k * self.S + self.T)
        x = np.ascontiguousarray(self.inputs[:, sl].T, dtype=np.intp)
        y = np.ascontiguousarray(self.targets[:, sl].T, dtype=np.intp)
        return x, y
