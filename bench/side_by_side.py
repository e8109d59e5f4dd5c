#!/usr/bin/env python3
"""Two trainings at once against one alone: does the default --threads share the machine well?

Each round trains one model alone, then two identical ones started together, each for --steps
updates with charrnn's default threads (or --threads N), and reads each run's own chars/s.
Rounds alternate, so drift on a shared machine hits both. The claim to check: the two together
reach at least the throughput of one alone (sum of the pair's chars/s >= the lone run's).

usage: python bench/side_by_side.py [--cell lstm] [--hidden-size 256] [--batch-size 32]
         [--steps 30] [--rounds 3] [--threads N] [--corpus FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = """
import json, sys
corpus, cell, H, B, steps, threads = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
from charrnn import threads as th
th.set_threads(threads or None)  # 0: charrnn's default, before numpy loads
from charrnn.config import Config
from charrnn.training import Run
config = Config(cell=cell, hidden_size=H, batch_size=B, max_steps=steps, val_fraction=0,
                eval_every=10**9, save_every=10**9, log_every=10**9)
run = Run(config, corpus, out=None)
chars_per_sec = run.train().chars_per_sec
print(json.dumps({"chars_per_sec": chars_per_sec, "threads": th.threads(), "blas_threads": run.tuner.current}))
"""


def start(a) -> subprocess.Popen:
    args = [a.corpus, a.cell, str(a.hidden_size), str(a.batch_size), str(a.steps), str(a.threads)]
    return subprocess.Popen([sys.executable, "-c", TRAIN, *args], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": REPO})


def finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit("a training failed")
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm", choices=("elman", "lstm", "gru"))
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200, help="updates per run (the tuner looks at 2-5, 69, 197...)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="[default: charrnn's own default]")
    ap.add_argument("--corpus", default=os.path.join(REPO, "data", "shakespeare.txt"))
    a = ap.parse_args()
    alone, pairs, blas_alone, blas_pair = [], [], [], []
    for _ in range(a.rounds):
        r = finish(start(a))
        alone.append(r["chars_per_sec"])
        blas_alone.append(r["blas_threads"])
        p, q = start(a), start(a)
        p, q = finish(p), finish(q)
        pairs.append(p["chars_per_sec"] + q["chars_per_sec"])
        blas_pair += [p["blas_threads"], q["blas_threads"]]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    one, two = statistics.median(alone), statistics.median(pairs)
    print(f"{a.cell} H={a.hidden_size} B={a.batch_size}, threads {r['threads']} each, {a.rounds} rounds, load {load}")
    print(f"one alone: {one:,.0f} chars/s ({', '.join(f'{v:,.0f}' for v in alone)})")
    print(f"two together, summed: {two:,.0f} chars/s ({', '.join(f'{v:,.0f}' for v in pairs)}): {two / one:.2f}x one alone")
    print(f"BLAS threads the runs ended with: alone {blas_alone}, side by side {blas_pair}")


if __name__ == "__main__":
    main()
