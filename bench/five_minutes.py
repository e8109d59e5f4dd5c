#!/usr/bin/env python3
"""The five-minute race: each configs/shakespeare-*.yaml trained by charrnn and by the PyTorch peer.

For each config, one after another on this machine: `charrnn train` with the config, then
bench/torch_peer.py with the same config (the same recipe: cell, sizes, optimizer, schedule,
clip, seed), each for the same --seconds (the config's max_time is replaced). Both then score
the same held-out text, the corpus's last val_fraction (5 %) that neither trained on, as one
stream from a zero state (`charrnn eval`'s measure) with their best-validation model.

Run it from the charrnn environment, with the peer's Python (`make peer` builds .venv-peer):

  make five-minutes                                   # 3 cells x 2 sides x 300 s: about 35 minutes
  .venv/bin/python bench/five_minutes.py --seconds 20 --peer-python .venv-peer/bin/python

Prints a Markdown table (cell, side, updates, chars/s, held-out loss); OUT/results.json keeps
the figures and OUT/heldout.txt the held-out text.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CORPUS = os.path.join(REPO, "data", "shakespeare-full.txt.xz")


def configs() -> list:
    """The shipped race configs, the gated cells first (gru, lstm, elman)."""
    order = {"gru": 0, "lstm": 1, "elman": 2}
    found = glob.glob(os.path.join(REPO, "configs", "shakespeare-*.yaml"))
    return sorted(found, key=lambda p: (order.get(os.path.basename(p)[12:-5], 9), p))


def write_heldout(corpus: str, config_path: str, path: str) -> int:
    """The text charrnn holds out under this config (its split, exactly), to `path`."""
    from charrnn.config import resolve
    from charrnn.data import load_corpus, split

    config = resolve(config_path)
    data = load_corpus(corpus)
    parts = split(data.ids, config.val_fraction, config.batch_size, config.seq_len)
    if parts.val is None:
        raise SystemExit(f"{config_path} holds nothing out ({parts.note})")
    text = data.vocab.decode(parts.val)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return len(text)


THREADS: list = []  # ["--threads", "N"] for every command of both sides, when --threads is given


def run(cmd: list) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr.strip()[-2000:]}")
    return out.stdout


def race_charrnn(config_path: str, corpus: str, seconds: float, out: str, heldout: str) -> dict:
    import numpy as np

    charrnn = [sys.executable, "-m", "charrnn"]
    run([*charrnn, "train", corpus, "--config", config_path, "--max-time", str(seconds),
         "--out", out, "--force", "--quiet", *THREADS])
    with np.load(os.path.join(out, "latest.npz"), allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    cfg = meta["config"]
    best = os.path.join(out, "best.npz")
    score = json.loads(run([*charrnn, "eval", heldout, "--checkpoint", best, "--json", *THREADS]))
    return {"steps": meta["step"], "elapsed": meta["elapsed"],
            "chars_per_sec": meta["step"] * cfg["batch_size"] * cfg["seq_len"] / meta["elapsed"],
            "heldout_loss": score["loss"]}


def race_peer(py: str, config_path: str, corpus: str, seconds: float, out: str, heldout: str) -> dict:
    peer = [py, os.path.join(HERE, "torch_peer.py")]
    trained = json.loads(run([*peer, "train", corpus, "--config", config_path, "--max-time", str(seconds),
                              "--out", out, "--quiet", *THREADS]).strip().splitlines()[-1])
    score = json.loads(run([*peer, "eval", heldout, "--model", out, "--json", *THREADS]))
    return {"steps": trained["steps"], "elapsed": trained["elapsed"],
            "chars_per_sec": trained["chars_per_sec"], "heldout_loss": score["loss"],
            "torch": trained["torch"], "threads": trained["threads"]}


def recipe(config_path: str) -> dict:
    from charrnn.config import resolve

    c = resolve(config_path)
    return {"cell": c.cell, "layers": c.layers, "hidden_size": c.hidden_size, "batch_size": c.batch_size,
            "seq_len": c.seq_len, "optimizer": c.optimizer, "lr": c.lr, "lr_schedule": c.lr_schedule,
            "warmup_steps": c.warmup_steps, "clip": c.clip, "dropout": c.dropout}


def table(rows: list) -> str:
    lines = ["| config | cell | side | updates | chars/s | held-out nats/char | bits/char |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        loss = r["heldout_loss"]
        lines.append(f"| `{r['config']}` | {r['cell']} | {r['side']} | {r['steps']:,} | "
                     f"{r['chars_per_sec']:,.0f} | {loss:.4f} | {loss / math.log(2):.4f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300, help="training time of each run [default: 300]")
    ap.add_argument("--peer-python", default=os.path.join(REPO, ".venv-peer", "bin", "python"),
                    help="a Python with torch (make peer) [default: .venv-peer/bin/python]")
    ap.add_argument("--corpus", default=CORPUS, help="[default: data/shakespeare-full.txt.xz]")
    ap.add_argument("--config", action="append", help="race only these configs [default: configs/shakespeare-*.yaml]")
    ap.add_argument("--out", default=os.path.join(REPO, "five-minutes"), help="runs, held-out text, results.json")
    ap.add_argument("--threads", type=int, default=None,
                    help="--threads N for both sides' commands [default: each side's own default]")
    a = ap.parse_args(argv)
    if a.threads:
        THREADS.extend(["--threads", str(a.threads)])
    try:
        no_torch = subprocess.run([a.peer_python, "-c", "import torch"], capture_output=True).returncode
    except OSError:  # no such interpreter
        no_torch = True
    if no_torch:
        raise SystemExit(f"no torch in {a.peer_python}: run `make peer` first, or pass --peer-python")
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for config_path in a.config or configs():
        name = os.path.relpath(os.path.abspath(config_path), REPO)
        cell = recipe(config_path)["cell"]
        heldout = os.path.join(a.out, "heldout.txt")
        n = write_heldout(a.corpus, config_path, heldout)
        print(f"{name}: {a.seconds:g} s each, held-out {n:,} characters", file=sys.stderr, flush=True)
        for side in ("charrnn", "torch"):
            t0 = time.perf_counter()
            if side == "charrnn":
                r = race_charrnn(config_path, a.corpus, a.seconds, os.path.join(a.out, f"charrnn-{cell}"), heldout)
            else:
                r = race_peer(a.peer_python, config_path, a.corpus, a.seconds,
                              os.path.join(a.out, f"torch-{cell}.pt"), heldout)
            rows.append({"config": name, "cell": cell, "side": side, **r, "recipe": recipe(config_path),
                         "load_average_1min_after": round(os.getloadavg()[0], 2)})
            print(f"  {side}: {r['steps']} updates, {r['chars_per_sec']:,.0f} chars/s, held-out "
                  f"{r['heldout_loss']:.4f} ({time.perf_counter() - t0:.0f} s in all)", file=sys.stderr, flush=True)
    with open(os.path.join(a.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({"seconds": a.seconds, "threads": a.threads, "corpus": os.path.relpath(os.path.abspath(a.corpus), REPO),
                   "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                   "rows": rows}, fh, indent=1)
    print(table(rows))


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


if __name__ == "__main__":
    main()
