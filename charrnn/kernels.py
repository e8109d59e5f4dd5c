"""The cells' steps as compiled loops (numba): a chunk's steps in one call, one pass a step.

Imported only by charrnn/fused.py, only when training asks for it (`--kernels numba`, or auto
with numba installed: the optional extra `fast`). numpy's path (cells.py) makes ten or more
passes per step, a ufunc call each; here one loop reads the step's pre-activations once and
writes the gates, the state and what the backward pass needs, and the `*_loop` functions run a
chunk's steps, calling BLAS by address between them, split between numba's threads (below,
"numpy's BLAS from inside the loops"). The arithmetic is the same as
cells.py's, step for step; only tanh differs in float32 (below), so the two paths agree within
float32 rounding, not bit for bit (tests/test_kernels.py).

Arrays are (rows, B), a step's feature-major block; `ids` (T, B). The LSTM's and GRU's sigmoid
rows arrive halved (cells.py: sigmoid(a) = (1 + tanh(a/2)) / 2), as numpy's path has them.
Each step also stores what it writes for the products over the whole chunk into a (rows, T, B)
array at column t (`cols`, `t`): h_t into the trace's hP, d loss / d pre-activation into
"daP" (cells.Cell._weight_grads), which saves numpy's path a transposing copy of each.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

# cache=True: compiled once per machine (about 10 s), then loaded from charrnn/__pycache__ or
# numba's user cache. error_model="numpy": no Python zero-division checks, which would stop
# the loops from being vectorised.
_JIT = {"cache": True, "error_model": "numpy", "nogil": True}

# tanh's bound: beyond it tanh(x) rounds to +-1 in float32 and the rational form below would
# not be monotone.
_CLAMP = 7.99881172180175781


def tanh(x):
    """tanh, vectorisable: numba's math.tanh calls libm once per element (about 10x slower than
    numpy's SIMD tanh), this rational approximation runs in the loop's vector registers."""
    return np.tanh(x)


@overload(tanh)
def _tanh(x):
    if x != types.float32:
        return lambda x: math.tanh(x)  # float64 (the gradient checks): exact to float64

    def tanh32(x):
        # Eigen's float tanh (a [13/6] rational fit on [-8, 8]); measured against float64 tanh:
        # at most 6 float32 ulp, 3.4e-7 absolute (numpy's: 1.4 ulp). tests/test_kernels.py.
        x = min(max(x, np.float32(-_CLAMP)), np.float32(_CLAMP))
        x2 = x * x
        p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
        p = x2 * p + np.float32(-8.60467152213735e-11)
        p = x2 * p + np.float32(5.12229709037114e-08)
        p = x2 * p + np.float32(1.48572235717979e-05)
        p = x2 * p + np.float32(6.37261928875436e-04)
        p = x2 * p + np.float32(4.89352455891786e-03)
        q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
        q = x2 * q + np.float32(2.26843463243900e-03)
        q = x2 * q + np.float32(4.89352518554385e-03)
        return x * p / q

    return tanh32


@njit(**_JIT)
def tanh_into(x, out):
    """out = tanh(x), 1-D (the accuracy test's handle on the loops' tanh)."""
    for j in range(x.shape[0]):
        out[j] = tanh(x[j])


@njit(parallel=True, **_JIT)
def gather_columns(table, ids, out, parts):
    """out[t, :, b] = table[:, ids[t, b]]: the one-hot product for every step at once, its steps
    split in `parts`."""
    T = ids.shape[0]
    if parts == 1:
        _gather(table, ids, out, 0, T)
    else:
        for s in prange(parts):
            t0, t1 = _part(T, parts, s)
            _gather(table, ids, out, t0, t1)


@njit(**_JIT)
def _gather(table, ids, out, t0, t1):
    B = ids.shape[1]
    for t in range(t0, t1):
        for r in range(table.shape[0]):
            row = table[r]
            for b in range(B):
                out[t, r, b] = row[ids[t, b]]


@njit(**_JIT)
def _part(n, parts, s):
    """Part s of range(n) split in `parts`: (start, stop)."""
    return n * s // parts, n * (s + 1) // parts


# -- the gate maths of one step, units k0..k1 --------------------------------------------------
# Each runs over its units' (unit, stream) pairs in one loop from 0, every gate's rows for those
# units taken as one contiguous 1-D view (_flat), and then copies what it also writes for the
# products over the chunk (cols, (rows, T, B)) row by row. Measured against a loop of B streams
# per unit, the LSTM's 64 forward gate steps at H=256 B=32 inside the loops' parallel region:
# 1.4-1.7 against 3.2-4.4 ms in one part, 0.8-1.4 against 2.3-2.5 in two. The index starts at 0
# so that numba's wraparound for negative indices drops out: from k0 B it stayed in every access
# and the loop ran 4-7x slower (docs/performance.md, 2026-12-07).
@njit(**_JIT)
def _flat(a, q, H, k0, k1):
    """Units k0..k1 of gate q's rows of a (G*H, B), as one 1-D array ((k1 - k0) B,) (a view)."""
    return a[q * H + k0 : q * H + k1].reshape((k1 - k0) * a.shape[1])


@njit(**_JIT)
def _store_columns(src, cols, t, H, k0, k1):
    """cols[:, t] = src (rows, B) for the rows of units k0..k1 of every gate."""
    for q in range(src.shape[0] // H):
        for k in range(q * H + k0, q * H + k1):
            for b in range(src.shape[1]):
                cols[k, t, b] = src[k, b]


# -- Elman: act is 0 tanh, 1 relu, 2 sigmoid (cells.ACTIVATIONS) ----------------------------
@njit(**_JIT)
def elman_forward(a, h, act, cols, t, k0, k1):
    """h = act(h + a): h holds W_hh^T h_{t-1}, a the input side's x_t W_xh + b_h."""
    H, B = h.shape
    half = h.dtype.type(0.5)
    A, O = _flat(a, 0, H, k0, k1), _flat(h, 0, H, k0, k1)
    for j in range((k1 - k0) * B):
        v = O[j] + A[j]
        if act == 0:
            v = tanh(v)
        elif act == 1:
            v = max(v, h.dtype.type(0))
        else:
            v = half + half * tanh(half * v)
        O[j] = v
    _store_columns(h, cols, t, H, k0, k1)


@njit(**_JIT)
def elman_backward(h, dhs, dh, da, act, cols, t, k0, k1):
    """da = (dh + dhs) act'(a), written from the output h = act(a)."""
    H, B = h.shape
    one = h.dtype.type(1)
    O, DHS, DH, DA = _flat(h, 0, H, k0, k1), _flat(dhs, 0, H, k0, k1), _flat(dh, 0, H, k0, k1), _flat(da, 0, H, k0, k1)
    for j in range((k1 - k0) * B):
        d = DH[j] + DHS[j]
        v = O[j]
        if act == 0:
            d = d * (one - v * v)
        elif act == 1:
            d = d if v > 0 else h.dtype.type(0)
        else:
            d = d * v * (one - v)
        DA[j] = d
    _store_columns(da, cols, t, H, k0, k1)


# -- LSTM: rows i, f, o, g -------------------------------------------------------------------
@njit(**_JIT)
def lstm_forward(g, p, c0, c1, tc, h, cols, t, k0, k1):
    """g: the input side's pre-activations (4H, B), p: W_h^T h_{t-1}; g becomes the gates
    i, f, o, g; c1 = f c0 + i g, tc = tanh(c1), h = o tc."""
    H, B = c0.shape
    half = g.dtype.type(0.5)
    I, F, O, G = _flat(g, 0, H, k0, k1), _flat(g, 1, H, k0, k1), _flat(g, 2, H, k0, k1), _flat(g, 3, H, k0, k1)
    PI, PF, PO, PG = _flat(p, 0, H, k0, k1), _flat(p, 1, H, k0, k1), _flat(p, 2, H, k0, k1), _flat(p, 3, H, k0, k1)
    C0, C1, TC, HH = _flat(c0, 0, H, k0, k1), _flat(c1, 0, H, k0, k1), _flat(tc, 0, H, k0, k1), _flat(h, 0, H, k0, k1)
    for j in range((k1 - k0) * B):
        i = half + half * tanh(I[j] + PI[j])
        f = half + half * tanh(F[j] + PF[j])
        o = half + half * tanh(O[j] + PO[j])
        gg = tanh(G[j] + PG[j])
        I[j], F[j], O[j], G[j] = i, f, o, gg
        c = f * C0[j] + i * gg
        u = tanh(c)
        C1[j], TC[j] = c, u
        HH[j] = o * u
    _store_columns(h, cols, t, H, k0, k1)


@njit(**_JIT)
def lstm_backward(g, c0, tc, dhs, dh, dc, da, cols, t, k0, k1):
    """From d loss / d h_t (dh from step t+1, plus dhs from above) and d loss / d c_t from
    step t+1 (dc): da, d loss / d the four pre-activations; dc becomes d loss / d c_{t-1}."""
    H, B = c0.shape
    one = g.dtype.type(1)
    I, F, O, G = _flat(g, 0, H, k0, k1), _flat(g, 1, H, k0, k1), _flat(g, 2, H, k0, k1), _flat(g, 3, H, k0, k1)
    DI, DF, DO, DG = _flat(da, 0, H, k0, k1), _flat(da, 1, H, k0, k1), _flat(da, 2, H, k0, k1), _flat(da, 3, H, k0, k1)
    C0, U, DC = _flat(c0, 0, H, k0, k1), _flat(tc, 0, H, k0, k1), _flat(dc, 0, H, k0, k1)
    DHS, DH = _flat(dhs, 0, H, k0, k1), _flat(dh, 0, H, k0, k1)
    for j in range((k1 - k0) * B):
        d = DH[j] + DHS[j]
        i, f, o, gg, u = I[j], F[j], O[j], G[j], U[j]
        dcv = DC[j] + d * o * (one - u * u)
        DI[j] = dcv * gg * i * (one - i)
        DF[j] = dcv * C0[j] * f * (one - f)
        DO[j] = d * u * o * (one - o)
        DG[j] = dcv * i * (one - gg * gg)
        DC[j] = dcv * f
    _store_columns(da, cols, t, H, k0, k1)


# -- GRU: rows r, z, n; its gradient buffer's rows d h_n, d a_r, d a_z, d a_n (cells.py) ----
@njit(**_JIT)
def gru_forward(g, p, b_hn, h0, hn, h1, cols, t, k0, k1):
    """g: the input side's pre-activations (3H, B), p: W_h^T h_{t-1} (h_r/2, h_z/2, h_n);
    g becomes r, z, n; hn = h_n + b_hn; h1 = n + z (h0 - n)."""
    H, B = h0.shape
    half = g.dtype.type(0.5)
    for k in range(k0, k1):  # hn first: the bias is one a unit
        for b in range(B):
            hn[k, b] = p[2 * H + k, b] + b_hn[k]
    R, Z, N = _flat(g, 0, H, k0, k1), _flat(g, 1, H, k0, k1), _flat(g, 2, H, k0, k1)
    PR, PZ, HN = _flat(p, 0, H, k0, k1), _flat(p, 1, H, k0, k1), _flat(hn, 0, H, k0, k1)
    H0, H1 = _flat(h0, 0, H, k0, k1), _flat(h1, 0, H, k0, k1)
    for j in range((k1 - k0) * B):
        r = half + half * tanh(R[j] + PR[j])
        z = half + half * tanh(Z[j] + PZ[j])
        n = tanh(N[j] + r * HN[j])
        R[j], Z[j], N[j] = r, z, n
        H1[j] = n + z * (H0[j] - n)
    _store_columns(h1, cols, t, H, k0, k1)


@njit(**_JIT)
def gru_backward(g, hn, h0, dhs, dh, da, direct, cols, t, k0, k1):
    """da (4H, B) from d loss / d h_t (dh + dhs); direct = (dh + dhs) z, the path
    h_{t-1} -> h_t that bypasses the product."""
    H, B = h0.shape
    one = g.dtype.type(1)
    R, Z, N = _flat(g, 0, H, k0, k1), _flat(g, 1, H, k0, k1), _flat(g, 2, H, k0, k1)
    DHN, DAR, DAZ, DAN = _flat(da, 0, H, k0, k1), _flat(da, 1, H, k0, k1), _flat(da, 2, H, k0, k1), _flat(da, 3, H, k0, k1)
    HN, H0, DIR = _flat(hn, 0, H, k0, k1), _flat(h0, 0, H, k0, k1), _flat(direct, 0, H, k0, k1)
    DHS, DH = _flat(dhs, 0, H, k0, k1), _flat(dh, 0, H, k0, k1)
    for j in range((k1 - k0) * B):
        d = DH[j] + DHS[j]
        r, z, n = R[j], Z[j], N[j]
        dan = d * (one - z) * (one - n * n)
        DHN[j] = dan * r
        DAR[j] = dan * HN[j] * r * (one - r)
        DAZ[j] = d * (H0[j] - n) * z * (one - z)
        DAN[j] = dan
        DIR[j] = d * z
    _store_columns(da, cols, t, H, k0, k1)


# -- numpy's BLAS from inside the loops -------------------------------------------------------
# The step products are BLAS's gemm, called from the compiled loops through its address
# (charrnn/cblas.py finds numpy's own; `fn` is the one for the arrays' dtype, `wide` 1 if its
# integers are 64-bit): no Python between steps. With `parts` > 1, each of numba's threads
# multiplies its own rows of a product with a one-thread gemm and then runs the gate maths of
# those rows, so the gate maths run on every core too (beside BLAS's own threads they ran on
# one core while BLAS's other threads spun). A loop's threads meet once a step.
NO_TRANS, TRANS = 111, 112  # CBLAS_TRANSPOSE


@intrinsic
def _gemm_call(typingctx, fn, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
    """cblas_?gemm(RowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) at address
    fn; A, B, C are addresses, the integers' type (int32 or int64) the library's."""
    sig = types.void(fn, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)

    def codegen(context, builder, signature, args):
        i32, ptr = ir.IntType(32), ir.IntType(8).as_pointer()
        ty = [context.get_value_type(t) for t in signature.args]
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, ty[3], ty[4], ty[5], ty[6], ptr, ty[8], ptr,
                                               ty[10], ty[11], ptr, ty[13]])
        f, ta_, tb_, M_, N_, K_, al, A_, lda_, B_, ldb_, be, C_, ldc_ = args
        call = [ir.Constant(i32, 101), builder.trunc(ta_, i32), builder.trunc(tb_, i32), M_, N_, K_, al,
                builder.inttoptr(A_, ptr), lda_, builder.inttoptr(B_, ptr), ldb_, be, builder.inttoptr(C_, ptr), ldc_]
        builder.call(builder.inttoptr(f, fnty.as_pointer()), call)
        return context.get_dummy_value()

    return sig, codegen


@njit(**_JIT)
def _gemm(fn, wide, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
    """C = alpha op(A) op(B) + beta C, the matrices given by address."""
    if M <= 0 or N <= 0:
        return
    if wide:
        _gemm_call(fn, ta, tb, np.int64(M), np.int64(N), np.int64(K), alpha, A, np.int64(lda), B, np.int64(ldb),
                   beta, C, np.int64(ldc))
    else:
        _gemm_call(fn, ta, tb, np.int32(M), np.int32(N), np.int32(K), alpha, A, np.int32(lda), B, np.int32(ldb),
                   beta, C, np.int32(ldc))


@njit(**_JIT)
def _deep(fn, wide, ta, tb, M, N, K, one, A, lda, B, ldb, C, ldc, size, kb):
    """C = op(A) op(B) by addresses, kb deep at a time: each slice's product added into C."""
    for k in range(0, K, kb):
        _gemm(fn, wide, ta, tb, M, N, min(kb, K - k), one, A + k * (1 if ta == NO_TRANS else lda) * size, lda,
              B + k * (ldb if tb == NO_TRANS else 1) * size, ldb, one - one if k == 0 else one, C, ldc)


@njit(**_JIT)
def _rows(blas, a, b, c, k0, k1):
    """c[k0:k1] = a[k0:k1] @ b, 2-D arrays whose rows are contiguous, tile by tile from k0 (a
    multiple of the tile): blas = (gemm's address, wide, tile, kb), fused.blocks()."""
    fn, wide, tile, kb = blas
    size = a.itemsize
    lda, ldb, ldc = a.strides[0] // size, b.strides[0] // size, c.strides[0] // size
    for u in range(k0, k1, tile):
        _deep(fn, wide, NO_TRANS, NO_TRANS, min(tile, k1 - u), c.shape[1], a.shape[1], a.dtype.type(1),
              a.ctypes.data + u * lda * size, lda, b.ctypes.data, ldb, c.ctypes.data + u * ldc * size, ldc, size, kb)


@njit(**_JIT)
def _units(H, tile, parts, s):
    """Part s of H hidden units split in `parts`, whole tiles each: (k0, k1)."""
    tiles = -(-H // tile)
    return min(H, tile * (tiles * s // parts)), min(H, tile * (tiles * (s + 1) // parts))


@njit(parallel=True, **_JIT)
def gemm(fn, wide, parts, ta, tb, M, N, K, A, lda, sa, B, ldb, sb, C, ldc, sc, batch, one, size, tile, kb):
    """C[i] = op(A[i]) op(B[i]) for i < batch (element strides sa, sb, sc between the matrices
    of a batch; 0 repeats one; `size` the bytes of an element), in tiles of `tile` rows of C (of
    its columns when it has fewer rows than columns), kb deep (fused.blocks()); `parts` of
    numba's threads take whole tiles each, so the numbers are the same whatever the parts."""
    by_rows = M >= N
    tiles = -(-(M if by_rows else N) // tile)
    if parts == 1:
        _tiles(fn, wide, ta, tb, M, N, K, A, lda, sa, B, ldb, sb, C, ldc, sc, one, size, tile, kb, by_rows, tiles,
               0, batch * tiles)
        return
    for s in prange(parts):
        lo, hi = _part(batch * tiles, parts, s)
        _tiles(fn, wide, ta, tb, M, N, K, A, lda, sa, B, ldb, sb, C, ldc, sc, one, size, tile, kb, by_rows, tiles,
               lo, hi)


@njit(**_JIT)
def _tiles(fn, wide, ta, tb, M, N, K, A, lda, sa, B, ldb, sb, C, ldc, sc, one, size, tile, kb, by_rows, tiles, lo, hi):
    """gemm's tiles lo..hi, numbered matrix by matrix."""
    for task in range(lo, hi):
        i, u = task // tiles, task % tiles * tile
        a, b, c = A + i * sa * size, B + i * sb * size, C + i * sc * size
        if by_rows:  # rows u.. of op(A) and of C
            _deep(fn, wide, ta, tb, min(tile, M - u), N, K, one, a + u * (lda if ta == NO_TRANS else 1) * size, lda,
                  b, ldb, c + u * ldc * size, ldc, size, kb)
        else:  # columns u.. of op(B) and of C
            _deep(fn, wide, ta, tb, M, min(tile, N - u), K, one, a, lda, b + u * (1 if tb == NO_TRANS else ldb) * size,
                  ldb, c + u * size, ldc, size, kb)


# -- the step loops: a chunk's T steps in one call, hidden units split in `parts` ------------
@njit(**_JIT)
def _gate_products(blas, W_hT, h, out, gates, k0, k1):
    """out's rows for units k0..k1 of every gate = those rows of W_hT (gates*H, H) @ h (H, B)."""
    H = h.shape[0]
    for q in range(gates):
        _rows(blas, W_hT[q * H :], h, out[q * H :], k0, k1)


@njit(**_JIT)
def _elman_step(blas, W_hT, a, h, act, cols, t, k0, k1):
    _rows(blas, W_hT, h[t], h[t + 1], k0, k1)
    elman_forward(a[t], h[t + 1], act, cols, t + 1, k0, k1)


@njit(parallel=True, **_JIT)
def elman_forward_loop(blas, parts, W_hT, a, h, act, cols):
    """h[t+1] = act(W_hh^T h[t] + a[t]) for every t."""
    H = h.shape[1]
    for t in range(a.shape[0]):
        if parts == 1:
            _elman_step(blas, W_hT, a, h, act, cols, t, 0, H)
        else:
            for s in prange(parts):
                k0, k1 = _units(H, blas[2], parts, s)
                _elman_step(blas, W_hT, a, h, act, cols, t, k0, k1)


@njit(**_JIT)
def _elman_back_step(blas, W_hh, h, dhs, dh, da, act, cols, t, k0, k1):
    if t + 1 < dhs.shape[0]:  # d loss / d h_t through step t+1's product
        _rows(blas, W_hh, da[t + 1], dh, k0, k1)
    if t >= 0:
        elman_backward(h[t + 1], dhs[t], dh, da[t], act, cols, t, k0, k1)


@njit(parallel=True, **_JIT)
def elman_backward_loop(blas, parts, W_hh, h, dhs, dh, da, act, cols, need_dstate0):
    """da[t] for t = T-1..0 from dhs and dh (d loss / d h_T, zeros); dh ends as d loss / d h_0
    with need_dstate0."""
    H = dhs.shape[1]
    for t in range(dhs.shape[0] - 1, -2 if need_dstate0 else -1, -1):
        if parts == 1:
            _elman_back_step(blas, W_hh, h, dhs, dh, da, act, cols, t, 0, H)
        else:
            for s in prange(parts):
                k0, k1 = _units(H, blas[2], parts, s)
                _elman_back_step(blas, W_hh, h, dhs, dh, da, act, cols, t, k0, k1)


@njit(**_JIT)
def _lstm_step(blas, W_hT, g, tmp, c, tc, h, cols, t, k0, k1):
    _gate_products(blas, W_hT, h[t], tmp, 4, k0, k1)
    lstm_forward(g[t], tmp, c[t], c[t + 1], tc[t], h[t + 1], cols, t + 1, k0, k1)


@njit(parallel=True, **_JIT)
def lstm_forward_loop(blas, parts, W_hT, g, tmp, c, tc, h, cols):
    H = h.shape[1]
    for t in range(g.shape[0]):
        if parts == 1:
            _lstm_step(blas, W_hT, g, tmp, c, tc, h, cols, t, 0, H)
        else:
            for s in prange(parts):
                k0, k1 = _units(H, blas[2], parts, s)
                _lstm_step(blas, W_hT, g, tmp, c, tc, h, cols, t, k0, k1)


@njit(**_JIT)
def _lstm_back_step(blas, W_h, g, c, tc, dhs, dh, dc, da, cols, t, k0, k1):
    if t + 1 < dhs.shape[0]:
        _rows(blas, W_h, da[t + 1], dh, k0, k1)
    if t >= 0:
        lstm_backward(g[t], c[t], tc[t], dhs[t], dh, dc, da[t], cols, t, k0, k1)


@njit(parallel=True, **_JIT)
def lstm_backward_loop(blas, parts, W_h, g, c, tc, dhs, dh, dc, da, cols, need_dstate0):
    """As elman_backward_loop; dc (zeros) ends as d loss / d c_0."""
    H = dhs.shape[1]
    for t in range(dhs.shape[0] - 1, -2 if need_dstate0 else -1, -1):
        if parts == 1:
            _lstm_back_step(blas, W_h, g, c, tc, dhs, dh, dc, da, cols, t, 0, H)
        else:
            for s in prange(parts):
                k0, k1 = _units(H, blas[2], parts, s)
                _lstm_back_step(blas, W_h, g, c, tc, dhs, dh, dc, da, cols, t, k0, k1)


@njit(**_JIT)
def _gru_step(blas, W_hT, g, tmp, b_hn, h, hn, cols, t, k0, k1):
    _gate_products(blas, W_hT, h[t], tmp, 3, k0, k1)
    gru_forward(g[t], tmp, b_hn, h[t], hn[t], h[t + 1], cols, t + 1, k0, k1)


@njit(parallel=True, **_JIT)
def gru_forward_loop(blas, parts, W_hT, g, tmp, b_hn, h, hn, cols):
    H = h.shape[1]
    for t in range(g.shape[0]):
        if parts == 1:
            _gru_step(blas, W_hT, g, tmp, b_hn, h, hn, cols, t, 0, H)
        else:
            for s in prange(parts):
                k0, k1 = _units(H, blas[2], parts, s)
                _gru_step(blas, W_hT, g, tmp, b_hn, h, hn, cols, t, k0, k1)


@njit(**_JIT)
def _gru_back_step(blas, W_h, g, hn, h, dhs, dh, da, direct, cols, t, k0, k1):
    H = dhs.shape[1]
    if t + 1 < dhs.shape[0]:  # through step t+1's product, plus the path that bypasses it
        _rows(blas, W_h, da[t + 1, : 3 * H], dh, k0, k1)
        dh[k0:k1] += direct[k0:k1]
    if t >= 0:
        gru_backward(g[t], hn[t], h[t], dhs[t], dh, da[t], direct, cols, t, k0, k1)


@njit(parallel=True, **_JIT)
def gru_backward_loop(blas, parts, W_h, g, hn, h, dhs, dh, da, direct, cols, need_dstate0):
    """As elman_backward_loop; W_h (H, 3H) in the gradient rows' order n, r, z."""
    H = dhs.shape[1]
    for t in range(dhs.shape[0] - 1, -2 if need_dstate0 else -1, -1):
        if parts == 1:
            _gru_back_step(blas, W_h, g, hn, h, dhs, dh, da, direct, cols, t, 0, H)
        else:
            for s in prange(parts):
                k0, k1 = _units(H, blas[2], parts, s)
                _gru_back_step(blas, W_h, g, hn, h, dhs, dh, da, direct, cols, t, k0, k1)


# -- the optimizer ----------------------------------------------------------------------------
@njit(**_JIT)
def adam(p, g, m, v, b1, c1, b2, c2, s1, eps, s2):
    """One Adam step in one pass over flat p, g, m, v, with optim.Adam's operations in its
    order and its constants in the types numpy's passes use (b1, c1 = 1 - b1, b2, c2 = 1 - b2,
    eps, s2 = lr / (1 - b1^t) in p's dtype; s1 = 1/sqrt(1 - b2^t) a float64, which numpy >= 2
    multiplies in float64): the same result as those eleven passes, to the bit."""
    real = p.dtype.type
    for j in range(p.shape[0]):
        gj = g[j]
        mj = m[j] * b1 + gj * c1
        vj = v[j] * b2 + (gj * gj) * c2
        m[j], v[j] = mj, vj
        p[j] -= (mj / (real(real(np.sqrt(vj)) * s1) + eps)) * s2


@njit(**_JIT)
def transpose_halving(src, bias, dst, halved):
    """dst = (src + bias)^T, its first `halved` rows times 0.5: cells.Cell.forward's W_h^T (no
    bias: an empty array) and the one-hot's table (W_x + b)^T. Reads 8 rows of src at a time:
    rows 4 KB apart share a cache set, and numpy's copy of a transposed view, reading 16 or
    more of them at once, keeps evicting its own lines (3x slower at (256, 1024))."""
    R, C = src.shape
    half, one = src.dtype.type(0.5), src.dtype.type(1)
    add = bias.shape[0] > 0
    for j0 in range(0, R, 8):
        j1 = min(j0 + 8, R)
        for i in range(C):
            scale = half if i < halved else one
            for j in range(j0, j1):
                dst[i, j] = ((src[j, i] + bias[i]) if add else src[j, i]) * scale


@njit(parallel=True, **_JIT)
def scatter_columns(dg, ids, out, parts):
    """out[:, ids[j]] += dg[:, j] for every column j: d W_x^T from d loss / d pre-activation
    (R, n), the one-hot product's transpose without its multiplications by zero; rows split in
    `parts`."""
    R = dg.shape[0]
    if parts == 1:
        _scatter(dg, ids, out, 0, R)
    else:
        for s in prange(parts):
            k0, k1 = _part(R, parts, s)
            _scatter(dg, ids, out, k0, k1)


@njit(**_JIT)
def _scatter(dg, ids, out, k0, k1):
    n = dg.shape[1]
    for k in range(k0, k1):
        row, src = out[k], dg[k]
        for j in range(n):
            row[ids[j]] += src[j]
