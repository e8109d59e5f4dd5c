"""Training the encoder-decoder on a pairs file: `charrnn train --pairs PAIRS.tsv`.

The loop is the language model's in everything but the data: the same config, optimizers,
clipping, schedules, checkpoints (best.npz on validation loss, latest.npz every save_every
steps and at the end), exact resume, SIGINT/SIGTERM handling, divergence guard, metrics and
events (see training in train.py). An update takes the next batch of pairs of similar
length (pairs.Batcher); the data cursor is the step itself, since the batches of epoch k
depend only on (seed, k). Validation is on a random share of the pairs (val_fraction):
the loss per target char, and the share of pairs that greedy decoding gets exactly right.
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable, Optional

import numpy as np

from . import checkpoint as ckpt
from . import optim, threads
from .config import Config
from .errors import CharRNNError, CheckpointError, DivergenceError
from .metrics import FILENAME as METRICS_FILE
from .metrics import MetricsRecorder
from .pairs import Batcher, Encoded, padding_share, split_validation, vocabularies
from .seq2seq import Seq2Seq
from .training import (
    Interrupted,
    Result,
    _check_out_dir,
    _kept,
    _progress,
    _stop_signals,
    fan_out,
    out_of_patience,
    step_limit,
    text_hash,
)
from .translate import score_encoded


def train_pairs(config: Config, pairs_path: str, out: str = "checkpoints",
                callback: Optional[Callable[[dict], None]] = None, force: bool = False,
                resume: bool = False, metrics: bool = True) -> Result:
    """Train an encoder-decoder on the pairs in `pairs_path` ('-' for stdin); see the module doc."""
    from .data import read_text
    from .pairs import parse_pairs
    from .resume import check_same_run, load_latest

    if config.dropout:
        raise CharRNNError("dropout: the encoder-decoder does not use dropout; drop --dropout")
    if config.encoding == "bytes":
        raise CharRNNError("encoding: byte-level models are language models; --pairs reads text (--encoding NAME)")
    if config.init_from:
        raise CharRNNError("init_from: fine-tuning applies to language models, not to --pairs")
    recorder = MetricsRecorder(os.path.join(out, METRICS_FILE), config.log_every) if metrics else None
    emit = fan_out([c for c in (callback, recorder) if c is not None])
    text = read_text(pairs_path, config.encoding)
    name = "<stdin>" if pairs_path == "-" else pairs_path
    try:
        pairs = parse_pairs(text)
    except CharRNNError as exc:
        raise CharRNNError(f"{name}: {exc}") from None
    sha = text_hash(text)
    if resume:
        saved = load_latest(out)
        if saved.task != "seq2seq":
            raise CheckpointError(f"cannot resume from {saved.path}: it is a language model, not an encoder-decoder")
        check_same_run(saved, config, sha)
        src_vocab, tgt_vocab = saved.src_vocab, saved.vocab
    else:
        src_vocab, tgt_vocab = vocabularies(pairs)
    train_set, val_set = split_validation(pairs, config.val_fraction, config.seed)
    data = Encoded(train_set, src_vocab, tgt_vocab)
    val = Encoded(val_set, src_vocab, tgt_vocab) if val_set is not None else None
    batcher = Batcher(data, config.batch_size, config.seed)
    if not resume:
        _check_out_dir(out, force)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise CharRNNError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    ckpt.clean_stale(out)
    if val is None:
        emit({"kind": "info", "message": f"{len(pairs)} pairs: too few for a validation share; training on all"})

    per_epoch = batcher.batches_per_epoch
    max_steps = step_limit(config, per_epoch, emit)

    model = Seq2Seq.from_config(config, len(src_vocab), len(tgt_vocab)).init(config.seed)
    opt = optim.from_config(config, model.params)
    run = _State()
    if resume:
        run.restore(saved, model, opt)
        emit({"kind": "info", "message": f"resuming {saved.path} at step {run.step} (epoch {run.step / per_epoch:.2f})"})
    longest = max(len(t) for t in pairs.targets)
    meta_base = {"task": "seq2seq", "config": config.to_dict(), "corpus_sha256": sha, "pairs": len(pairs),
                 "train_pairs": len(data), "val_pairs": 0 if val is None else len(val),
                 "max_output": max(2 * longest, longest + 20)}
    pad = padding_share(data, batcher.epoch(0))
    emit({"kind": "info", "message": f"{len(pairs):,} pairs: {len(data):,} to train on, {0 if val is None else len(val):,} "
                                     f"to validate; {len(src_vocab)} source and {len(tgt_vocab) - 2} target characters; "
                                     f"padding {pad['all']:.1%} of the steps"})
    emit({"kind": "start", "vocab_size": len(tgt_vocab), "src_vocab_size": len(src_vocab),
          "params": model.num_params(), "train_chars": data.target_chars(),
          "val_chars": 0 if val is None else val.target_chars(), "max_steps": max_steps, "step": run.step,
          "train_pairs": len(data), "val_pairs": 0 if val is None else len(val),
          "padding": pad})
    loop = _Loop(config, model, opt, batcher, val, run, emit, out, max_steps,
                 lambda path: ckpt.save(path, model.params, tgt_vocab, {**meta_base, **run.meta(per_epoch)},
                                        opt.state_dict(), None, run.history(), src_vocab=src_vocab))
    return loop.go()


class _State:
    """Where a run is between updates (the pairs version of resume.RunState)."""

    def __init__(self):
        self.step, self.elapsed = 0, 0.0
        self.train_loss = self.val_loss = self.best_val = self.val_exact = None
        self.losses, self.val_history = [], []
        self.stale, self.patience_best = 0, None

    def meta(self, per_epoch: int) -> dict:
        return {"step": self.step, "epoch": self.step / per_epoch, "elapsed": self.elapsed,
                "train_loss": self.train_loss, "val_loss": self.val_loss, "best_val_loss": self.best_val,
                "val_exact_match": self.val_exact, "stale": self.stale, "patience_best": self.patience_best}

    def history(self) -> dict:
        return {"train_loss": np.asarray(self.losses, dtype=np.float64),
                "val_loss": np.asarray(self.val_history, dtype=np.float64).reshape(-1, 2)}

    def restore(self, ck, model, opt) -> None:
        meta = ck.meta

        def bad(why):
            return CheckpointError(f"cannot resume from {ck.path}: {why}")

        step = meta.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise bad("its step counter is missing or invalid")
        losses, vals = ck.history.get("train_loss"), ck.history.get("val_loss")
        if losses is None or losses.ndim != 1 or len(losses) != step:
            raise bad(f"its loss history does not cover its {step} steps")
        if vals is None or vals.ndim != 2 or vals.shape[1] != 2:
            raise bad("its validation history is malformed")
        elapsed = meta.get("elapsed", 0.0)
        if not isinstance(elapsed, (int, float)) or not math.isfinite(elapsed) or elapsed < 0:
            raise bad("its elapsed time is invalid")
        try:
            opt.load_state_dict(ck.optim)
        except (KeyError, ValueError, TypeError) as exc:
            raise bad(f"its optimizer state does not fit ({exc})") from None
        model.set_params(ck.params)
        self.step, self.elapsed = step, float(elapsed)
        self.train_loss, self.val_loss = meta.get("train_loss"), meta.get("val_loss")
        self.best_val, self.val_exact = meta.get("best_val_loss"), meta.get("val_exact_match")
        self.losses = losses.tolist()
        self.val_history = [(int(s), float(v)) for s, v in vals]
        self.stale, self.patience_best = int(meta.get("stale", 0) or 0), meta.get("patience_best")


class _Loop:
    """One training session: update, validate, save, until a limit, a signal or divergence."""

    def __init__(self, config, model, opt, batcher, val, run, emit, out, max_steps, write):
        self.config, self.model, self.opt, self.batcher, self.val = config, model, opt, batcher, val
        self.run, self.emit, self.max_steps, self.write = run, emit, max_steps, write
        self.latest, self.best = os.path.join(out, "latest.npz"), os.path.join(out, "best.npz")
        self.timing = {"encoder": 0.0, "decoder": 0.0, "output": 0.0, "update": 0.0}
        self.n_updates = self.n_clipped = 0  # this session's updates, and those whose gradient was clipped
        self.tuner = threads.tuner()  # BLAS threads per update, by measuring (threads.py)

    def finished(self, elapsed: float) -> bool:
        c = self.config
        return (self.max_steps is not None and self.run.step >= self.max_steps) or (
            c.max_time is not None and elapsed >= c.max_time)

    def save(self, path: str) -> None:
        for k, p in self.model.params.items():
            if not np.all(np.isfinite(p)):
                raise DivergenceError(f"training diverged at step {self.run.step}: parameter {k} is not finite; "
                                      f"lower the learning rate (--lr {self.config.lr:g}); {_kept(self.latest, self.best)}")
        self.run.elapsed = time.perf_counter() - self.start
        if path == self.latest:
            self.emit({"kind": "saving", "path": path, "step": self.run.step})
        self.write(path)
        if path == self.latest:
            if self.run.best_val is None and os.path.exists(self.best):
                os.unlink(self.best)  # an earlier run's best.npz must not outlive this run's latest
            self.emit({"kind": "save", "path": path, "step": self.run.step})

    def result(self, elapsed: float) -> Result:
        r, per_epoch = self.run, self.batcher.batches_per_epoch
        session = max(elapsed - self.before, 1e-9)
        return Result(r.step, r.step / per_epoch, r.train_loss, r.val_loss, r.best_val, elapsed,
                      self.chars / session, self.latest,
                      self.best if r.best_val is not None and os.path.exists(self.best) else None,
                      list(r.losses), list(r.val_history), blas_threads=self.tuner.current)

    def go(self) -> Result:
        r = self.run
        self.before, self.chars, self.first = r.elapsed, 0, r.step
        self.start = time.perf_counter() - self.before
        if self.finished(self.before):
            self.emit({"kind": "info", "message": f"the run in {self.latest} already finished at step {r.step}; "
                                                  f"raise --max-steps, --epochs or --max-time to train further"})
            self.emit({"kind": "done", "result": self.result(self.before)})
            return self.result(self.before)
        with _stop_signals() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            epoch_k, batches = None, None
            while True:
                k, i = divmod(r.step, self.batcher.batches_per_epoch)
                if k != epoch_k:
                    epoch_k, batches = k, self.batcher.epoch(k)
                done = self.update(self.batcher.data.batch(batches[i]), stop)
                if stop.signum:
                    raise Interrupted(stop.signum, self.latest)
                if done:
                    break
        res = self.result(time.perf_counter() - self.start)
        self.emit({"kind": "done", "result": res, "timing": dict(self.timing)})
        return res

    def update(self, batch, stop) -> bool:
        r, config, model = self.run, self.config, self.model
        self.tuner.begin()
        loss = model.forward(batch)
        grads = model.backward()
        t0 = time.perf_counter()
        norm, clipped = optim.clip(grads, config.clip, config.clip_mode)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            what = "loss" if not math.isfinite(loss) else "gradient norm"
            clip = f"the clip (--clip {config.clip:g})" if config.clip else "turn clipping on (--clip 5)"
            raise DivergenceError(f"training diverged at step {r.step + 1}: the {what} is not finite; lower the "
                                  f"learning rate (--lr {config.lr:g}) or {clip}; {_kept(self.latest, self.best)}")
        self.opt.lr = optim.lr_at(config, r.step + 1,
                                  _progress(r.step, self.max_steps, time.perf_counter() - self.start, config))
        self.opt.step(model.params, grads)
        self.tuner.end(work=batch.target_chars())  # batches differ in length: time per character
        for part in ("encoder", "decoder", "output"):
            self.timing[part] += model.timing[part]
        self.timing["update"] += time.perf_counter() - t0
        r.step += 1
        r.train_loss = loss
        r.losses.append(loss)
        self.chars += batch.target_chars()
        self.n_updates += 1
        self.n_clipped += clipped
        elapsed = time.perf_counter() - self.start
        done = self.finished(elapsed)
        self.emit({"kind": "step", "step": r.step, "epoch": r.step / self.batcher.batches_per_epoch, "loss": loss,
                   "grad_norm": norm, "clipped": clipped, "clip_fraction": self.n_clipped / self.n_updates,
                   "lr": self.opt.lr, "chars_per_sec": self.chars / max(elapsed - self.before, 1e-9),
                   "elapsed": elapsed, "timing": self.timing})  # this session's seconds by part, so far
        if self.val is not None and (r.step % config.eval_every == 0 or done or stop.signum):
            done = self.validate(done) or done
        if r.step % config.save_every == 0 or done or stop.signum:
            self.save(self.latest)
        return done

    def validate(self, done: bool) -> bool:
        """Validation loss and exact match; best.npz on a better loss; True to stop early (patience)."""
        r, config = self.run, self.config
        score = score_encoded(self.model, self.val)
        if not math.isfinite(score.loss):
            raise DivergenceError(f"training diverged at step {r.step}: the validation loss is not finite; "
                                  f"lower the learning rate (--lr {config.lr:g}); {_kept(self.latest, self.best)}")
        r.val_loss, r.val_exact = score.loss, score.exact_match
        r.val_history.append((r.step, score.loss))
        improved = r.best_val is None or score.loss < r.best_val
        if improved:
            r.best_val = score.loss
            self.save(self.best)
        self.emit({"kind": "eval", "step": r.step, "val_loss": score.loss, "best": improved,
                   "val_exact_match": score.exact_match})
        return out_of_patience(r, config, score.loss, done, self.emit)
