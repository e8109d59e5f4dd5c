"""numpy's own BLAS, found so that the compiled loops (kernels.py) can call its gemm directly.

The loops call cblas_sgemm / cblas_dgemm by address: the library numpy multiplies with
(threadpoolctl finds it among the loaded libraries), so the products are the ones numpy
computes, with the same kernels and the same results. numpy's wheels carry OpenBLAS with 64-bit
integers and prefixed names (scipy_cblas_sgemm64_), older ones cblas_sgemm64_; a numpy built
against a system BLAS exports plain cblas_sgemm with 32-bit integers. `find()` checks what it
found on a small product against numpy's before anything uses it.
"""
from __future__ import annotations

import ctypes

import numpy as np

# (the single-precision name, the double one, 64-bit integers): the first the library exports wins
NAMES = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True), ("cblas_sgemm64_", "cblas_dgemm64_", True),
         ("cblas_sgemm", "cblas_dgemm", False))


# OpenBLAS cores with its small-matrix kernels, which multiply a product of at most a million
# multiply-adds without first copying the operands into its packed layout (SMALL_MATRIX_OPT:
# SkylakeX's AVX-512 kernels, which its successors use too)
SMALL_KERNEL_CORES = ("skylakex", "cooperlake", "sapphirerapids")


class Gemm:
    """The addresses of a BLAS's cblas_sgemm and cblas_dgemm, their integers' width, and whether
    it has OpenBLAS's small-matrix kernels (`small`)."""

    def __init__(self, path: str, sgemm: int, dgemm: int, wide: bool, small: bool = False):
        self.path, self.sgemm, self.dgemm, self.wide, self.small = path, sgemm, dgemm, int(wide), small

    def fn(self, dtype) -> tuple:
        """(address, wide) for arrays of dtype (float32 or float64)."""
        return (self.sgemm if np.dtype(dtype) == np.float32 else self.dgemm), self.wide


def find() -> Gemm:
    """numpy's BLAS's gemm; RuntimeError with the reason if there is none to call."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        raise RuntimeError("threadpoolctl is not installed (it finds numpy's BLAS)") from None
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy loads its BLAS lazily on some builds
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    for lib in libs:
        try:
            dll = ctypes.CDLL(lib.filepath)
        except OSError:
            continue
        for s, d, wide in NAMES:
            if hasattr(dll, s) and hasattr(dll, d):
                core = str(getattr(lib, "architecture", "") or "").lower()
                gemm = Gemm(lib.filepath, _address(getattr(dll, s)), _address(getattr(dll, d)), wide,
                            small=lib.internal_api == "openblas" and core in SMALL_KERNEL_CORES)
                _check(gemm)
                return gemm
    found = ", ".join(lib.filepath for lib in libs) or "none"
    raise RuntimeError(f"no cblas gemm found in numpy's BLAS ({found})")


def _address(function) -> int:
    return ctypes.cast(function, ctypes.c_void_p).value


def _check(gemm: Gemm) -> None:
    """A product through the address against numpy's, in both precisions."""
    from . import kernels

    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        a, b = rng.standard_normal((5, 3)).astype(dt), rng.standard_normal((3, 4)).astype(dt)
        c = np.zeros((5, 4), dt)
        fn, wide = gemm.fn(dt)
        kernels.gemm(fn, wide, 1, kernels.NO_TRANS, kernels.NO_TRANS, 5, 4, 3, a.ctypes.data, 3, 0, b.ctypes.data,
                     4, 0, c.ctypes.data, 4, 0, 1, dt(1), c.itemsize, 2, 2)  # in tiles of 2 rows, 2 deep
        if not np.allclose(c, a @ b, rtol=1e-5, atol=1e-6):
            raise RuntimeError(f"{gemm.path}: its gemm does not give numpy's products")
