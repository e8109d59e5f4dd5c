#!/usr/bin/env python3
"""numba's kernels against numpy's path: one training update of each, in turns, in one process.

For each shape and cell, with one thread and with two (BLAS's for numpy's path; numba's, with
BLAS on one, for the compiled one: fused.use_threads): a model with `kernels` numpy and one
with numba (same weights, same fixed random chunk), each warmed up, then 5 rounds that time a
run of updates of each in turn (A B A B ..., half a second apart, for the other path's idle
threads to stop spinning); prints the medians, ms per update, and numpy's over numba's. Needs
numba and threadpoolctl (`pip install 'charrnn[fast]'`).

usage: python bench/kernels_ab.py [--cell lstm ...] [--shape 256x32 ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from charrnn import threads as th  # noqa: E402

th.set_threads(1)  # before numpy loads; set per turn below

import numpy as np  # noqa: E402

from charrnn.bench import _update  # noqa: E402
from charrnn.config import Config  # noqa: E402


def medians(cell: str, H: int, B: int, threads: int, rounds: int = 5) -> dict:
    """ms per update, numpy's path and numba's, each with `threads` threads as training sets them
    (BLAS's for numpy's; the compiled loops' own for numba's: fused.use_threads)."""
    updates, times = {}, {}
    for kernels in ("numpy", "numba"):
        model, update = _update(Config(cell=cell, hidden_size=H, batch_size=B, seq_len=64, kernels=kernels), 65)
        updates[kernels], times[kernels] = (update, model.thread_setter or th.set_blas), []
        updates[kernels][1](threads)
        for _ in range(3):
            update()
    n = max(3, 20 * 256 * 32 // (H * B))  # about a second a turn
    for _ in range(rounds):
        for kernels, (update, set_threads) in updates.items():
            set_threads(threads)
            # BLAS's idle threads spin for a while after numpy's turn, OpenMP's after numba's:
            # beside the other path's working threads they slowed its turn (numba's Elman 0.87x)
            time.sleep(0.5)
            t = time.perf_counter()
            for _ in range(n):
                update()
            times[kernels].append((time.perf_counter() - t) / n * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", action="append", choices=("elman", "lstm", "gru"))
    ap.add_argument("--shape", action="append", help="HxB [default: 256x32 and 512x64]")
    a = ap.parse_args()
    th.set_threads(2)  # the budget of the runs below: the compiled loops tile products for it
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in (a.shape or ["256x32", "512x64"])]
    print(f"ms per update, medians of 5 rounds; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'cell':<6} {'H':>4} {'B':>3} {'threads':>7} {'numpy':>8} {'numba':>8} {'numpy/numba':>11}")
    for H, B in shapes:
        for cell in a.cell or ["elman", "lstm", "gru"]:
            for n in (1, 2):
                m = medians(cell, H, B, n)
                print(f"{cell:<6} {H:>4} {B:>3} {n:>7} {m['numpy']:>8.1f} {m['numba']:>8.1f} "
                      f"{m['numpy'] / m['numba']:>10.3f}x", flush=True)


if __name__ == "__main__":
    main()
