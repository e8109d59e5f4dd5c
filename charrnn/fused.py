"""The three cells with their gate maths compiled (charrnn/kernels.py, numba): training's fast path.

Each class is its numpy cell (cells.py) with the step loops replaced: per step, the product
W_h^T h_{t-1} (BLAS, as before) and one compiled loop, where numpy's path makes ten or more
passes over memory. The input gather, its transpose for d W_x (a scatter, where numpy's path
multiplies by the one-hot matrix) and the transposed copies of W_h and the one-hot's table are
compiled loops too. Parameters, checkpoints and the other products, in their order, are the
numpy path's; results agree with it within float32 rounding (tests/test_kernels.py).

Chosen by `Model.use_kernels("numba")`; `resolve()` turns the config's `kernels` (auto, numpy,
numba) into what this machine can do. Sampling and scoring keep the numpy cells, whose import
does not pay for numba's (about 0.4 s) or for loading the compiled loops.
"""
from __future__ import annotations

import numpy as np

from . import cells
from .errors import ConfigError

KINDS = ("auto", "numpy", "numba")
ACTIVATIONS = {"tanh": 0, "relu": 1, "sigmoid": 2}  # kernels.elman_*'s codes


def installed() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def resolve(kind: str) -> str:
    """"numpy" or "numba": what `kind` (auto, numpy, numba) means on this machine."""
    if kind not in KINDS:
        raise ConfigError(f"kernels: must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "numpy" or (kind == "auto" and not installed()):
        return "numpy"
    if not installed():
        raise ConfigError("kernels: numba is not installed (pip install 'charrnn[fast]'), "
                          "or use --kernels numpy")
    try:
        load()
    except Exception as e:  # numba present but unusable here (no writable cache, an LLVM error)
        if kind == "auto":
            return "numpy"
        raise ConfigError(f"kernels: numba could not load charrnn's compiled loops ({e}); "
                          "use --kernels numpy") from e
    return "numba"


def load():
    """charrnn.kernels, imported once (numba itself, about 0.4 s, and the loops' dispatchers)."""
    global kernels
    if kernels is None:
        from . import kernels as module

        kernels = module
    return kernels


def cell_classes() -> dict:
    """kind -> the compiled cell class (their loops compile, or load from numba's cache, on first use)."""
    load()
    return {cls.kind: cls for cls in (Elman, LSTM, GRU)}


kernels = None  # charrnn.kernels, once load() imported it


def warm(cell: str, activation: str, dtype) -> None:
    """Compile `cell`'s loops for dtype (about a second each, once a machine: numba caches them),
    or load them from the cache, on tiny arrays: so that no timed update compiles (threads.Tuner
    would take a compiling update for a slow thread count)."""
    cls = cell_classes()[cell]
    dtype = np.dtype(dtype)
    for embed in (True, False):  # the first layer gathers ids; the layers above take (T, D, B)
        layer = cls(3, 2, activation, embed=embed)
        p = layer.init(np.random.default_rng(0), dtype)
        x = np.zeros((2, 1), np.intp) if embed else np.ones((2, 3, 1), dtype)
        h = layer.forward(p, x, layer.zero_state(1, dtype), feature_major=True)
        layer.backward(p, np.ones_like(h), {k: np.zeros_like(v) for k, v in p.items()}, need_dx=not embed,
                       feature_major=True)
    from .optim import Adam

    adam = Adam({"w": np.zeros(2, dtype)})
    adam.use_kernels("numba")
    adam.step({"w": np.zeros(2, dtype)}, {"w": np.ones(2, dtype)})


class _Fused:
    """The input side's gather, its transpose for d W_x (a scatter: 1.7x faster than the
    one-hot product with two BLAS threads, 3x with one) and the transposed copies of W_h and
    of the one-hot's table as compiled loops; the step loops store h_t into trace.hP and
    d loss / d pre-activation into `_grad_columns` too (cells.Cell.writes_columns)."""

    writes_columns = True

    def _gather(self, table: np.ndarray, x: np.ndarray, g: np.ndarray) -> None:
        kernels.gather_columns(table, x, g)

    def _transpose_halving(self, W: np.ndarray, out: np.ndarray, bias: np.ndarray | None = None) -> None:
        kernels.transpose_halving(W, np.empty(0, W.dtype) if bias is None else bias, out, self.sigmoid_rows)

    def _scatter_columns(self, dg: np.ndarray, ids: np.ndarray, out: np.ndarray) -> None:
        out.fill(0)
        kernels.scatter_columns(dg, ids, out)


class Elman(_Fused, cells.Elman):
    def _recur(self, p: dict, W_hT: np.ndarray, tr: cells.Trace) -> None:
        a, h, act = tr.gates, tr.h, ACTIVATIONS[self.activation]
        for t in range(len(a)):
            np.matmul(W_hT, h[t], out=h[t + 1])
            kernels.elman_forward(a[t], h[t + 1], act, tr.hP, t + 1)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: cells.Trace, da, need_dstate0: bool, dcs):
        W_hh, h, act = p[self.key_h], tr.h, ACTIVATIONS[self.activation]
        T, H, B = dhs.shape
        dh = self.ws.get("dh", (H, B), da.dtype)
        dh.fill(0)
        cols = self._grad_columns(da)
        for t in range(T - 1, -1, -1):
            kernels.elman_backward(h[t + 1], dhs[t], dh, da[t], act, cols, t)
            if t or need_dstate0:
                np.matmul(W_hh, da[t], out=dh)
        self.dstate0 = dh.T.copy() if need_dstate0 else None


class LSTM(_Fused, cells.LSTM):
    def _recur(self, p: dict, W_hT: np.ndarray, tr: cells.Trace) -> None:
        g, h, c, tc = tr.gates, tr.h, tr.c, tr.tanh_c
        tmp = self.ws.get("tmp", g.shape[1:], g.dtype)
        for t in range(len(g)):
            np.matmul(W_hT, h[t], out=tmp)
            kernels.lstm_forward(g[t], tmp, c[t], c[t + 1], tc[t], h[t + 1], tr.hP, t + 1)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: cells.Trace, da, need_dstate0: bool, dcs):
        W_h, g, c, tc = p[self.key_h], tr.gates, tr.c, tr.tanh_c
        T, H, B = dhs.shape
        dh, dc = self.ws.get("dh", (H, B), da.dtype), self.ws.get("dc", (H, B), da.dtype)
        dh.fill(0)
        dc.fill(0)
        cols = self._grad_columns(da)
        for t in range(T - 1, -1, -1):
            if dcs is not None:
                dc += dcs[t].T  # d loss / d c_t from outside the layer
            kernels.lstm_backward(g[t], c[t], tc[t], dhs[t], dh, dc, da[t], cols, t)
            if t or need_dstate0:
                np.matmul(W_h, da[t], out=dh)
        self.dstate0 = (dh.T.copy(), dc.T.copy()) if need_dstate0 else None


class GRU(_Fused, cells.GRU):
    def _recur(self, p: dict, W_hT: np.ndarray, tr: cells.Trace) -> None:
        g, h, hn = tr.gates, tr.h, tr.hn
        b_hn = p[self.keys["b_hn"]]
        tmp = self.ws.get("tmp", g.shape[1:], g.dtype)
        for t in range(len(g)):
            np.matmul(W_hT, h[t], out=tmp)
            kernels.gru_forward(g[t], tmp, b_hn, h[t], hn[t], h[t + 1], tr.hP, t + 1)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: cells.Trace, da, need_dstate0: bool, dcs):
        T, H, B = dhs.shape
        g, h, hn = tr.gates, tr.h, tr.hn
        W_h = self._W_h_nrz(p)
        dh, direct = self.ws.get("dh", (H, B), da.dtype), self.ws.get("tmp2", (H, B), da.dtype)
        dh.fill(0)
        cols = self._grad_columns(da)
        for t in range(T - 1, -1, -1):
            kernels.gru_backward(g[t], hn[t], h[t], dhs[t], dh, da[t], direct, cols, t)
            if t or need_dstate0:
                np.matmul(W_h, da[t, : 3 * H], out=dh)
                dh += direct
        self.dstate0 = dh.T.copy() if need_dstate0 else None
