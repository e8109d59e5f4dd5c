"""One-hot encoding, the input representation of the model equations.

x_t = e_{id_t}, the unit row vector of length V. The model never builds these vectors:
`x_t W_xh` is row id_t of `W_xh`, so it gathers `W_xh[ids]` instead (V times less work).
This module is the definition that the gather is tested against, and a tool for students.
"""
from __future__ import annotations

import numpy as np


def one_hot(ids, size: int, dtype=np.float32) -> np.ndarray:
    """ids of any shape (...) -> array (..., size) with a single 1 per row."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= size):
        raise ValueError(f"ids must be in [0, {size}), got range [{ids.min()}, {ids.max()}]")
    out = np.zeros(ids.shape + (size,), dtype=dtype)
    np.put_along_axis(out, ids[..., None].astype(np.intp), 1, axis=-1)
    return out


def from_one_hot(x) -> np.ndarray:
    """The inverse: (..., size) one-hot rows -> ids (...)."""
    return np.asarray(x).argmax(axis=-1)
