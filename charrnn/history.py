"""A run's checkpoint history: `--keep-every N` keeps DIR/step-NNNNNN.npz every N updates.

Each is a whole checkpoint, written atomically like latest.npz (it can be sampled,
evaluated, described by `charrnn info`, or copied over latest.npz to resume from there).
It is written once the step is done (after its validation, if it has one), so its
validation loss is that step's. Writing one reads the run and changes nothing in it.
"""
from __future__ import annotations

import os
import re

PATTERN = re.compile(r"^step-\d{6,}\.npz$")


def path(out: str, step: int) -> str:
    return os.path.join(out, f"step-{step:06d}.npz")


def attach(run) -> None:
    """Keep a checkpoint every run.config.keep_every updates (nothing without it, or without --out)."""
    every = run.config.keep_every
    if not every or run.out is None:
        return

    def keep(r):
        if r.state.step % every == 0:
            r.save(path(r.out, r.state.step))

    run.after_step.append(keep)


def kept(out: str) -> list:
    """The step-N checkpoints in a directory, by name."""
    try:
        return sorted(n for n in os.listdir(out) if PATTERN.match(n))
    except OSError:
        return []


def forget(out: str) -> None:
    """Remove a directory's step-N checkpoints (a fresh run with --force replaces them)."""
    for name in kept(out):
        try:
            os.unlink(os.path.join(out, name))
        except OSError:
            pass
