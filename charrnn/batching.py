"""Lines of text as padded (T, B) batches, for scoring and encoding many lines at once.

Lines of similar length go in the same batch (sorted by length), so little work is
spent on padding. Padding goes at the end of a row: a recurrent network's output at
step t depends only on steps 1..t, so the padding never changes a real position.
"""
from __future__ import annotations

import numpy as np

from .errors import CharRNNError

MAX_ROWS = 64  # lines per batch
MAX_CELLS = 1 << 16  # rows x padded length per batch, so one long line does not pad many
TIME_CHUNK = 1024  # steps per forward pass; the state is carried between chunks


def split_lines(text: str) -> list:
    """Lines without their newlines; a final newline does not start another line."""
    lines = text.split("\n")
    if lines and lines[-1] == "" and text:
        lines.pop()
    return lines if text else []


def unknown_lines(vocab, lines: list) -> dict:
    """{line index: [unknown chars]} for lines with characters outside the vocabulary."""
    missing = set(vocab.missing("".join(lines))) if lines else set()
    if not missing:
        return {}
    return {i: sorted(set(line) & missing) for i, line in enumerate(lines) if not missing.isdisjoint(line)}


def length_batches(lengths, max_rows: int = 0, max_cells: int = 0) -> list:
    """Indices into `lengths`, grouped so that each group's lengths are close."""
    max_rows, max_cells = max_rows or MAX_ROWS, max_cells or MAX_CELLS
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches, current, longest = [], [], 0
    for i in order.tolist():
        n = max(int(lengths[i]), 1)
        if current and (len(current) == max_rows or (len(current) + 1) * max(longest, n) > max_cells):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def pad(seqs: list, fill: int = 0) -> np.ndarray:
    """Id sequences -> (T, B) intp, time-major, each column padded at its end."""
    T = max((len(s) for s in seqs), default=0)
    out = np.full((T, len(seqs)), fill, dtype=np.intp)
    for b, s in enumerate(seqs):
        out[: len(s), b] = s
    return out


def check_known(vocab, lines: list, what: str = "line") -> None:
    """Raise naming the first line that has characters the model never saw."""
    bad = unknown_lines(vocab, lines)
    if bad:
        from .vocab import describe

        i = min(bad)
        more = f" ({len(bad) - 1} more lines too)" if len(bad) > 1 else ""
        raise CharRNNError(f"{what} {i + 1} has characters the model never saw: {describe(bad[i])}{more}")
