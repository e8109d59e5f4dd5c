"""Weight initialisation schemes: `--init uniform|normal|orthogonal` and `--init-scale S`.

Dimensions: H hidden units; a weight matrix is (rows, cols), gate blocks H columns wide.

    uniform     every weight U(-S/sqrt(H), S/sqrt(H))  (S = 1: the cells' own initialisation,
                as PyTorch's nn.RNN; the default, and with S = 1 bitwise what it always was)
    normal      every weight N(0, S^2)  (S = 1 is the "Gaussian of standard deviation one"
                that makes W_hh's spectral radius about sqrt(H) and the gradients explode)
    orthogonal  every H-column block of every weight matrix S times a random matrix with
                orthonormal columns (or rows, if it is wider than tall): W_hh's singular
                values are all S (Saxe et al., 2014)

Biases keep the cells' values (zero, the LSTM's forget gate 1). The cells draw the default
weights; a scheme other than plain uniform replaces them afterwards, from a generator of its
own, so the default stays exactly as it was.
"""
from __future__ import annotations

import numpy as np

SCHEMES = ("uniform", "normal", "orthogonal")


def initialize(model, scheme: str = "uniform", scale: float = 1.0, seed: int = 0):
    """Re-draw the weight matrices (params named W_*) of an initialised model; returns the model."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}")
    weights = sorted(name for name in model.params if name.startswith("W"))
    if scheme == "uniform":
        if scale != 1:
            for name in weights:
                model.params[name] *= model.params[name].dtype.type(scale)
        return model
    rng = np.random.default_rng([seed, 3])  # not the cells' generator: the default is untouched
    for name in weights:
        p = model.params[name]
        if scheme == "normal":
            p[...] = rng.normal(0.0, scale, p.shape)
        else:
            p[...] = scale * orthogonal_blocks(rng, p.shape, model.H)
    return model


def orthogonal_blocks(rng: np.random.Generator, shape: tuple, block: int) -> np.ndarray:
    """A (rows, cols) matrix whose `block`-column blocks are each (semi-)orthogonal; one
    block if cols is not a multiple of `block`."""
    rows, cols = shape
    width = block if cols % block == 0 else cols
    return np.concatenate([semi_orthogonal(rng, rows, width) for _ in range(cols // width)], axis=1)


def semi_orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A random (rows, cols) matrix with orthonormal columns (rows >= cols) or rows, uniform
    over such matrices (QR of a Gaussian, signs fixed by R's diagonal)."""
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if rows >= cols else q.T


def initial_model(config, vocab_size: int):
    """The model a fresh training run with this config starts from."""
    from .model import Model

    model = Model.from_config(config, vocab_size).init(config.seed)
    return initialize(model, config.init, config.init_scale, config.seed)
