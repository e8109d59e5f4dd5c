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
from . import finetune, fused, history, optim, previews, threads
from .config import Config
from .data import Corpus, Split, Streams, load_corpus, load_val, split
from .errors import CharRNNError, CheckpointError, DivergenceError
from .initialization import initial_model
from .metrics import FILENAME as METRICS_FILE
from .metrics import MetricsRecorder
from .model import Model
from .resume import RunState, check_same_run, load_latest
from .scoring import score_ids
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
    losses: list = field(default_factory=list)  # train loss of every update of the run
    val_history: list = field(default_factory=list)  # (step, val loss) of every validation
    model: Optional[Model] = field(default=None, repr=False, compare=False)  # the trained model, as in latest
    vocab: Optional[Vocab] = field(default=None, repr=False, compare=False)
    blas_threads: Optional[int] = None  # what the run's updates ran with at the end (threads.Tuner)
    kernels: Optional[str] = None  # the gate maths it ran: numba or numpy (fused.resolve)


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
    This is the `charrnn train` command's policy, as a function: `Run` is the run itself.
    """
    recorder = MetricsRecorder(os.path.join(out, METRICS_FILE), config.log_every) if metrics else None
    run = Run(config, corpus, out, text=text, resume=resume,
              callback=fan_out([c for c in (callback, recorder) if c is not None]))
    prepare_out(out, force, resume)
    return run.train()


def prepare_out(out: str, force: bool = False, resume: bool = False) -> None:
    """The output-directory policy: refuse to overwrite another run's checkpoints unless
    `force` (a resumed run continues its own), create the directory now (a bad --out should
    not cost a training run) and remove what a crash mid-save left there."""
    if not resume:
        _check_out_dir(out, force)
        history.forget(out)  # --force: the replaced run's step-N checkpoints go with its latest.npz
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise CharRNNError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    ckpt.clean_stale(out)


def step_limit(config: Config, per_epoch: int, emit) -> Optional[int]:
    """The run's last step: --max-steps, --epochs (whichever is fewer), or one epoch when no
    limit at all is set (said through emit); None when only --max-time bounds the run."""
    max_steps = config.max_steps
    if config.epochs is not None:
        by_epochs = max(1, math.ceil(config.epochs * per_epoch))
        max_steps = by_epochs if max_steps is None else min(max_steps, by_epochs)
    if max_steps is None and config.max_time is None:
        max_steps = per_epoch
        emit({"kind": "info", "message": "no --max-steps, --epochs or --max-time: training one epoch"})
    return max_steps


def out_of_patience(state, config: Config, loss: float, done: bool, emit) -> bool:
    """Count a validation against config.patience; True (after saying so) when the run should stop.

    Patience counts the scheduled validations only: the extra one at a stop (the end of a
    session, Ctrl-C) must not change when a resumed run stops early. `state` has step,
    patience_best, stale and best_val (a RunState, or the encoder-decoder's).
    """
    scheduled = state.step % config.eval_every == 0
    if scheduled and (state.patience_best is None or loss < state.patience_best):
        state.patience_best, state.stale = loss, 0
    elif scheduled:
        state.stale += 1
    if config.patience is not None and state.stale >= config.patience and not done:
        emit({"kind": "info", "message": f"early stop at step {state.step}: no better validation loss "
                                         f"in {state.stale} validations (best {state.best_val:.4f})"})
        return True
    return False


class Run:
    """One training run, in the order it lives:

        run = Run(config, corpus, out)  # load the corpus; plan a fresh, resumed or fine-tuned start
        run.start()                     # the model, optimizer and carried state (restored on resume)
        run.update()                    # one truncated-BPTT update; repeated until a limit
        run.validate(done)              # on the validation tail, every eval_every updates
        run.save_latest()               # latest.npz, every save_every updates
        run.finish()                    # the Result, with the trained model

    `train()` runs that loop. It reports through `callback(event)` (see the module's
    docstring); code that needs the run itself appends to `after_update` (called with the
    run after every update), `after_validate` (run, improved) and `after_save` (run, path),
    which are called after the matching event. With out=None nothing is written: the model
    lives in `result.model` only.
    """

    def __init__(self, config: Config, corpus=None, out: Optional[str] = "checkpoints",
                 text: Optional[str] = None, callback: Optional[Callable[[dict], None]] = None,
                 resume: bool = False):
        self.emit = callback or (lambda event: None)
        self.out, self.resuming = out, resume
        self.latest = None if out is None else os.path.join(out, "latest.npz")
        self.best = None if out is None else os.path.join(out, "best.npz")
        self.corpus = _read_corpus(corpus, text, config.encoding)
        self.config, self.vocab, self.ids = config, self.corpus.vocab, self.corpus.ids
        self.saved = self.fine_tune = None
        if resume:
            self.saved = load_latest(out)
            check_same_run(self.saved, config, self.corpus.sha256)
            # The run's vocabulary: the corpus's, or a larger one if it was fine-tuned (--init-from).
            if not np.all(np.isin(self.vocab.codepoints, self.saved.vocab.codepoints)):
                raise CheckpointError("the checkpoint's vocabulary lacks characters of the corpus")
            self.vocab, self.ids = self.saved.vocab, self.vocab.recode(self.ids, self.saved.vocab)
        elif config.init_from:
            self.fine_tune = finetune.start(config, self.vocab, self.ids)
            self.config, self.vocab, self.ids = self.fine_tune.config, self.fine_tune.vocab, self.fine_tune.ids
        config = self.config
        self.data = split(self.ids, 0.0 if config.val else config.val_fraction, config.batch_size, config.seq_len)
        if config.val:  # --val files instead of a tail: the whole corpus trains
            self.data = Split(self.data.train, load_val(config.val, self.vocab, config.encoding))
        self.streams = Streams(self.data.train, config.batch_size, config.seq_len, config.tbptt_stride)
        self.model = self.opt = self.state = None  # made by start()
        self.after_update: list = []
        self.after_validate: list = []
        self.after_save: list = []
        self.after_step: list = []  # fn(run): the step is done (updated, validated), not yet saved
        history.attach(self)
        previews.attach(self)

    def start(self) -> "Run":
        """The model (initialised, fine-tuned or restored), its optimizer and the run's state."""
        config, streams = self.config, self.streams
        if self.fine_tune is not None:
            self.emit({"kind": "info", "message": self.fine_tune.message, "added": self.fine_tune.added})
        if self.data.note:
            self.emit({"kind": "info", "message": self.data.note})
        self.max_steps = step_limit(self.config, self.streams.chunks_per_epoch, self.emit)
        if self.fine_tune is not None:
            self.model = self.fine_tune.model
        else:
            self.model = initial_model(config, len(self.vocab))
        self.model.use_kernels(fused.resolve(config.kernels))
        # Dropout's masks come from their own generator, so changing dropout leaves the
        # initialisation alone; update() passes it to the model's training forward.
        self.dropout_rng = np.random.default_rng([config.seed, 1])
        self.opt = optim.from_config(config, self.model.params)
        self.opt.use_kernels(self.model.kernels)
        # Every generator the loop draws from is in the state, to be saved and restored.
        self.state = RunState(hidden=self.model.zero_state(config.batch_size), rngs={"dropout": self.dropout_rng})
        if self.saved is not None:
            self.state.restore(self.saved, config, self.model, self.opt, streams.chunks_per_epoch)
            self.state.best_val = _best_seen(self.best, self.state.best_val)
            self.emit({"kind": "info", "message": f"resuming {self.latest} at step {self.state.step} "
                                                  f"(epoch {self.state.step / streams.chunks_per_epoch:.2f})"})
        val_chars = sum(len(v) for v in val_sets(self.data.val))
        self.meta = {"config": config.to_dict(), "corpus_sha256": self.corpus.sha256,
                     "corpus_chars": len(self.ids), "train_chars": int(len(self.data.train)), "val_chars": val_chars}
        self.emit({"kind": "start", "vocab_size": len(self.vocab), "params": self.model.num_params(),
                   "train_chars": len(self.data.train), "val_chars": val_chars, "max_steps": self.max_steps,
                   "step": self.state.step, "chars_per_epoch": streams.chunks_per_epoch * streams.B * streams.S})
        self.chars_per_step = config.batch_size * streams.S  # characters the streams advance per update
        self.n_updates = self.n_clipped = 0  # this session's updates, and those whose gradient was clipped
        self.first_step, self.before = self.state.step, self.state.elapsed  # this session's start; earlier time
        self.clock = time.perf_counter() - self.before  # so elapsed counts the whole run, across resumes
        self.tuner = threads.tuner(self.model.thread_setter)  # threads per update, by measuring (threads.py)
        return self

    def train(self) -> Result:
        """Update until a limit, validating and saving on their schedules; Ctrl-C saves and stops."""
        if self.state is None:
            self.start()
        if self.resuming and self.finished(self.before):
            self.emit({"kind": "info", "message": f"the run in {self.latest} already finished at step "
                                                  f"{self.state.step}; raise --max-steps, --epochs or "
                                                  f"--max-time to train further"})
            return self.finish(self.before)
        config, run = self.config, self.state
        # Overflow and NaN are caught by the explicit checks, which name the step and the
        # remedy; numpy's own warnings would only add lines of noise on the user's stderr.
        with _stop_signals() as stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while True:
                done = self.finished(self.update())
                if self.data.val is not None and (run.step % config.eval_every == 0 or done or stop.signum):
                    done = self.validate(done)
                for hook in self.after_step:
                    hook(self)
                if run.step % config.save_every == 0 or done or stop.signum:
                    self.save_latest()
                if stop.signum:
                    raise Interrupted(stop.signum, str(self.latest))
                if done:
                    return self.finish()

    def update(self) -> float:
        """One update on the next chunk of the streams; returns the run's elapsed seconds."""
        config, streams, model, run = self.config, self.streams, self.model, self.state
        if run.chunk == streams.chunks_per_epoch:  # a new epoch starts from the streams' beginning
            run.chunk, run.hidden = 0, model.zero_state(config.batch_size)
        x, y = streams.chunk(run.chunk)
        self.tuner.begin()
        loss, new_state = model.forward(x, y, run.hidden, train=True, advance=streams.S, rng=self.dropout_rng)
        grads = model.backward()
        norm, clipped = optim.clip(grads, config.clip, config.clip_mode)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise self.diverged(run.step + 1, "the loss" if not math.isfinite(loss) else "the gradient norm",
                                clip=True)
        progress = _progress(run.step, self.max_steps, time.perf_counter() - self.clock, config)
        self.opt.lr = optim.lr_at(config, run.step + 1, progress)
        self.opt.step(model.params, grads)
        self.tuner.end()
        run.hidden, run.chunk, run.step = new_state, run.chunk + 1, run.step + 1
        self.n_updates, self.n_clipped = self.n_updates + 1, self.n_clipped + clipped
        run.train_loss = loss
        run.losses.append(loss)
        elapsed = time.perf_counter() - self.clock
        self.emit({"kind": "step", "step": run.step, "epoch": run.step / streams.chunks_per_epoch, "loss": loss,
                   "grad_norm": norm, "clipped": clipped, "clip_fraction": self.n_clipped / self.n_updates,
                   "lr": self.opt.lr, "chars_per_sec": self._chars_per_sec(elapsed), "elapsed": elapsed})
        for hook in self.after_update:
            hook(self)
        return elapsed

    def validate(self, done: bool) -> bool:
        """Score the validation tail, saving best.npz if it is the best yet; returns `done`,
        or True when --patience stops the run early."""
        config, run = self.config, self.state
        run.val_loss = validation_loss(self.model, self.data.val)
        if not math.isfinite(run.val_loss):
            raise self.diverged(run.step, "the validation loss")
        run.val_history.append((run.step, run.val_loss))
        improved = run.best_val is None or run.val_loss < run.best_val
        if improved:
            run.best_val = run.val_loss
            self.save(self.best)
        self.emit({"kind": "eval", "step": run.step, "val_loss": run.val_loss, "best": improved})
        for hook in self.after_validate:
            hook(self, improved)
        return out_of_patience(run, config, run.val_loss, done, self.emit) or done

    def save_latest(self) -> None:
        """Write latest.npz, and drop a best.npz that an earlier run left (--force)."""
        self.save(self.latest)
        if self.out is None:
            return
        if self.state.best_val is None and os.path.exists(self.best):
            # An earlier run's best.npz (kept until now, as --force allowed overwriting it):
            # sample and eval prefer best.npz, so it must not outlive this run's latest.npz.
            os.unlink(self.best)
        self.emit({"kind": "save", "path": self.latest, "step": self.state.step})
        for hook in self.after_save:
            hook(self, self.latest)

    def save(self, path: Optional[str]) -> None:
        """Write the run as it is now to `path` (nothing when the run has no --out)."""
        run = self.state
        # Loss and gradients are checked in the loop; this catches weights that overflowed
        # in the update itself, so no checkpoint is ever replaced by a non-finite one.
        for k, p in self.model.params.items():
            if not np.all(np.isfinite(p)):
                raise self.diverged(run.step, f"parameter {k}")
        if path is None:
            return
        run.elapsed = time.perf_counter() - self.clock
        if path == self.latest:
            self.emit({"kind": "saving", "path": self.latest, "step": run.step})
        meta, history = run.export()
        meta = {**self.meta, **meta, "epoch": run.step / self.streams.chunks_per_epoch}
        ckpt.save(path, self.model.params, self.vocab, meta, self.opt.state_dict(), run.hidden, history)

    def finish(self, elapsed: Optional[float] = None) -> Result:
        """The run's Result, with its model and vocabulary; emits "done"."""
        run = self.state
        elapsed = time.perf_counter() - self.clock if elapsed is None else elapsed
        best = self.best if run.best_val is not None and self.best and os.path.exists(self.best) else None
        result = Result(run.step, run.step / self.streams.chunks_per_epoch, run.train_loss, run.val_loss,
                        run.best_val, elapsed, self._chars_per_sec(elapsed), self.latest, best,
                        list(run.losses), list(run.val_history), self.model, self.vocab, self.tuner.current,
                        self.model.kernels)
        self.emit({"kind": "done", "result": result})
        return result

    def finished(self, elapsed: float) -> bool:
        max_steps, max_time = self.max_steps, self.config.max_time
        return (max_steps is not None and self.state.step >= max_steps) or (
            max_time is not None and elapsed >= max_time)

    def diverged(self, step: int, what: str, clip: bool = False) -> DivergenceError:
        """The one wording of every divergence: where, what, the remedy, and what was kept."""
        config = self.config
        remedy = f"lower the learning rate (--lr {config.lr:g})"
        if clip:
            remedy += f" or the clip (--clip {config.clip:g})" if config.clip else " or turn clipping on (--clip 5)"
        return DivergenceError(f"training diverged at step {step}: {what} is not finite; {remedy}; "
                               f"{_kept(self.latest, self.best)}")


    def _chars_per_sec(self, elapsed: float) -> float:
        return (self.state.step - self.first_step) * self.chars_per_step / max(elapsed - self.before, 1e-9)


def _read_corpus(corpus, text: Optional[str], encoding: str) -> Corpus:
    if text is not None:
        if not text:
            raise CharRNNError("the corpus is empty")
        vocab = Vocab.from_text(text)
        return Corpus(vocab.encode(text), vocab, text_hash(text))
    if corpus is None:
        raise CharRNNError("no corpus given")
    return load_corpus(corpus, encoding)


def _kept(latest: Optional[str], best: Optional[str]) -> str:
    kept = [p for p in (latest, best) if p and os.path.exists(p)]
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


def fan_out(callbacks: list) -> Callable[[dict], None]:
    def emit(event: dict) -> None:
        for cb in callbacks:
            cb(event)

    return emit


def _progress(step: int, max_steps: Optional[int], elapsed: float, config: Config) -> float:
    """How far through the run update `step` is, in [0, 1]: by steps or by time, whichever is further."""
    by_steps = step / max_steps if max_steps else 0.0
    by_time = elapsed / config.max_time if config.max_time else 0.0
    return min(1.0, max(by_steps, by_time))


def validation_loss(model: Model, val) -> float:
    """The loss on the validation tail, or on several --val texts together (per character)."""
    scores = []
    for ids in val_sets(val):
        streams = max(1, min(128, len(ids) // VAL_STREAM_CHARS))
        scores.append(score_ids(model, ids, streams=streams))
    if len(scores) == 1:
        return scores[0].loss
    return sum(s.loss * s.predictions for s in scores) / sum(s.predictions for s in scores)


def val_sets(val) -> list:
    """The validation texts' ids as a list: none, the tail, or the --val files."""
    return [] if val is None else val if isinstance(val, list) else [val]


def _check_out_dir(out: str, force: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise CharRNNError(f"--out {out} exists and is not a directory")
    existing = [n for n in ("latest.npz", "best.npz") if os.path.exists(os.path.join(out, n))]
    existing += history.kept(out)
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
