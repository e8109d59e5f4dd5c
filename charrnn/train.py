"""The training loop: truncated BPTT over B streams, clipping, an optimizer, checkpoints.

It knows nothing about printing: it reports through `callback(event)`, a dict with a
"kind" of "info", "step", "eval", "save" or "done"; the CLI turns those into a progress bar.
"""
from __future__ import annotations

import hashlib
import math
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import checkpoint as ckpt
from . import finetune, optim
from .config import Config
from .data import Corpus, Streams, load_corpus, split
from .errors import CharRNNError, DivergenceError
from .evaluate import score_ids
from .metrics import FILENAME as METRICS_FILE, MetricsRecorder
from .model import Model
from .vocab import Vocab

VAL_STREAM_CHARS = 2048  # validation runs the tail as streams of at least this many chars


class Interrupted(CharRNNError):
    """Training stopped by SIGINT/SIGTERM after saving latest.npz."""

    def __init__(self, signum: int, path: str):
        self.signum, self.path = signum, path
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}; saved {path}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class Result:
    steps: int
    epoch: float
    train_loss: float
    val_loss: Optional[float]
    best_val_loss: Optional[float]
    seconds: float
    chars_per_sec: float
    latest: str
    best: Optional[str]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def train(config: Config, corpus=None, out: str = "checkpoints", text: Optional[str] = None,
          callback: Optional[Callable[[dict], None]] = None, force: bool = False,
          metrics: bool = True) -> Result:
    """Train a model on corpus (a path, '-' or a list of them) or on `text`.

    Checkpoints go to out/latest.npz (every save_every steps and at the end) and
    out/best.npz (whenever validation loss improves). A directory holding another run's
    checkpoints is refused unless force=True, so no trained model is lost by accident.
    With metrics=True, out/metrics.jsonl gets a row every config.log_every steps (metrics.py).
    """
    recorder = MetricsRecorder(os.path.join(out, METRICS_FILE), config.log_every) if metrics else None
    emit = _fan_out([c for c in (callback, recorder) if c is not None])
    if text is not None:
        if not text:
            raise CharRNNError("the corpus is empty")
        vocab = Vocab.from_text(text)
        corpus_data = Corpus(vocab.encode(text), vocab, text_hash(text))
    elif corpus is not None:
        corpus_data = load_corpus(corpus)
    else:
        raise CharRNNError("no corpus given")
    vocab, ids = corpus_data.vocab, corpus_data.ids
    start_from = None
    if config.init_from:
        start_from = finetune.start(config, vocab, ids)
        config, vocab, ids = start_from.config, start_from.vocab, start_from.ids
    data = split(ids, config.val_fraction, config.batch_size, config.seq_len)
    streams = Streams(data.train, config.batch_size, config.seq_len, config.tbptt_stride)
    latest, best = os.path.join(out, "latest.npz"), os.path.join(out, "best.npz")
    _check_out_dir(out, force)
    ckpt.clean_stale(out)
    if start_from is not None:
        emit({"kind": "info", "message": start_from.message, "added": start_from.added})
    if data.note:
        emit({"kind": "info", "message": data.note})

    max_steps = config.max_steps
    if config.epochs is not None:
        by_epochs = max(1, math.ceil(config.epochs * streams.chunks_per_epoch))
        max_steps = by_epochs if max_steps is None else min(max_steps, by_epochs)
    if max_steps is None and config.max_time is None:
        max_steps = streams.chunks_per_epoch
        emit({"kind": "info", "message": "no --max-steps, --epochs or --max-time: training one epoch"})

    if start_from is not None:
        model = start_from.model
    else:
        model = Model.from_config(config, len(vocab)).init(config.seed)
    # Dropout's masks come from their own generator, so changing dropout leaves the
    # initialisation alone; its state is model.rng.bit_generator.state.
    model.rng = np.random.default_rng([config.seed, 1])
    opt = optim.from_config(config, model.params)
    state = model.zero_state(config.batch_size)
    meta_base = {"config": config.to_dict(), "corpus_sha256": corpus_data.sha256,
                 "corpus_chars": len(ids), "train_chars": int(len(data.train)),
                 "val_chars": 0 if data.val is None else int(len(data.val))}
    emit({"kind": "start", "vocab_size": len(vocab), "params": model.num_params(),
          "train_chars": len(data.train), "val_chars": meta_base["val_chars"],
          "max_steps": max_steps, "chars_per_epoch": streams.chunks_per_epoch * streams.B * streams.S})

    step, chunk = 0, 0
    train_loss = val_loss = best_val = None
    stale = 0  # validations since the best one, for --patience
    chars_per_step = config.batch_size * streams.S  # characters the streams advance per update
    n_updates = n_clipped = 0  # this session's updates, and those whose gradient was clipped
    start = time.perf_counter()

    def meta(extra=None):
        return {**meta_base, "step": step, "epoch": step / streams.chunks_per_epoch, "chunk": chunk,
                "train_loss": train_loss, "val_loss": val_loss, "best_val_loss": best_val,
                "optim_t": opt.t, **(extra or {})}

    def save_latest():
        ckpt.save(latest, model.params, vocab, meta(), opt.state_dict(), state)
        if best_val is None and os.path.exists(best):
            # An earlier run's best.npz (kept until now, as --force allowed overwriting it):
            # sample and eval prefer best.npz, so it must not outlive this run's latest.npz.
            os.unlink(best)
        emit({"kind": "save", "path": latest, "step": step})

    # Overflow and NaN are caught by the explicit check below, which names the step and the
    # remedy; numpy's own warnings would only add lines of noise on the user's stderr.
    with _stop_signals() as stop, np.errstate(over="ignore", invalid="ignore"):
        while True:
            if chunk == streams.chunks_per_epoch:  # a new epoch starts from the streams' beginning
                chunk = 0
                state = model.zero_state(config.batch_size)
            x, y = streams.chunk(chunk)
            loss, new_state = model.forward(x, y, state, train=True, advance=streams.S)
            grads = model.backward()
            norm, clipped = optim.clip(grads, config.clip, config.clip_mode)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                what = "loss" if not math.isfinite(loss) else "gradient norm"
                raise DivergenceError(
                    f"training diverged at step {step + 1}: the {what} is not finite; "
                    f"lower the learning rate (--lr {config.lr:g}) or the clip (--clip {config.clip:g}); "
                    f"the last good checkpoints are kept"
                )
            opt.lr = optim.lr_at(config, step + 1, _progress(step, max_steps, time.perf_counter() - start, config))
            opt.step(model.params, grads)
            state, chunk, step = new_state, chunk + 1, step + 1
            n_updates, n_clipped = n_updates + 1, n_clipped + clipped
            train_loss = loss
            elapsed = time.perf_counter() - start
            done = (max_steps is not None and step >= max_steps) or (
                config.max_time is not None and elapsed >= config.max_time)
            emit({"kind": "step", "step": step, "epoch": step / streams.chunks_per_epoch, "loss": loss,
                  "grad_norm": norm, "clipped": clipped, "clip_fraction": n_clipped / n_updates, "lr": opt.lr,
                  "chars_per_sec": step * chars_per_step / elapsed, "elapsed": elapsed})
            if data.val is not None and (step % config.eval_every == 0 or done or stop.signum):
                val_loss = validate(model, data.val)
                improved = best_val is None or val_loss < best_val
                if improved:
                    best_val, stale = val_loss, 0
                    ckpt.save(best, model.params, vocab, meta(), opt.state_dict(), state)
                else:
                    stale += 1
                emit({"kind": "eval", "step": step, "val_loss": val_loss, "best": improved})
                if config.patience is not None and stale >= config.patience and not done:
                    emit({"kind": "info", "message": f"early stop at step {step}: no better validation loss "
                                                     f"in {stale} validations (best {best_val:.4f})"})
                    done = True
            if step % config.save_every == 0 or done or stop.signum:
                save_latest()
            if stop.signum:
                raise Interrupted(stop.signum, latest)
            if done:
                break
    elapsed = time.perf_counter() - start
    result = Result(step, step / streams.chunks_per_epoch, train_loss, val_loss, best_val, elapsed,
                    step * chars_per_step / elapsed, latest, best if best_val is not None else None)
    emit({"kind": "done", "result": result})
    return result


def _progress(step: int, max_steps: Optional[int], elapsed: float, config: Config) -> float:
    """How far through the run update `step` is, in [0, 1]: by steps or by time, whichever is further."""
    by_steps = step / max_steps if max_steps else 0.0
    by_time = elapsed / config.max_time if config.max_time else 0.0
    return min(1.0, max(by_steps, by_time))


def _fan_out(callbacks: list) -> Callable[[dict], None]:
    def emit(event: dict) -> None:
        for cb in callbacks:
            cb(event)

    return emit


def validate(model: Model, val_ids: np.ndarray) -> float:
    streams = max(1, min(128, len(val_ids) // VAL_STREAM_CHARS))
    return score_ids(model, val_ids, streams=streams).loss


def _check_out_dir(out: str, force: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise CharRNNError(f"--out {out} exists and is not a directory")
    existing = [n for n in ("latest.npz", "best.npz") if os.path.exists(os.path.join(out, n))]
    if existing and not force:
        raise CharRNNError(
            f"{out}/ already holds checkpoints ({', '.join(existing)}); "
            f"use --force to overwrite them or --out DIR for a new directory"
        )


class _StopFlag:
    signum = 0


@contextmanager
def _stop_signals():
    """SIGINT and SIGTERM finish the current update, then save and stop; a second one aborts.

    Stopping between updates, never inside one, is what keeps the saved state consistent.
    """
    import threading

    flag = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.signum:
            raise KeyboardInterrupt
        flag.signum = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
