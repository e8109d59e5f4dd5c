"""The state of a training run between two updates, and how it goes into a checkpoint and back.

Resuming is exact: a run stopped after k updates and resumed ends with bitwise the same
weights as one that never stopped. That holds because everything the next update reads
is saved: the parameters, the optimizer's whole `state_dict()` (moments and step counter;
the learning-rate schedule is a function of the step), the state of every random
generator, the data cursor (`chunk`), the hidden state carried into the next chunk, and
the run's history (losses, best validation loss, elapsed time).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np

from .checkpoint import is_int, is_number
from .config import MAY_CHANGE_ON_RESUME, Config
from .errors import CharRNNError, CheckpointError


@dataclass
class RunState:
    """Where a run is: everything but the parameters and the optimizer, which own their state."""

    step: int = 0  # updates done
    chunk: int = 0  # the next chunk of the epoch to train on (the data cursor)
    elapsed: float = 0.0  # seconds of training, summed over every session of the run
    train_loss: Optional[float] = None
    val_loss: Optional[float] = None
    best_val: Optional[float] = None
    stale: int = 0  # scheduled validations since the best of them, for --patience
    patience_best: Optional[float] = None  # the best of them
    losses: list = field(default_factory=list)  # train loss of every update, in order
    val_history: list = field(default_factory=list)  # (step, val loss) of every validation
    hidden: list = field(default_factory=list)  # carried hidden state per layer, (B, H)
    rngs: dict = field(default_factory=dict)  # name -> np.random.Generator used by training

    def export(self) -> tuple[dict, dict]:
        """(meta entries, history arrays) to store in a checkpoint."""
        meta = {"step": self.step, "chunk": self.chunk, "elapsed": self.elapsed,
                "train_loss": self.train_loss, "val_loss": self.val_loss,
                "best_val_loss": self.best_val, "stale": self.stale,
                "patience_best": self.patience_best,
                "rng": {name: g.bit_generator.state for name, g in self.rngs.items()}}
        history = {"train_loss": np.asarray(self.losses, dtype=np.float64),
                   "val_loss": np.asarray(self.val_history, dtype=np.float64).reshape(-1, 2)}
        return meta, history

    def restore(self, ck, config: Config, model, opt, chunks_per_epoch: int) -> None:
        """Take the run's state from checkpoint `ck` into self, `model` and `opt`.

        Anything that does not fit (a field of the wrong type, a state of the wrong shape)
        is a CheckpointError naming it: a resumed run either continues exactly or not at all.
        """
        meta, where = ck.meta, ck.path

        def bad(why):
            return CheckpointError(f"cannot resume from {where}: {why}")

        if not ck.history and "optim_t" in meta:
            raise bad("it was written by an earlier charrnn that did not save what an exact resume needs; "
                      "start a new run (--force or another --out)")
        step, chunk = meta.get("step"), meta.get("chunk")
        if not is_int(step) or step < 0:
            raise bad("its step counter is missing or invalid")
        if not is_int(chunk) or not 0 <= chunk <= chunks_per_epoch:
            raise bad("its data position ('chunk') is missing or out of range")
        elapsed = meta.get("elapsed", 0.0)
        if not is_number(elapsed) or not np.isfinite(elapsed) or elapsed < 0:
            raise bad("its elapsed time is invalid")
        for key in ("train_loss", "val_loss", "best_val_loss", "patience_best"):
            if meta.get(key) is not None and not is_number(meta[key]):
                raise bad(f"{key} is not a number")
        losses = ck.history.get("train_loss")
        vals = ck.history.get("val_loss")
        if losses is None or losses.ndim != 1 or len(losses) != step:
            raise bad(f"its loss history does not cover its {step} steps")
        if vals is None or vals.ndim != 2 or vals.shape[1] != 2:
            raise bad("its validation history is malformed")
        stale = meta.get("stale", 0)
        if not is_int(stale) or stale < 0:
            raise bad("its count of validations without improvement ('stale') is invalid")
        # Per layer h (B, H), or (h, c) for an LSTM: the structure of a batch-1 zero state.
        B, zero = config.batch_size, model.zero_state(1)
        if len(ck.state) != len(zero) or any(_shapes(a) != _shapes(b, B) for a, b in zip(ck.state, zero)):
            raise bad("its carried hidden state does not match the model's layers and batch size")
        try:
            opt.load_state_dict(ck.optim)
        except (KeyError, ValueError, TypeError) as exc:
            raise bad(f"its optimizer state does not fit ({exc})") from None
        saved_rngs = meta.get("rng", {})
        if not isinstance(saved_rngs, dict) or set(saved_rngs) != set(self.rngs):
            raise bad(f"it has random generators {sorted(saved_rngs) if isinstance(saved_rngs, dict) else saved_rngs!r}, "
                      f"expected {sorted(self.rngs)}")
        for name, g in self.rngs.items():
            try:
                g.bit_generator.state = saved_rngs[name]
            except (KeyError, ValueError, TypeError, OverflowError) as exc:
                raise bad(f"the state of random generator {name!r} is invalid ({exc})") from None
        model.set_params(ck.params)
        self.step, self.chunk, self.elapsed = step, chunk, float(elapsed)
        self.train_loss, self.val_loss = meta.get("train_loss"), meta.get("val_loss")
        self.best_val = meta.get("best_val_loss")
        self.losses = losses.tolist()
        self.val_history = [(int(s), float(v)) for s, v in vals]
        self.stale, self.patience_best = stale, meta.get("patience_best")
        self.hidden = [tuple(_array(a, model.dtype) for a in s) if isinstance(s, tuple) else _array(s, model.dtype)
                       for s in ck.state]


def load_latest(out: str):
    """The checkpoint a resumed run continues from: out/latest.npz."""
    from . import checkpoint as ckpt

    latest = os.path.join(out, "latest.npz")
    if not os.path.exists(latest):
        raise CheckpointError(f"nothing to resume: no latest.npz in {out}/ (train without --resume first)")
    return ckpt.load(latest)


def check_same_run(ck, config: Config, corpus_sha256: str) -> None:
    """Refuse, naming the difference, to resume on another corpus or with another model or setup.

    Fields in MAY_CHANGE_ON_RESUME (limits, cadences, learning rate, clip) may differ: the
    user asked for that. Every other field shapes the run, so it must be the same.
    """
    where = ck.path
    if ck.meta.get("corpus_sha256") != corpus_sha256:
        saved = str(ck.meta.get("corpus_sha256"))[:12]
        raise CharRNNError(
            f"cannot resume from {where}: the corpus differs from the one it was trained on "
            f"(sha256 {corpus_sha256[:12]}... here, {saved}... there); pass the same file(s), "
            f"or train into a new --out"
        )
    saved = ck.config
    for f in fields(Config):
        if f.name in MAY_CHANGE_ON_RESUME:
            continue
        then, now = getattr(saved, f.name), getattr(config, f.name)
        if then != now:
            flag = "--" + f.name.replace("_", "-")
            raise CharRNNError(
                f"cannot resume from {where}: {f.name} is {then!r} there but {now!r} here; "
                f"drop {flag} (or set it to {then!r}), or train into a new --out"
            )


def _shapes(s, batch=None):
    """The shape of a layer's state, or of each part of it; with the batch size set to `batch`."""
    def shape(a):
        return a.shape if batch is None else (batch, *a.shape[1:])
    return tuple(shape(a) for a in s) if isinstance(s, tuple) else shape(s)


def _array(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)
