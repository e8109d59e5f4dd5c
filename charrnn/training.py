"""The training loop: truncated BPTT over B streams, clipping, an optimizer, checkpoints.

It knows nothing about printing: it reports through `callback(event)`, a dict with a
"kind" of "info", "start", "step", "eval", "saving" (latest.npz is about to be written),
"save" (it was) or "done"; the CLI turns those into a progress bar and metrics.jsonl.
"""
from __future__ import annotations

import hashlib
import math
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from . import checkpoint as ckpt
from . import finetune, optim
from .config import Config
from .data import Corpus, Streams, load_corpus, split
from .errors import CharRNNError, CheckpointError, DivergenceError
from .scoring import score_ids
from .metrics import FILENAME as METRICS_FILE, MetricsRecorder
from .initialization import initial_model
from .model import Model
from .resume import RunState, check_same_run, load_latest
from .vocab import Vocab, id_dtype

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
    losses: list = field(default_factory=list)  # train loss of every update of the run
    val_history: list = field(default_factory=list)  # (step, val loss) of every validation


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def train(config: Config, corpus=None, out: str = "checkpoints", text: Optional[str] = None,
          callback: Optional[Callable[[dict], None]] = None, force: bool = False,
          resume: bool = False, metrics: bool = True) -> Result:
    """Train a model on corpus (a path, '-' or a list of them) or on `text`.

    Checkpoints go to out/latest.npz (every save_every steps and at the end) and
    out/best.npz (whenever validation loss improves). A directory holding another run's
    checkpoints is refused unless force=True, so no trained model is lost by accident.

    resume=True continues the run in out/latest.npz exactly where it stopped (see
    `charrnn.resume`); it must be the same corpus and the same config, except for the
    fields in `config.MAY_CHANGE_ON_RESUME`. Limits count from the start of the run.

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
        corpus_data = load_corpus(corpus, config.encoding)
    else:
        raise CharRNNError("no corpus given")
    vocab, ids = corpus_data.vocab, corpus_data.ids
    latest, best = os.path.join(out, "latest.npz"), os.path.join(out, "best.npz")
    start_from = None
    if resume:
        saved = load_latest(out)
        check_same_run(saved, config, corpus_data.sha256)
        # The run's vocabulary: the corpus's, or a larger one if it was fine-tuned (--init-from).
        vocab, ids = saved.vocab, recode(ids, vocab, saved.vocab)
    elif config.init_from:
        start_from = finetune.start(config, vocab, ids)
        config, vocab, ids = start_from.config, start_from.vocab, start_from.ids
    data = split(ids, config.val_fraction, config.batch_size, config.seq_len)
    streams = Streams(data.train, config.batch_size, config.seq_len, config.tbptt_stride)
    if not resume:
        _check_out_dir(out, force)
    try:  # now, not at the first save: a bad --out should not cost a training run
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise CharRNNError(f"cannot create --out {out}: {exc.strerror or exc}") from None
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
        model = initial_model(config, len(vocab))
    # Dropout's masks come from their own generator, so changing dropout leaves the
    # initialisation alone; its state is model.rng.bit_generator.state.
    model.rng = np.random.default_rng([config.seed, 1])
    opt = optim.from_config(config, model.params)
    state = model.zero_state(config.batch_size)
    run = RunState(hidden=state, rngs={"dropout": model.rng})  # every generator the loop draws from
    if resume:
        run.restore(saved, config, model, opt, streams.chunks_per_epoch)
        run.best_val = _best_seen(best, run.best_val)
        emit({"kind": "info", "message": f"resuming {latest} at step {run.step} "
                                         f"(epoch {run.step / streams.chunks_per_epoch:.2f})"})
    meta_base = {"config": config.to_dict(), "corpus_sha256": corpus_data.sha256,
                 "corpus_chars": len(ids), "train_chars": int(len(data.train)),
                 "val_chars": 0 if data.val is None else int(len(data.val))}
    emit({"kind": "start", "vocab_size": len(vocab), "params": model.num_params(),
          "train_chars": len(data.train), "val_chars": meta_base["val_chars"],
          "max_steps": max_steps, "step": run.step,
          "chars_per_epoch": streams.chunks_per_epoch * streams.B * streams.S})

    step, chunk, state = run.step, run.chunk, run.hidden
    train_loss, val_loss, best_val = run.train_loss, run.val_loss, run.best_val
    losses, val_history = run.losses, run.val_history  # the run's history, appended to below
    stale, patience_best = run.stale, run.patience_best  # for --patience
    chars_per_step = config.batch_size * streams.S  # characters the streams advance per update
    n_updates = n_clipped = 0  # this session's updates, and those whose gradient was clipped
    first_step, before = step, run.elapsed  # where this session starts; time of earlier ones
    start = time.perf_counter() - before  # so elapsed counts the whole run, across resumes

    def finished(elapsed):
        return (max_steps is not None and step >= max_steps) or (
            config.max_time is not None and elapsed >= config.max_time)

    def save(path):
        # Loss and gradients are checked in the loop; this catches weights that overflowed
        # in the update itself, so no checkpoint is ever replaced by a non-finite one.
        for k, p in model.params.items():
            if not np.all(np.isfinite(p)):
                raise DivergenceError(f"training diverged at step {step}: parameter {k} is not finite; "
                                      f"lower the learning rate (--lr {config.lr:g}); {_kept(latest, best)}")
        now = RunState(step=step, chunk=chunk, elapsed=time.perf_counter() - start, train_loss=train_loss,
                       val_loss=val_loss, best_val=best_val, stale=stale, patience_best=patience_best,
                       losses=losses, val_history=val_history, hidden=state, rngs=run.rngs)
        if path == latest:
            emit({"kind": "saving", "path": latest, "step": step})
        meta, history = now.export()
        meta = {**meta_base, **meta, "epoch": step / streams.chunks_per_epoch}
        ckpt.save(path, model.params, vocab, meta, opt.state_dict(), state, history)

    def save_latest():
        save(latest)
        if best_val is None and os.path.exists(best):
            # An earlier run's best.npz (kept until now, as --force allowed overwriting it):
            # sample and eval prefer best.npz, so it must not outlive this run's latest.npz.
            os.unlink(best)
        emit({"kind": "save", "path": latest, "step": step})

    def result(elapsed):
        session = max(elapsed - before, 1e-9)
        return Result(step, step / streams.chunks_per_epoch, train_loss, val_loss, best_val, elapsed,
                      (step - first_step) * chars_per_step / session, latest,
                      best if best_val is not None and os.path.exists(best) else None,
                      list(losses), list(val_history))

    if resume and finished(before):
        emit({"kind": "info", "message": f"the run in {latest} already finished at step {step}; "
                                         f"raise --max-steps, --epochs or --max-time to train further"})
        emit({"kind": "done", "result": result(before)})
        return result(before)

    # Overflow and NaN are caught by the explicit check below, which names the step and the
    # remedy; numpy's own warnings would only add lines of noise on the user's stderr.
    with _stop_signals() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
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
                clip = f"the clip (--clip {config.clip:g})" if config.clip else "turn clipping on (--clip 5)"
                raise DivergenceError(
                    f"training diverged at step {step + 1}: the {what} is not finite; "
                    f"lower the learning rate (--lr {config.lr:g}) or {clip}; {_kept(latest, best)}"
                )
            opt.lr = optim.lr_at(config, step + 1, _progress(step, max_steps, time.perf_counter() - start, config))
            opt.step(model.params, grads)
            state, chunk, step = new_state, chunk + 1, step + 1
            n_updates, n_clipped = n_updates + 1, n_clipped + clipped
            train_loss = loss
            losses.append(loss)
            elapsed = time.perf_counter() - start
            done = finished(elapsed)
            emit({"kind": "step", "step": step, "epoch": step / streams.chunks_per_epoch, "loss": loss,
                  "grad_norm": norm, "clipped": clipped, "clip_fraction": n_clipped / n_updates, "lr": opt.lr,
                  "chars_per_sec": (step - first_step) * chars_per_step / max(elapsed - before, 1e-9),
                  "elapsed": elapsed})
            if data.val is not None and (step % config.eval_every == 0 or done or stop.signum):
                val_loss = validate(model, data.val)
                if not math.isfinite(val_loss):
                    raise DivergenceError(f"training diverged at step {step}: the validation loss is not finite; "
                                          f"lower the learning rate (--lr {config.lr:g}); {_kept(latest, best)}")
                val_history.append((step, val_loss))
                improved = best_val is None or val_loss < best_val
                if improved:
                    best_val = val_loss
                    save(best)
                emit({"kind": "eval", "step": step, "val_loss": val_loss, "best": improved})
                # Patience counts the scheduled validations only: the extra one at a stop (the
                # end of a session, Ctrl-C) must not change when a resumed run stops early.
                scheduled = step % config.eval_every == 0
                if scheduled and (patience_best is None or val_loss < patience_best):
                    patience_best, stale = val_loss, 0
                elif scheduled:
                    stale += 1
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
    out_result = result(time.perf_counter() - start)
    emit({"kind": "done", "result": out_result})
    return out_result


def recode(ids: np.ndarray, old: Vocab, new: Vocab) -> np.ndarray:
    """ids in vocabulary `old` as ids in `new`, which must hold every character of `old`."""
    if not np.all(np.isin(old.codepoints, new.codepoints)):
        raise CheckpointError("the checkpoint's vocabulary lacks characters of the corpus")
    lut = np.searchsorted(new.codepoints, old.codepoints).astype(id_dtype(len(new)))
    return lut[ids]


def _kept(latest: str, best: str) -> str:
    kept = [p for p in (latest, best) if os.path.exists(p)]
    return f"kept the last good checkpoints ({', '.join(kept)})" if kept else "no checkpoint was written"


def _best_seen(best: str, restored: Optional[float]) -> Optional[float]:
    """best.npz may be newer than latest.npz (a crash between the two saves): never
    let a resumed run replace it with a worse model."""
    try:
        val = ckpt.load(best).meta.get("val_loss") if os.path.exists(best) else None
    except CheckpointError:
        return restored
    if not isinstance(val, (int, float)) or isinstance(val, bool):
        return restored
    return val if restored is None else min(val, restored)


def _fan_out(callbacks: list) -> Callable[[dict], None]:
    def emit(event: dict) -> None:
        for cb in callbacks:
            cb(event)

    return emit


def _progress(step: int, max_steps: Optional[int], elapsed: float, config: Config) -> float:
    """How far through the run update `step` is, in [0, 1]: by steps or by time, whichever is further."""
    by_steps = step / max_steps if max_steps else 0.0
    by_time = elapsed / config.max_time if config.max_time else 0.0
    return min(1.0, max(by_steps, by_time))


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
