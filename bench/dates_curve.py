"""Held-out exact match against training time for the dates example, and where the time goes.

    python bench/dates_curve.py [--every 15] [--config configs/dates.yaml] [--out runs/dates-curve]

Trains with the config exactly as `make translate-demo` does, but stops the run every
`--every` seconds of training (with the SIGINT a Ctrl-C sends: the run saves latest.npz),
scores latest.npz on the 1,000 held-out pairs, and resumes it. Resuming is exact, so the
curve is the one of a single uninterrupted run; the scoring happens outside the training
clock. Needs data/dates/*.tsv (make translate-demo, or data/dates/make_dates.py).
"""
from __future__ import annotations

import argparse
import os
import signal

# One BLAS thread, as `charrnn train --pairs` does: the products are small, and on a shared
# machine threads cost several times the work. Before numpy is imported, to take effect.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from charrnn.config import resolve  # noqa: E402 (after the thread setting)
from charrnn.pairs import Batcher, Encoded, padding_share, read_pairs, split_validation, vocabularies
from charrnn.seq2seq_training import train_pairs
from charrnn.training import Interrupted
from charrnn.translate import evaluate_pairs

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--every", type=float, default=15.0)
    ap.add_argument("--config", default=os.path.join(HERE, "..", "configs", "dates.yaml"))
    ap.add_argument("--out", default="runs/dates-curve")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "data", "dates"))
    args = ap.parse_args()
    config = resolve(args.config)
    train_file, held = os.path.join(args.data, "train.tsv"), read_pairs(os.path.join(args.data, "heldout.tsv"))
    timing, session = {}, {}
    stop_at = [args.every]

    def on_event(e):
        if e["kind"] == "step":
            session.update(e["timing"])
            if e["elapsed"] >= stop_at[0] and e["elapsed"] < (config.max_time or float("inf")):
                os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C: finish the update, save, stop

    print(f"{'seconds':>8} {'step':>6} {'held-out exact':>15} {'held-out loss':>14}")
    first, result = True, None
    while True:
        try:
            result = train_pairs(config, train_file, out=args.out, callback=on_event, force=first,
                                 resume=not first, metrics=False)
        except Interrupted:
            pass
        for k, v in session.items():
            timing[k] = timing.get(k, 0.0) + v
        session.clear()
        first = False
        from charrnn import checkpoint as ckpt

        latest = ckpt.load(os.path.join(args.out, "latest.npz"))
        score = evaluate_pairs(latest, held)
        print(f"{latest.meta['elapsed']:8.1f} {latest.meta['step']:6d} {score.exact_match:15.1%} {score.loss:14.4f}",
              flush=True)
        if result is not None:
            break
        stop_at[0] += args.every
    report(result, timing, config, train_file)


def report(result, timing, config, train_file) -> None:
    pairs = read_pairs(train_file)
    train_set, _ = split_validation(pairs, config.val_fraction, config.seed)
    data = Encoded(train_set, *vocabularies(pairs))
    batcher = Batcher(data, config.batch_size, config.seed)
    share = padding_share(data, batcher.epoch(0))
    total = result.seconds
    chars = result.steps * data.target_chars() / batcher.batches_per_epoch
    print(f"\nthroughput: {chars / total:,.0f} target chars/s ({result.steps} updates of about "
          f"{chars / result.steps:.0f} target chars in {total:.1f} s of training, validation included)")
    parts = {k: timing.get(k, 0.0) for k in ("encoder", "decoder", "output", "update")}
    busy = sum(parts.values())
    print("share of training time: " + ", ".join(f"{k} {v / total:.0%}" for k, v in parts.items())
          + f", validation and the rest {(total - busy) / total:.0%}")
    pad = share["encoder"] * parts["encoder"] + share["decoder"] * parts["decoder"]
    print(f"padding: {share['encoder']:.1%} of encoder steps and {share['decoder']:.1%} of decoder steps are "
          f"padding; about {pad / total:.1%} of the training time (estimated as those shares of each part's time)")


if __name__ == "__main__":
    main()
