#!/usr/bin/env python3
"""charrnn against the PyTorch CPU peer, in turns (A B A B ...), on this machine, in one run.

The peer scripts are ../shared/bench/torch_ref.py (training) and torch_sample.py (sampling).
torch is never a dependency of charrnn: point --torch-python at a Python that has it
(e.g. a throwaway venv with `pip install torch==2.13.0`); without one, the torch side is
skipped with a message and only charrnn's figures are printed.

usage: python bench/compare_torch.py [--torch-python PY] [--rounds 3] [--corpus FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED_BENCH = os.path.join(os.path.dirname(REPO), "shared", "bench")
SHAPES = [(512, 64, 64), (256, 32, 64)]

CHARRNN_TRAIN = """
import json, sys
from charrnn.bench import train_speed
from charrnn.config import Config
H, B, T, V, steps = map(int, sys.argv[1:6])
cfg = Config(hidden_size=H, batch_size=B, seq_len=T, lr=2e-3)
print(json.dumps({"chars_per_sec": train_speed(cfg, V, seconds=0, warmup=3, steps=steps)}))
"""
CHARRNN_SAMPLE = """
import json, sys
from charrnn.bench import sample_speed
from charrnn.config import Config
H, V = map(int, sys.argv[1:3])
print(json.dumps({"chars_per_sec": sample_speed(Config(hidden_size=H), V, 1, chars=3000)}))
"""


def run(cmd: list, env: dict | None = None) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})})
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr.strip()}")
    return out.stdout


def charrnn_train(H, B, T, V, steps):
    return json.loads(run([sys.executable, "-c", CHARRNN_TRAIN, str(H), str(B), str(T), str(V), str(steps)]))["chars_per_sec"]


def torch_train(py, corpus, H, B, T, steps):
    text = run([py, os.path.join(SHARED_BENCH, "torch_ref.py"), corpus, "--hidden", str(H),
                "--batch", str(B), "--seq", str(T), "--steps", str(steps)])
    return float(re.search(r"chars/s=([\d.]+)", text).group(1))


def charrnn_sample(H, V):
    # As `charrnn sample` runs: one BLAS thread unless the user set OPENBLAS_NUM_THREADS.
    env = {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    return json.loads(run([sys.executable, "-c", CHARRNN_SAMPLE, str(H), str(V)], env))["chars_per_sec"]


def torch_sample(py, H):
    text = run([py, os.path.join(SHARED_BENCH, "torch_sample.py"), str(H)])
    return float(re.search(r"chars/s=([\d.]+)", text).group(1))


def has_torch(py) -> bool:
    try:
        return subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON", "python3"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per turn")
    ap.add_argument("--corpus", default=os.path.join(REPO, "data", "shakespeare.txt"))
    a = ap.parse_args()
    torch_ok = has_torch(a.torch_python)
    if not torch_ok:
        print(f"torch is not importable by {a.torch_python}: skipping the peer "
              f"(create a venv with `pip install torch==2.13.0` and pass --torch-python)", file=sys.stderr)
    with open(a.corpus, encoding="utf-8") as fh:
        V = len(set(fh.read()))
    rows = []
    for H, B, T in SHAPES:
        ours, theirs = [], []
        for _ in range(a.rounds):  # interleaved, so drift on a shared machine hits both
            ours.append(charrnn_train(H, B, T, V, a.steps))
            if torch_ok:
                theirs.append(torch_train(a.torch_python, a.corpus, H, B, T, a.steps))
        rows.append((f"train chars/s H={H} B={B} T={T}", ours, theirs))
    ours, theirs = [], []
    for _ in range(a.rounds):
        ours.append(charrnn_sample(512, 84))  # torch_sample.py uses V=84
        if torch_ok:
            theirs.append(torch_sample(a.torch_python, 512))
    rows.append(("sample chars/s H=512, one stream", ours, theirs))
    print(f"{'what':<36} {'charrnn':>10} {'torch':>10} {'ratio':>7}   (medians of {a.rounds}, A B A B)")
    for name, ours, theirs in rows:
        o = statistics.median(ours)
        if theirs:
            t = statistics.median(theirs)
            print(f"{name:<36} {o:>10,.0f} {t:>10,.0f} {o / t:>6.2f}x")
        else:
            print(f"{name:<36} {o:>10,.0f} {'-':>10} {'-':>7}")


if __name__ == "__main__":
    main()
