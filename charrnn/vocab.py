"""Characters <-> ids. The vocabulary is the sorted set of Unicode code points of the text."""
from __future__ import annotations

import numpy as np

from .errors import CharRNNError


def _codepoints(text: str) -> np.ndarray:
    # One vectorised pass instead of a Python loop over characters.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def id_dtype(size: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids 0..size-1 (the corpus is stored in it)."""
    return np.dtype(np.uint8 if size <= 256 else np.uint16 if size <= 65536 else np.uint32)


class Vocab:
    """An ordered set of characters; id i is the i-th smallest code point."""

    def __init__(self, codepoints):
        cps = np.asarray(codepoints, dtype=np.int64)
        if cps.ndim != 1 or len(cps) == 0:
            raise CharRNNError("a vocabulary needs at least one character")
        if np.any(np.diff(cps) <= 0) or cps[0] < 0 or cps[-1] > 0x10FFFF:
            raise CharRNNError("a vocabulary must be strictly increasing Unicode code points")
        self.codepoints = cps.astype(np.int32)
        self.chars = "".join(map(chr, self.codepoints.tolist()))
        self._index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        if not text:
            raise CharRNNError("cannot build a vocabulary from empty text")
        return cls(np.unique(_codepoints(text)))

    def __len__(self) -> int:
        return len(self.codepoints)

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and np.array_equal(self.codepoints, other.codepoints)

    def __repr__(self) -> str:
        return f"Vocab({self.chars!r})"

    def index(self, char: str) -> int:
        return self._index[char]

    def missing(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, sorted."""
        cps = np.unique(_codepoints(text))
        return [chr(c) for c in cps[~np.isin(cps, self.codepoints)].tolist()]

    def require(self, text: str, what: str = "the text") -> None:
        """Raise CharRNNError naming the characters of `text` the vocabulary lacks, if any."""
        missing = self.missing(text)
        if missing:
            raise CharRNNError(f"{what} has characters the model never saw: {describe(missing)}")

    def encode(self, text: str, what: str = "the text") -> np.ndarray:
        """Text -> ids, in the smallest dtype; characters it lacks are require()'s error."""
        cps = _codepoints(text)
        ids = np.searchsorted(self.codepoints, cps)
        if np.any(self.codepoints[np.minimum(ids, len(self) - 1)] != cps):
            self.require(text, what)
        return ids.astype(id_dtype(len(self)))

    def id_map(self, new: "Vocab") -> np.ndarray:
        """The table from this vocabulary's ids to those of `new`, which holds all its characters."""
        return np.searchsorted(new.codepoints, self.codepoints).astype(id_dtype(len(new)))

    def recode(self, ids: np.ndarray, new: "Vocab") -> np.ndarray:
        """ids of this vocabulary as ids of `new`, which holds all its characters."""
        return self.id_map(new)[ids]

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in np.asarray(ids).ravel().tolist())


def describe(chars: list[str], limit: int = 10) -> str:
    """Characters as a readable list: repr() shows control characters and spaces unambiguously."""
    shown = ", ".join(repr(c) for c in chars[:limit])
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return shown + more
