#!/usr/bin/env python3
"""The sha256 of every array a fixed-seed, fixed-step training run leaves in its checkpoint.

A refactor that claims "behaviour unchanged" must leave these bitwise the same: the
parameters, the optimizer state, the carried hidden state, the run history and the
metadata (less the wall-clock fields). The config is kept as it is (meta/config): a field
added to Config since the other fingerprint is reported, not counted as a difference.
Runs: each cell (two layers, dropout, validation, a TBPTT stride), a run stopped and
resumed, and a fine-tune onto new characters.

usage: python bench/fingerprint.py [--out FILE.json] [--compare FILE.json]
With --compare, exits 1 naming every array whose hash differs from FILE's.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile

import numpy as np

import charrnn
from charrnn.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALL_CLOCK = ("elapsed",)  # meta fields that measure time, not the run


def corpus() -> str:
    with open(os.path.join(REPO, "data", "shakespeare.txt"), encoding="utf-8") as fh:
        return fh.read(20000)


def config(**changes) -> Config:
    base = dict(hidden_size=24, layers=2, dropout=0.1, batch_size=4, seq_len=16, tbptt_stride=12,
                lr=5e-3, max_steps=40, eval_every=10, save_every=15, val_fraction=0.1, seed=3)
    base.update(changes)
    return Config(**base)


def hashes(path: str) -> dict:
    out = {}
    with np.load(path, allow_pickle=False) as z:
        for name in sorted(z.files):
            a = z[name]
            if name == "meta":
                meta = {k: v for k, v in json.loads(str(a)).items() if k not in WALL_CLOCK}
                if meta["config"].get("init_from"):  # a temporary directory's name
                    meta["config"]["init_from"] = os.path.basename(meta["config"]["init_from"])
                # The config apart: a field added to Config changes it, not the run.
                out["meta/config"] = meta.pop("config")
                data = json.dumps(meta, sort_keys=True).encode()
            else:
                data = a.dtype.str.encode() + repr(a.shape).encode() + np.ascontiguousarray(a).tobytes()
            out[name] = _sha(data)
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint() -> dict:
    text = corpus()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in ("elman", "lstm", "gru"):
            out = os.path.join(tmp, cell)
            charrnn.train(config(cell=cell), text=text, out=out, metrics=False)
            runs[cell] = hashes(os.path.join(out, "latest.npz"))
            runs[cell + "/best"] = hashes(os.path.join(out, "best.npz"))
        out = os.path.join(tmp, "resumed")
        charrnn.train(config(cell="lstm", max_steps=25), text=text, out=out, metrics=False)
        charrnn.train(config(cell="lstm", max_steps=40), text=text, out=out, metrics=False, resume=True)
        runs["lstm/resumed"] = hashes(os.path.join(out, "latest.npz"))
        out = os.path.join(tmp, "finetuned")
        charrnn.train(config(cell="gru", init_from=os.path.join(tmp, "gru", "latest.npz"), max_steps=20),
                      text=text.upper() + "{}~", out=out, metrics=False)
        runs["gru/finetuned"] = hashes(os.path.join(out, "latest.npz"))
        out = os.path.join(tmp, "float64")
        charrnn.train(config(dtype="float64", layers=1, dropout=0.0, optimizer="rmsprop"),
                      text=text, out=out, metrics=False)
        runs["elman/float64"] = hashes(os.path.join(out, "latest.npz"))
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the fingerprint here (JSON)")
    ap.add_argument("--compare", help="a fingerprint written earlier to compare with")
    args = ap.parse_args()
    runs = fingerprint()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(runs, fh, indent=1, sort_keys=True)
    n = sum(len(v) for v in runs.values())
    if not args.compare:
        print(f"{len(runs)} runs, {n} arrays hashed")
        return 0
    with open(args.compare, encoding="utf-8") as fh:
        before = json.load(fh)
    differ, added = [], set()
    for run in sorted(set(before) | set(runs)):
        old, new = before.get(run, {}), runs.get(run, {})
        for name in sorted(set(old) | set(new)):
            if name == "meta/config" and name in old and name in new:
                added |= {f"{k}={v!r}" for k, v in new[name].items() if k not in old[name]}
                old_c, new_c = old[name], {k: v for k, v in new[name].items() if k in old[name]}
                if old_c != new_c:
                    differ.append(f"{run}:{name}")
            elif old.get(name) != new.get(name):
                differ.append(f"{run}:{name}")
    for d in differ:
        print(f"differs: {d}")
    if added:
        print(f"config fields new since {args.compare} (not counted): {', '.join(sorted(added))}")
    print(f"{len(runs)} runs, {n} arrays: {'all bitwise the same' if not differ else f'{len(differ)} differ'}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
