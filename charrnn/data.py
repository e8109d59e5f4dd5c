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
from .config import BYTES, check_encoding
from .errors import CharRNNError


def read_text(path: str, encoding: str = "utf-8") -> str:
    """Read a text file ('-' is stdin) with one-line errors a user can act on.

    With encoding "bytes" every byte is one character, U+0000-U+00FF (bytes read as Latin-1).
    """
    return "".join(text for _, text in _decoded(path, encoding))


def kind(encoding: str) -> str:
    """What a model with this encoding reads: "bytes" or "characters (ENCODING)"."""
    return "bytes" if encoding == BYTES else f"characters ({encoding})"


def reading_encoding(model_encoding: str, requested: Optional[str] = None, what: str = "this model") -> str:
    """How to read a file for a model trained with `model_encoding`: as it was, unless `requested`
    says otherwise; a byte-level model and a character model never read each other's input."""
    if requested is None:
        return model_encoding
    check_encoding(requested)
    if (requested == BYTES) != (model_encoding == BYTES):
        flag = "--bytes" if requested == BYTES else f"--encoding {requested}"
        raise CharRNNError(f"{what} reads {kind(model_encoding)}, not {kind(requested)}; drop {flag}")
    return requested


def model_text(value: str, encoding: str) -> str:
    """Text a user typed (a prime, a stop string) as the model's characters: for a byte-level
    model, its UTF-8 bytes, one character each; otherwise the text itself."""
    return value.encode("utf-8", "surrogateescape").decode("latin-1") if encoding == BYTES else value


def output_bytes(text: str, encoding: str) -> Optional[bytes]:
    """For a byte-level model, the raw bytes its text stands for; None for a character model."""
    return text.encode("latin-1") if encoding == BYTES else None


CHUNK_BYTES = 1 << 22  # corpus files are read in 4 MB pieces, so memory stays near 1 byte/char


@dataclass
class Corpus:
    ids: np.ndarray  # (N,) character ids in the smallest dtype
    vocab: "object"  # charrnn.vocab.Vocab
    sha256: str  # of the UTF-8 bytes, to recognise the same corpus on resume


def _decoded(path: str, encoding: str = "utf-8"):
    """Yield (bytes, text) for each chunk of a file ('-' is stdin), decoded with `encoding`.

    The incremental decoder keeps a character cut by a chunk boundary for the next chunk
    (and a UTF-16 byte-order mark's verdict for the whole file); an invalid byte is a
    CharRNNError naming it and its offset in the file.
    """
    name = "<stdin>" if path == "-" else path
    check_encoding(encoding)
    label = "UTF-8" if codecs.lookup(encoding if encoding != BYTES else "latin-1").name == "utf-8" else encoding
    chunks = iter([_stdin_bytes()]) if path == "-" else _file_chunks(path)
    decoder = codecs.getincrementaldecoder("latin-1" if encoding == BYTES else encoding)()
    offset = 0  # bytes of the file before this chunk
    for chunk in itertools.chain(chunks, [b""]):
        pending = len(decoder.getstate()[0])  # bytes of a cut character, decoded with this chunk
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            hint = "; if it is in another encoding, pass --encoding NAME (or --bytes)" if label == "UTF-8" else ""
            raise CharRNNError(f"{name} is not valid {label}: byte 0x{exc.object[exc.start]:02x} "
                               f"at offset {offset - pending + exc.start}{hint}") from None
        except UnicodeError as exc:  # e.g. "UTF-16 stream does not start with BOM"
            raise CharRNNError(f"{name} is not valid {label}: {exc}") from None
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


def load_corpus(paths, encoding: str = "utf-8") -> Corpus:
    """Read files ('-' is stdin) as one text, straight to ids, without a Python string of it.

    Two passes over the files (the vocabulary, then the ids) keep peak memory near one
    byte per character for a vocabulary of up to 256 characters; stdin is read once into
    memory. `encoding` is any Python text codec, or "bytes" for a byte-level vocabulary.
    """
    from .vocab import Vocab, id_dtype

    if isinstance(paths, str):
        paths = [paths]
    if "-" in paths:  # stdin can be read once only: keep its pieces for the second pass
        stdin = list(_decoded("-", encoding))

    def pieces():
        for p in paths:
            yield from stdin if p == "-" else _decoded(p, encoding)

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
    val: Optional[object]  # (N_val,) ids, the tail, or a list of them (--val files); None: no validation
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


def load_val(paths, vocab, encoding: str = "utf-8") -> list:
    """The ids of each validation file (--val) in the training vocabulary, [(N_i,)].

    A character the training text lacks is an error naming it: the model could only be
    scored on it as a character it never saw.
    """
    from .vocab import describe

    out = []
    for path in paths:
        if path == "-":
            raise CharRNNError("--val takes files; '-' (stdin) is for the corpus")
        text = read_text(path, encoding)
        if len(text) < 2:
            raise CharRNNError(f"the validation file {path} is empty" if not text
                               else f"the validation file {path} has 1 character; it needs at least 2")
        missing = vocab.missing(text)
        if missing:
            raise CharRNNError(f"the validation file {path} has characters the training text lacks: {describe(missing)}")
        out.append(vocab.encode(text))
    return out


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
