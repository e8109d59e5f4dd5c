#!/usr/bin/env python3
"""charrnn against the PyTorch peer (bench/torch_peer.py), in turns, on this machine, in one run.

For every cell and shape asked for, each round trains charrnn and then the peer with the same
recipe (Adam, clip 5, T=64, the same corpus through the same data code, no validation) for
--steps updates (default 40), and reads each side's chars/s over the updates after its first
--skip (default 10, as the issue that set the targets measured: "40 minus 10 updates"). Both
sides' first updates make their buffers (torch's oneDNN its primitives), and charrnn's
threads.Tuner times its choices in updates 2-5, so a window from the 4th update, as this
script had before, charged charrnn about 1 ms an update of the tuner's first look (LSTM
256x32); the tuner's later looks, after 64 updates and more, fall outside any window this
short, and cost under 2 % of a long run (threads.py). Then it samples one stream of the cell at
H=512 on each side. The table shows the median of the rounds of each side and their ratio
(charrnn / torch). Alternating A B A B lets drift on a shared machine hit both sides alike.

torch is never a dependency of charrnn: `make peer` builds .venv-peer (torch 2.13.0 CPU),
the default --peer-python. Without torch the peer's side is skipped with a message.

usage: python bench/compare_torch.py [--cell elman --cell lstm ...] [--shape 256x32 ...]
         [--rounds 3] [--steps 40] [--skip 10] [--threads N] [--corpus FILE] [--peer-python PY] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEER = os.path.join(HERE, "torch_peer.py")
CELLS = ("elman", "lstm", "gru")
SCRATCH = tempfile.mkdtemp(prefix="compare-torch-")  # the peer saves its model here
SHAPES = ("256x32", "512x64")  # H x B

CHARRNN_TRAIN = """
import json, sys
corpus, cell, H, B, T, steps, threads, skip = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:9])
from charrnn import threads as th
th.set_threads(threads or None)  # before numpy loads
from charrnn.config import Config
from charrnn.training import Run
import time
config = Config(cell=cell, hidden_size=H, batch_size=B, seq_len=T, max_steps=steps, val_fraction=0,
                eval_every=10**9, save_every=10**9, log_every=10**9)
run = Run(config, corpus, out=None)
warm = []  # (time, step) after the first `skip` updates, as the peer's steady_chars_per_sec
run.after_update.append(lambda r: warm.append((time.perf_counter(), r.state.step)) if r.state.step == skip else None)
result = run.train()
end = time.perf_counter()
steady = (result.steps - warm[0][1]) * B * T / (end - warm[0][0]) if warm and result.steps > skip else None
print(json.dumps({"chars_per_sec": result.chars_per_sec, "steady_chars_per_sec": steady}))
"""
CHARRNN_SAMPLE = """
import json, sys
cell, H, V, threads = sys.argv[1], *map(int, sys.argv[2:5])
from charrnn import threads as th
th.set_threads(threads or None)
from charrnn.bench import sample_speed
from charrnn.config import Config
print(json.dumps({"chars_per_sec": sample_speed(Config(cell=cell, hidden_size=H), V, 1, chars=3000)}))
"""


def run(cmd: list) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr.strip()}")
    return out.stdout + out.stderr


def charrnn_train(corpus, cell, H, B, T, steps, threads, skip) -> float:
    text = run([sys.executable, "-c", CHARRNN_TRAIN, corpus, cell, *map(str, (H, B, T, steps, threads, skip))])
    out = json.loads(text.strip().splitlines()[-1])
    return out["steady_chars_per_sec"] or out["chars_per_sec"]


def torch_train(py, corpus, cell, H, B, T, steps, threads, skip) -> float:
    text = run([py, PEER, "train", corpus, "--cell", cell, "--hidden-size", str(H), "--batch-size", str(B),
                "--seq-len", str(T), "--max-steps", str(steps), "--val-fraction", "0", "--quiet", "--skip", str(skip),
                "--out", os.path.join(SCRATCH, "peer.pt"), "--threads", str(threads)])
    out = json.loads(next(line for line in text.splitlines() if line.startswith("{")))
    return out["steady_chars_per_sec"] or out["chars_per_sec"]


def charrnn_sample(cell, H, V, threads) -> float:
    return json.loads(run([sys.executable, "-c", CHARRNN_SAMPLE, cell, str(H), str(V), str(threads)]))["chars_per_sec"]


def torch_sample(py, cell, H, V, threads) -> float:
    text = run([py, PEER, "sample", "--cell", cell, "--hidden-size", str(H), "--vocab-size", str(V),
                "--length", "3000", "--speed", "--seed", "0", "--threads", str(threads)])
    return float(re.search(r"chars/s=([\d.]+)", text).group(1))


def has_torch(py) -> bool:
    try:
        return subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0
    except OSError:
        return False


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", action="append", choices=CELLS, help="repeatable [default: all three]")
    ap.add_argument("--shape", action="append", help="HxB, repeatable [default: 256x32 and 512x64]")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40, help="training updates per turn")
    ap.add_argument("--skip", type=int, default=10, help="the rate counts the updates after these")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="both sides [default: each side's own default]")
    ap.add_argument("--no-sample", action="store_true", help="skip one-stream sampling")
    ap.add_argument("--corpus", default=os.path.join(REPO, "data", "shakespeare.txt"))
    ap.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON", os.path.join(REPO, ".venv-peer", "bin", "python")))
    ap.add_argument("--json", action="store_true", help="one JSON object per row")
    a = ap.parse_args()
    cells = a.cell or list(CELLS)
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in (a.shape or SHAPES)]
    torch_ok = has_torch(a.peer_python)
    if not torch_ok:
        print(f"torch is not importable by {a.peer_python}: skipping the peer (make peer, or --peer-python)",
              file=sys.stderr)
    rows = []
    load_before = load_average()
    for H, B in shapes:
        for cell in cells:
            ours, theirs = [], []
            for _ in range(a.rounds):  # interleaved, so drift on a shared machine hits both
                ours.append(charrnn_train(a.corpus, cell, H, B, a.seq_len, a.steps, a.threads, a.skip))
                if torch_ok:
                    theirs.append(torch_train(a.peer_python, a.corpus, cell, H, B, a.seq_len, a.steps, a.threads, a.skip))
            rows.append(("train", cell, H, B, ours, theirs))
    if not a.no_sample:
        for cell in cells:
            ours, theirs = [], []
            for _ in range(a.rounds):
                ours.append(charrnn_sample(cell, 512, 84, a.threads))
                if torch_ok:
                    theirs.append(torch_sample(a.peer_python, cell, 512, 84, a.threads))
            rows.append(("sample", cell, 512, 1, ours, theirs))
    load_after = load_average()
    if not a.json:
        print(f"load average before {load_before}, after {load_after}; medians of {a.rounds} rounds, A B A B; "
              f"threads: {a.threads or 'each default'}")
        print(f"{'what':<7} {'cell':<6} {'H':>4} {'B':>3} {'charrnn chars/s':>16} {'torch chars/s':>14} {'ratio':>6}")
    for what, cell, H, B, ours, theirs in rows:
        o = statistics.median(ours)
        t = statistics.median(theirs) if theirs else None
        if a.json:
            print(json.dumps({"what": what, "cell": cell, "hidden_size": H, "batch_size": B, "charrnn": ours,
                              "torch": theirs, "ratio": o / t if t else None}))
        else:
            print(f"{what:<7} {cell:<6} {H:>4} {B:>3} {o:>16,.0f} {t or 0:>14,.0f} "
                  + (f"{o / t:>5.2f}x" if t else f"{'-':>6}"))


if __name__ == "__main__":
    main()
