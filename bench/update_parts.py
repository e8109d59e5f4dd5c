#!/usr/bin/env python3
"""Where one training update goes: each part of Model.forward/backward timed, per cell and shape.

Wraps the model's and the cells' methods with timers (the wrapping costs about a microsecond
a call) and runs updates on random ids, with one BLAS thread and with --threads (default 2),
alternating. Prints, in ms per update: the input gather (`project`), the forward recurrence,
the rest of the layer's forward (copies), the output layer and softmax, the backward recurrence,
the weight-gradient products (one per weight over the whole chunk), the output layer's backward,
and clip + Adam.

usage: python bench/update_parts.py [--cell lstm ...] [--shape 256x32 ...] [--updates 10] [--threads 2]
                                   [--kernels numba|numpy]  (default: auto, as training)
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from charrnn import threads as th  # noqa: E402

th.set_threads(1)  # before numpy loads; the BLAS threads change per turn below

import numpy as np  # noqa: E402

from charrnn import cells, fused  # noqa: E402
from charrnn import model as model_mod  # noqa: E402
from charrnn.bench import _update  # noqa: E402
from charrnn.config import Config  # noqa: E402

spent: dict = collections.defaultdict(float)


def timed(cls, name: str, label: str) -> None:
    fn = getattr(cls, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - t

    setattr(cls, name, wrapper)


for cls in (cells.Elman, cells.LSTM, cells.GRU, fused.Elman, fused.LSTM, fused.GRU):
    timed(cls, "_recur", "recur")
    timed(cls, "_recur_back", "recur_back")
timed(cells.Cell, "_project", "project")
timed(cells.Cell, "_weight_grads", "weight_grads")
timed(cells.Cell, "forward", "cell.forward")
timed(cells.Cell, "backward", "cell.backward")
timed(model_mod.Model, "forward", "model.forward")
timed(model_mod.Model, "backward", "model.backward")


def update_fn(cell: str, H: int, B: int, kernels: str, T: int = 64, V: int = 65):
    """(model, one training update on fixed random ids), as `charrnn bench --cell` times it."""
    return _update(Config(cell=cell, hidden_size=H, batch_size=B, seq_len=T, kernels=kernels), V)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", action="append", choices=("elman", "lstm", "gru"))
    ap.add_argument("--shape", action="append", help="HxB [default: 256x32 and 512x64]")
    ap.add_argument("--updates", type=int, default=10, help="per turn; 3 turns each")
    ap.add_argument("--threads", type=int, default=2, help="the threads to set against one")
    ap.add_argument("--kernels", choices=("auto", "numpy", "numba"), default="auto", help="as train's --kernels")
    a = ap.parse_args()
    th.set_threads(a.threads)  # the budget training would have: the compiled loops tile products for it
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in (a.shape or ["256x32", "512x64"])]
    cols = ("total", "project", "recur", "fwd copies", "output fwd", "recur_back", "weight_grads",
            "output bwd", "clip+adam")
    print(f"ms per update, median of 3 turns of {a.updates}, {fused.resolve(a.kernels)} kernels; "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'cell':<6} {'H':>4} {'B':>3} {'thr':>4} " + " ".join(f"{c:>12}" for c in cols))
    for H, B in shapes:
        for cell in a.cell or ["elman", "lstm", "gru"]:
            model, update = update_fn(cell, H, B, a.kernels)
            set_threads = model.thread_setter or th.set_blas  # the compiled loops' own threads, or BLAS's
            rows = {n: [] for n in (1, a.threads)}
            for _ in range(3):
                for n in rows:
                    set_threads(n)
                    update()
                    spent.clear()
                    t = time.perf_counter()
                    for _ in range(a.updates):
                        update()
                    total = time.perf_counter() - t
                    s = {k: v / a.updates * 1e3 for k, v in spent.items()}
                    rows[n].append((total / a.updates * 1e3, s["project"], s["recur"],
                                    s["cell.forward"] - s["recur"] - s["project"],
                                    s["model.forward"] - s["cell.forward"], s["recur_back"], s["weight_grads"],
                                    s["model.backward"] - s["cell.backward"],
                                    total / a.updates * 1e3 - s["model.forward"] - s["model.backward"]))
            for n, runs in rows.items():
                med = np.median(np.array(runs), axis=0)
                print(f"{cell:<6} {H:>4} {B:>3} {n:>4} " + " ".join(f"{v:>12.1f}" for v in med), flush=True)


if __name__ == "__main__":
    main()
