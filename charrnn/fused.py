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

import os
import time

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


_blocks: dict = {}  # a part's product shape -> (mb, kb): its blocks (kernels._blocked)
MAX_MACS = 1_000_000  # OpenBLAS's bound for multiplying without packing (kernels._blocked)


def _part_counts() -> set:
    """The parts the loops may split in during this run: one, those in force, the thread budget
    (threads.Tuner's choices). Blocks are measured for all of them when a shape first comes, in
    the run's first update, which the Tuner does not time: a measuring update would make its
    thread count look slow."""
    import numba

    from . import threads

    return {1, _parts} | ({max(1, min(threads.threads(), numba.config.NUMBA_NUM_THREADS))} if _split else set())


def step_blas(dtype, gates: int, H: int, K: int, B: int) -> tuple:
    """kernels._product's `blas` for a loop whose step product is (gates*H, K) @ (K, B), each
    part multiplying H/parts rows of each gate's block (kernels._gate_products; one part: all
    rows at once): gemm's address and integer width, and the blocks (mb, kb) that measured
    faster (_faster)."""
    fn, wide = _gemm.fn(dtype)
    dtype = np.dtype(dtype)
    rows = {n: gates * H if n == 1 else -(-H // n) for n in _part_counts()}
    for r in set(rows.values()):
        if ("step", dtype.char, r, K, B) not in _blocks:
            _blocks["step", dtype.char, r, K, B] = _step_blocks(fn, wide, dtype, r, K, B)
    return (fn, wide) + _blocks[("step", dtype.char, rows[_parts], K, B)]


def _step_blocks(fn: int, wide: int, dtype, rows: int, K: int, B: int) -> tuple:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((rows, K)).astype(dtype), rng.standard_normal((K, B)).astype(dtype)
    c, reps = np.empty((rows, B), dtype), max(3, 20_000_000 // (rows * K * B))
    return _faster(lambda blocks: kernels.repeat_product((fn, wide) + blocks, a, b, c, reps), rows, K, B)


def _faster(run, rows: int, K: int, N: int) -> tuple:
    """(mb, kb) for products (rows, K) @ (K, N) on one thread, timed by run((mb, kb)): blocks of
    at most MAX_MACS multiply-adds, 256 deep, where they measure 5 % faster than whole products
    (in turns, the best of three each; once per shape): 1.15-1.35x on this machine's OpenBLAS
    (docs/performance.md). A BLAS that packs every product keeps (0, 0), and so does a run whose
    products BLAS's own threads split (numba's queue: use_threads), which blocks would not."""
    kb = min(K, 256)
    fit = MAX_MACS // (N * kb)  # rows per block
    if not _split or fit < 16 or (fit >= rows and kb == K):
        return 0, 0  # blocks would be too thin, or the product is one block already
    mb = -(-rows // -(-rows // fit))  # even blocks, at most `fit` rows
    best: dict = {}
    for _ in range(3):
        for blocks in ((0, 0), (mb, kb)):
            start = time.perf_counter()
            run(blocks)
            best[blocks] = min(best.get(blocks, np.inf), time.perf_counter() - start)
    return (mb, kb) if best[(mb, kb)] < 0.95 * best[(0, 0)] else (0, 0)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """np.matmul(a, b, out=out) split between the loops' threads (use_threads), whole or in the
    blocks that measured faster for its parts' shape: a and b 2-D or stacks of matrices (3-D),
    out C-ordered rows; anything else goes to np.matmul itself."""
    spec = _operands(a, b, out)
    if spec is None:
        np.matmul(a, b, out=out)
        return
    fn, wide = _gemm.fn(out.dtype)
    one, size = out.dtype.type(1), out.itemsize
    ta, tb, M, N, K, A, lda, _, B, ldb, _, C, ldc, _, _ = spec
    parts = {}
    for n in _part_counts():
        rows, cols = (-(-M // n), N) if M >= N else (M, -(-N // n))  # a part's, as kernels.gemm splits
        key = parts[n] = ("matmul", out.dtype.char, ta, tb, rows, cols, K)
        if key not in _blocks:  # timed on one matrix's first part, into out (written again below)
            reps = max(1, 20_000_000 // (rows * cols * K))

            def run(blocks, rows=rows, cols=cols, reps=reps):
                for _ in range(reps):
                    kernels.gemm(fn, wide, 1, ta, tb, rows, cols, K, A, lda, 0, B, ldb, 0, C, ldc, 0, 1, one, size,
                                 *blocks)

            _blocks[key] = _faster(run, rows, K, cols)
    kernels.gemm(fn, wide, _parts, *spec, one, size, *_blocks[parts[_parts]])


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

    def _step_blas(self, h: np.ndarray, gates: int, K: int) -> tuple:
        """step_blas for a loop over h's steps (.., H, B) whose step product is (gates*H, K) @ (K, B)."""
        return step_blas(h.dtype, gates, self.H, K, h.shape[-1])

    def _scatter_columns(self, dg: np.ndarray, ids: np.ndarray, out: np.ndarray) -> None:
        out.fill(0)
        kernels.scatter_columns(dg, ids, out, _parts)

    @staticmethod
    def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        matmul(a, b, out)

    def _row_sums(self, a: np.ndarray, ones: np.ndarray) -> np.ndarray:
        out = self.ws.get(f"row_sums{a.shape[0]}", (a.shape[0], 1), a.dtype)
        matmul(a, ones[:, None], out)
        return out[:, 0]


class Elman(_Fused, cells.Elman):
    def _recur(self, p: dict, W_hT: np.ndarray, tr: cells.Trace) -> None:
        kernels.elman_forward_loop(self._step_blas(tr.h, 1, self.H), _parts, W_hT, tr.gates, tr.h,
                                   ACTIVATIONS[self.activation], tr.hP)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: cells.Trace, da, need_dstate0: bool, dcs):
        W_hh = p[self.key_h]
        T, H, B = dhs.shape
        dh = self.ws.get("dh", (H, B), da.dtype)
        dh.fill(0)
        kernels.elman_backward_loop(self._step_blas(dh, 1, H), _parts, W_hh, tr.h, dhs, dh, da, ACTIVATIONS[self.activation],
                                    self._grad_columns(da), need_dstate0)
        self.dstate0 = dh.T.copy() if need_dstate0 else None


class LSTM(_Fused, cells.LSTM):
    def _recur(self, p: dict, W_hT: np.ndarray, tr: cells.Trace) -> None:
        tmp = self.ws.get("tmp", tr.gates.shape[1:], tr.gates.dtype)
        kernels.lstm_forward_loop(self._step_blas(tr.h, 4, self.H), _parts, W_hT, tr.gates, tmp, tr.c, tr.tanh_c,
                                  tr.h, tr.hP)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: cells.Trace, da, need_dstate0: bool, dcs):
        if dcs is not None:  # d loss / d c_t from outside (the encoder-decoder's): numpy's loop
            return super()._recur_back(p, dhs, tr, da, need_dstate0, dcs)
        T, H, B = dhs.shape
        dh, dc = self.ws.get("dh", (H, B), da.dtype), self.ws.get("dc", (H, B), da.dtype)
        dh.fill(0)
        dc.fill(0)
        kernels.lstm_backward_loop(self._step_blas(dh, 1, 4 * H), _parts, p[self.key_h], tr.gates, tr.c, tr.tanh_c,
                                   dhs, dh, dc, da,
                                   self._grad_columns(da), need_dstate0)
        self.dstate0 = (dh.T.copy(), dc.T.copy()) if need_dstate0 else None


class GRU(_Fused, cells.GRU):
    def _recur(self, p: dict, W_hT: np.ndarray, tr: cells.Trace) -> None:
        tmp = self.ws.get("tmp", tr.gates.shape[1:], tr.gates.dtype)
        kernels.gru_forward_loop(self._step_blas(tr.h, 3, self.H), _parts, W_hT, tr.gates, tmp, p[self.keys["b_hn"]],
                                 tr.h, tr.hn, tr.hP)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: cells.Trace, da, need_dstate0: bool, dcs):
        T, H, B = dhs.shape
        dh, direct = self.ws.get("dh", (H, B), da.dtype), self.ws.get("tmp2", (H, B), da.dtype)
        dh.fill(0)
        kernels.gru_backward_loop(self._step_blas(dh, 1, 3 * H), _parts, self._W_h_nrz(p), tr.gates, tr.hn, tr.h,
                                  dhs, dh, da, direct,
                                  self._grad_columns(da), need_dstate0)
        self.dstate0 = dh.T.copy() if need_dstate0 else None
