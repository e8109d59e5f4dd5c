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


# -- Elman: act is 0 tanh, 1 relu, 2 sigmoid (cells.ACTIVATIONS) ----------------------------
@njit(**_JIT)
def elman_forward(a, h, act, cols, t, k0, k1):
    """h = act(h + a): h holds W_hh^T h_{t-1}, a the input side's x_t W_xh + b_h."""
    half = h.dtype.type(0.5)
    for k in range(k0, k1):
        for b in range(h.shape[1]):
            v = h[k, b] + a[k, b]
            if act == 0:
                v = tanh(v)
            elif act == 1:
                v = max(v, h.dtype.type(0))
            else:
                v = half + half * tanh(half * v)
            h[k, b] = cols[k, t, b] = v


@njit(**_JIT)
def elman_backward(h, dhs, dh, da, act, cols, t, k0, k1):
    """da = (dh + dhs) act'(a), written from the output h = act(a)."""
    one = h.dtype.type(1)
    for k in range(k0, k1):
        for b in range(h.shape[1]):
            d = dh[k, b] + dhs[k, b]
            v = h[k, b]
            if act == 0:
                d = d * (one - v * v)
            elif act == 1:
                d = d if v > 0 else h.dtype.type(0)
            else:
                d = d * v * (one - v)
            da[k, b] = cols[k, t, b] = d


# -- LSTM: rows i, f, o, g -------------------------------------------------------------------
@njit(**_JIT)
def lstm_forward(g, p, c0, c1, tc, h, cols, t, k0, k1):
    """g: the input side's pre-activations (4H, B), p: W_h^T h_{t-1}; g becomes the gates
    i, f, o, g; c1 = f c0 + i g, tc = tanh(c1), h = o tc."""
    H, B = c0.shape
    half = g.dtype.type(0.5)
    for k in range(k0, k1):
        for b in range(B):
            i = half + half * tanh(g[k, b] + p[k, b])
            f = half + half * tanh(g[H + k, b] + p[H + k, b])
            o = half + half * tanh(g[2 * H + k, b] + p[2 * H + k, b])
            gg = tanh(g[3 * H + k, b] + p[3 * H + k, b])
            g[k, b], g[H + k, b], g[2 * H + k, b], g[3 * H + k, b] = i, f, o, gg
            c = f * c0[k, b] + i * gg
            u = tanh(c)
            c1[k, b], tc[k, b] = c, u
            h[k, b] = cols[k, t, b] = o * u


@njit(**_JIT)
def lstm_backward(g, c0, tc, dhs, dh, dc, da, cols, t, k0, k1):
    """From d loss / d h_t (dh from step t+1, plus dhs from above) and d loss / d c_t from
    step t+1 (dc): da, d loss / d the four pre-activations; dc becomes d loss / d c_{t-1}."""
    H, B = c0.shape
    one = g.dtype.type(1)
    for k in range(k0, k1):
        for b in range(B):
            d = dh[k, b] + dhs[k, b]
            i, f, o, gg, u = g[k, b], g[H + k, b], g[2 * H + k, b], g[3 * H + k, b], tc[k, b]
            dcv = dc[k, b] + d * o * (one - u * u)
            da[k, b] = cols[k, t, b] = dcv * gg * i * (one - i)
            da[H + k, b] = cols[H + k, t, b] = dcv * c0[k, b] * f * (one - f)
            da[2 * H + k, b] = cols[2 * H + k, t, b] = d * u * o * (one - o)
            da[3 * H + k, b] = cols[3 * H + k, t, b] = dcv * i * (one - gg * gg)
            dc[k, b] = dcv * f


# -- GRU: rows r, z, n; its gradient buffer's rows d h_n, d a_r, d a_z, d a_n (cells.py) ----
@njit(**_JIT)
def gru_forward(g, p, b_hn, h0, hn, h1, cols, t, k0, k1):
    """g: the input side's pre-activations (3H, B), p: W_h^T h_{t-1} (h_r/2, h_z/2, h_n);
    g becomes r, z, n; hn = h_n + b_hn; h1 = n + z (h0 - n)."""
    H, B = h0.shape
    half = g.dtype.type(0.5)
    for k in range(k0, k1):
        for b in range(B):
            r = half + half * tanh(g[k, b] + p[k, b])
            z = half + half * tanh(g[H + k, b] + p[H + k, b])
            v = p[2 * H + k, b] + b_hn[k]
            n = tanh(g[2 * H + k, b] + r * v)
            g[k, b], g[H + k, b], g[2 * H + k, b], hn[k, b] = r, z, n, v
            h1[k, b] = cols[k, t, b] = n + z * (h0[k, b] - n)


@njit(**_JIT)
def gru_backward(g, hn, h0, dhs, dh, da, direct, cols, t, k0, k1):
    """da (4H, B) from d loss / d h_t (dh + dhs); direct = (dh + dhs) z, the path
    h_{t-1} -> h_t that bypasses the product."""
    H, B = h0.shape
    one = g.dtype.type(1)
    for k in range(k0, k1):
        for b in range(B):
            d = dh[k, b] + dhs[k, b]
            r, z, n = g[k, b], g[H + k, b], g[2 * H + k, b]
            dan = d * (one - z) * (one - n * n)
            da[k, b] = cols[k, t, b] = dan * r
            da[H + k, b] = cols[H + k, t, b] = dan * hn[k, b] * r * (one - r)
            da[2 * H + k, b] = cols[2 * H + k, t, b] = d * (h0[k, b] - n) * z * (one - z)
            da[3 * H + k, b] = cols[3 * H + k, t, b] = dan
            direct[k, b] = d * z


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
