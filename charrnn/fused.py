"""The three cells with their gate maths compiled (charrnn/kernels.py, numba): training's fast path.

Each class is its numpy cell (cells.py) with the step loops replaced: a chunk's T steps are one
compiled call, which multiplies each step through numpy's own BLAS (cblas.py) and computes the
gates in one pass, where numpy's path calls BLAS from Python and makes ten or more passes over
memory a step. The call splits the hidden units between numba's threads (use_threads), and the
chunk's other products (matmul), the input gather, its transpose for d W_x (a scatter, where
numpy's path multiplies by the one-hot matrix) and the transposed copies of W_h and the
one-hot's table are split or compiled too. Products are cut into tiles by a fixed rule
(blocks), so the numbers do not depend on the threads. Parameters and checkpoints are the
numpy path's; results agree with it within float32 rounding (tests/test_kernels.py).

Chosen by `Model.use_kernels("numba")`; `resolve()` turns the config's `kernels` (auto, numpy,
numba) into what this machine can do. Sampling and scoring keep the numpy cells, whose import
does not pay for numba's (about 0.4 s) or for loading the compiled loops.
"""
from __future__ import annotations

import os

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
    """charrnn.kernels, imported once (numba itself, about 0.4 s, and the loops' dispatchers),
    with numpy's BLAS found for them (cblas.py); RuntimeError if there is none to call."""
    global kernels, _gemm
    if kernels is None:
        import numba

        if "NUMBA_THREADING_LAYER" not in os.environ:
            # OpenMP's threads start a parallel region in about 2 us, numba's own queue's in
            # 90 (measured): the loops meet once a step, so they want OpenMP's
            numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
        from . import cblas
        from . import kernels as module

        _gemm = cblas.find()
        kernels = module
    return kernels


def cell_classes() -> dict:
    """kind -> the compiled cell class (their loops compile, or load from numba's cache, on first use)."""
    load()
    return {cls.kind: cls for cls in (Elman, LSTM, GRU)}


kernels = None  # charrnn.kernels, once load() imported it
_gemm = None  # numpy's BLAS's gemm (cblas.Gemm), found by load()
_split = False  # whether the loops split their work between numba's threads (an OpenMP or TBB pool)
_parts = 1  # the parts they split it in: use_threads()


def use_threads(n: int | None) -> None:
    """Compute training's updates with n threads (threads.Tuner's choice; None: BLAS's own).

    With a threading layer that starts its threads fast (OpenMP, TBB), every product and loop
    of the update is split between n of numba's threads and BLAS runs one thread: BLAS's idle
    threads spin, and beside numba's working ones they made the loops 2x slower (measured).
    With numba's own queue (90 us a start), BLAS's threads split the products as on numpy's path."""
    global _parts
    from . import threads

    if n is None:
        _parts = 1
    elif _split:
        import numba

        threads.set_blas(1)
        _parts = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
        numba.set_num_threads(_parts)
    else:
        threads.set_blas(n)
        _parts = 1


def parts() -> int:
    return _parts


MAX_MACS = 1_000_000  # OpenBLAS's bound for multiplying without packing (cblas.SMALL_KERNEL_CORES)


def _most_parts() -> int:
    """The most parts the loops may split in during this run: the thread budget (threads.Tuner
    chooses between one part and these), or one where BLAS's threads split the products."""
    if not _split:
        return 1
    import numba

    from . import threads

    return max(1, min(threads.threads(), numba.config.NUMBA_NUM_THREADS))


def blocks(dtype, K: int, N: int, rows: int, plain: bool = True) -> tuple:
    """(tile, kb) for products (rows, K) @ (K, N) (plain: neither operand transposed), split by
    rows: computed in tiles of `tile` rows, each kb deep (kernels.gemm, kernels._rows), and the
    threads take whole tiles, so that a product's numbers do not depend on how many of the run's
    threads share it: threads.Tuner's picks never change a run's results, nor a resumed run's
    (with the same thread budget: tiles are cut for it).

    Where numpy's OpenBLAS has its small-matrix kernels (cblas.Gemm.small), plain float32
    products at least 256 deep (the steps' and their like; the weight gradients' run slower
    so) are tiled in at most MAX_MACS multiply-adds, 256 deep, a power of two of rows (two
    threads share a power-of-two H evenly), which OpenBLAS multiplies without first copying
    the operands into its packed layout: a step's product, a few million multiply-adds, runs
    1.15-1.35x faster so than whole (docs/performance.md); not where BLAS's own threads split
    the products (a small tile runs on one). Otherwise a tile is one thread's share when the
    most threads share the product (_most_parts), whole depth: fewer threads do several, each
    tile copying the other operand into BLAS's layout once. A rule of the shape, the machine
    and the budget, never of timing, for the same reason."""
    kb = min(K, 256)
    fit = MAX_MACS // (N * kb)  # rows a small tile may have
    if plain and _split and _gemm.small and np.dtype(dtype) == np.float32 and K >= 256 and fit >= 16:
        return 1 << (fit.bit_length() - 1), kb
    return max(1, -(-rows // _most_parts())), K


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """np.matmul(a, b, out=out) in tiles shared between the loops' threads (use_threads, blocks()):
    a and b 2-D or stacks of matrices (3-D), out C-ordered rows; anything else goes to
    np.matmul itself."""
    spec = _operands(a, b, out)
    if spec is None:
        np.matmul(a, b, out=out)
        return
    ta, tb, M, N, K = spec[:5]
    plain = ta == tb == kernels.NO_TRANS
    tiles = blocks(out.dtype, K, N, M, plain) if M >= N else blocks(out.dtype, K, M, N, plain)  # C's rows, or columns
    kernels.gemm(*_gemm.fn(out.dtype), _parts, *spec, out.dtype.type(1), out.itemsize, *tiles)


def _operands(a, b, out):
    """kernels.gemm's arguments from ta to batch for a @ b -> out, or None."""
    dt = out.dtype
    if dt not in (np.float32, np.float64) or a.dtype != dt or b.dtype != dt or out.ndim not in (2, 3):
        return None
    if a.ndim > out.ndim or b.ndim > out.ndim or a.ndim < 2 or b.ndim < 2:
        return None
    batch = out.shape[0] if out.ndim == 3 else 1
    M, K, N = out.shape[-2], a.shape[-1], out.shape[-1]
    if a.shape[-2] != M or b.shape[-2:] != (K, N) or any(x.ndim == 3 and x.shape[0] != batch for x in (a, b)):
        return None
    specs = [_matrix(x, dt.itemsize) for x in (a, b, out)]
    if None in specs or specs[2][0] != kernels.NO_TRANS:
        return None
    (ta, lda, sa), (tb, ldb, sb), (_, ldc, sc) = specs
    return (ta, tb, M, N, K, a.ctypes.data, lda, sa, b.ctypes.data, ldb, sb, out.ctypes.data, ldc, sc, batch)


def _matrix(x: np.ndarray, size: int):
    """(transposed or not, leading dimension, stride between a stack's matrices) of x's last two
    axes as BLAS reads a row-major matrix, in elements; None if BLAS cannot read it in place."""
    if any(s % size or s < 0 for s in x.strides):
        return None
    (r, c), (s0, s1) = x.shape[-2:], (s // size for s in x.strides[-2:])
    stack = x.strides[0] // size if x.ndim == 3 else 0
    if s1 == 1 and (r == 1 or s0 >= c):
        return kernels.NO_TRANS, (s0 if r > 1 else max(c, 1)), stack
    if s0 == 1 and (c == 1 or s1 >= r):
        return kernels.TRANS, (s1 if c > 1 else max(r, 1)), stack
    return None


def warm(cell: str, activation: str, dtype) -> None:
    """Compile `cell`'s loops for dtype (about a second each, once a machine: numba caches them),
    or load them from the cache, on tiny arrays: so that no timed update compiles (threads.Tuner
    would take a compiling update for a slow thread count). Also starts numba's thread pool,
    which says whether the loops can split their work (use_threads)."""
    global _parts, _split
    import numba

    cls = cell_classes()[cell]
    dtype, saved = np.dtype(dtype), _parts
    # the first layer gathers ids, the layers above take (T, D, B); in one part and in two
    for _parts, embed in ((1, True), (1, False), (2, True), (2, False)):
        layer = cls(3, 2, activation, embed=embed)
        p = layer.init(np.random.default_rng(0), dtype)
        x = np.zeros((2, 1), np.intp) if embed else np.ones((2, 3, 1), dtype)
        h = layer.forward(p, x, layer.zero_state(1, dtype), feature_major=True)
        layer.backward(p, np.ones_like(h), {k: np.zeros_like(v) for k, v in p.items()}, need_dx=not embed,
                       feature_major=True)
    _parts = saved
    _split = numba.threading_layer() in ("omp", "tbb")
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
        kernels.gather_columns(table, x, g, _parts)

    def _transpose_halving(self, W: np.ndarray, out: np.ndarray, bias: np.ndarray | None = None) -> None:
        kernels.transpose_halving(W, np.empty(0, W.dtype) if bias is None else bias, out, self.sigmoid_rows)

    @staticmethod
    def _step_blas(h: np.ndarray, K: int) -> tuple:
        """kernels._rows's `blas` for a loop over h's steps (.., H, B) whose step product is
        (rows, K) @ (K, B), its parts splitting the H units: gemm's address and integer width,
        and its tiles (blocks())."""
        return _gemm.fn(h.dtype) + blocks(h.dtype, K, h.shape[-1], h.shape[-2])

    def _scatter_columns(self, dg: np.ndarray, ids: np.ndarray, out: np.ndarray) -> None:
        out.fill(0)
        kernels.scatter_columns(dg, ids, out, _parts)

    @staticmethod
    def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        matmul(a, b, out)


class Elman(_Fused, cells.Elman):
    def _recur(self, p: dict, W_hT: np.ndarray, tr: cells.Trace) -> None:
        kernels.elman_forward_loop(self._step_blas(tr.h, self.H), _parts, W_hT, tr.gates, tr.h,
                                   ACTIVATIONS[self.activation], tr.hP)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: cells.Trace, da, need_dstate0: bool, dcs):
        W_hh = p[self.key_h]
        T, H, B = dhs.shape
        dh = self.ws.get("dh", (H, B), da.dtype)
        dh.fill(0)
        kernels.elman_backward_loop(self._step_blas(dh, H), _parts, W_hh, tr.h, dhs, dh, da, ACTIVATIONS[self.activation],
                                    self._grad_columns(da), need_dstate0)
        self.dstate0 = dh.T.copy() if need_dstate0 else None


class LSTM(_Fused, cells.LSTM):
    def _recur(self, p: dict, W_hT: np.ndarray, tr: cells.Trace) -> None:
        tmp = self.ws.get("tmp", tr.gates.shape[1:], tr.gates.dtype)
        kernels.lstm_forward_loop(self._step_blas(tr.h, self.H), _parts, W_hT, tr.gates, tmp, tr.c, tr.tanh_c,
                                  tr.h, tr.hP)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: cells.Trace, da, need_dstate0: bool, dcs):
        if dcs is not None:  # d loss / d c_t from outside (the encoder-decoder's): numpy's loop,
            # which does not store da's columns for the chunk's products as the compiled loops do
            super()._recur_back(p, dhs, tr, da, need_dstate0, dcs)
            self._store_grad_columns(da)
            return
        T, H, B = dhs.shape
        dh, dc = self.ws.get("dh", (H, B), da.dtype), self.ws.get("dc", (H, B), da.dtype)
        dh.fill(0)
        dc.fill(0)
        kernels.lstm_backward_loop(self._step_blas(dh, 4 * H), _parts, p[self.key_h], tr.gates, tr.c, tr.tanh_c,
                                   dhs, dh, dc, da,
                                   self._grad_columns(da), need_dstate0)
        self.dstate0 = (dh.T.copy(), dc.T.copy()) if need_dstate0 else None


class GRU(_Fused, cells.GRU):
    def _recur(self, p: dict, W_hT: np.ndarray, tr: cells.Trace) -> None:
        tmp = self.ws.get("tmp", tr.gates.shape[1:], tr.gates.dtype)
        kernels.gru_forward_loop(self._step_blas(tr.h, self.H), _parts, W_hT, tr.gates, tmp, p[self.keys["b_hn"]],
                                 tr.h, tr.hn, tr.hP)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: cells.Trace, da, need_dstate0: bool, dcs):
        T, H, B = dhs.shape
        dh, direct = self.ws.get("dh", (H, B), da.dtype), self.ws.get("tmp2", (H, B), da.dtype)
        dh.fill(0)
        kernels.gru_backward_loop(self._step_blas(dh, 3 * H), _parts, self._W_h_nrz(p), tr.gates, tr.hn, tr.h,
                                  dhs, dh, da, direct,
                                  self._grad_columns(da), need_dstate0)
        self.dstate0 = dh.T.copy() if need_dstate0 else None
