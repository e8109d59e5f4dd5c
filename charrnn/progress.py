"""Progress reporting for `charrnn train`: a tqdm bar and a summary, both on stderr.

The bar measures the run against whichever limit ends it first: `--max-steps` (or `--epochs`,
which the loop turns into steps) or `--max-time`. At a steady speed the limit that will be
reached first is the one the run is furthest through, so the bar shows the larger of
step / max_steps and elapsed / max_time, and the time left is the smaller of the two
limits' (steps left at this session's seconds per step; seconds left of --max-time).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import click

BAR_UNITS = 1000  # the bar counts thousandths of the run
BAR_FORMAT = "{percentage:3.0f}%|{bar}| {desc}{postfix}"


@dataclass
class Limits:
    """Where a run ends, and how far it is: fed each step's (step, elapsed)."""

    max_steps: Optional[int] = None
    max_time: Optional[float] = None
    first: Optional[tuple] = None  # (step, elapsed) of this session's first update: the speed's origin

    def fraction(self, step: int, elapsed: float) -> float:
        by_steps = step / self.max_steps if self.max_steps else 0.0
        by_time = elapsed / self.max_time if self.max_time else 0.0
        return min(1.0, max(by_steps, by_time))

    def left(self, step: int, elapsed: float) -> Optional[float]:
        """Seconds until the first limit, or None before the speed is known."""
        if self.first is None:
            self.first = (step, elapsed)
        candidates = []
        if self.max_time:
            candidates.append(max(0.0, self.max_time - elapsed))
        s0, e0 = self.first
        if self.max_steps and step > s0:
            candidates.append(max(0, self.max_steps - step) * (elapsed - e0) / (step - s0))
        return min(candidates) if candidates else None

    def describe(self, step: int, elapsed: float) -> str:
        """'step 577/1283 [00:11<00:14]': the step (of how many, if steps bound the run), time spent<left."""
        left = self.left(step, elapsed)
        of = f"/{self.max_steps}" if self.max_steps else ""
        return f"step {step}{of} [{clock(elapsed)}<{'?' if left is None else clock(left)}]"


def clock(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes:02d}:{s:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{s:02d}"


class Progress:
    """A training callback: turns the loop's events into a progress bar and messages."""

    def __init__(self, quiet: bool = False, stream=None, max_time: Optional[float] = None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.bar = None
        self.val_loss = None
        self.clip_fraction = None
        self.val_exact = None
        self.limits = Limits(max_time=max_time)
        self.where = None  # (step, elapsed) of the latest update

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "info":
            self.message(event["message"])
        elif kind == "start" and not self.quiet:
            if "train_pairs" in event:  # an encoder-decoder (train --pairs)
                self.message(f"{event['params']:,} parameters; {event['train_chars']:,} target characters to train on, "
                             f"{event['val_chars']:,} to validate")
            else:
                self.message(
                    f"{event['params']:,} parameters, vocabulary {event['vocab_size']}, "
                    f"{event['train_chars']:,} training and {event['val_chars']:,} validation characters"
                )
            from tqdm import tqdm

            self.limits.max_steps = event["max_steps"]
            self.limits.max_time = event.get("max_time", self.limits.max_time)
            self.bar = tqdm(total=BAR_UNITS, file=self.stream, dynamic_ncols=True, bar_format=BAR_FORMAT,
                            disable=not self.stream.isatty(), mininterval=0.5)
        elif kind == "step":
            self.clip_fraction = event.get("clip_fraction")
            self.where = (event["step"], event["elapsed"])
            if self.bar is None:
                return
            self.bar.set_description_str(self.limits.describe(*self.where), refresh=False)
            post = {"loss": f"{event['loss']:.3f}", "chars/s": f"{event['chars_per_sec']:,.0f}",
                    "|g|": f"{event['grad_norm']:.2g}", "clipped": f"{event['clip_fraction']:.0%}"}
            if self.val_loss is not None:
                post["val"] = f"{self.val_loss:.3f}"
            if self.val_exact is not None:  # an encoder-decoder's validation exact match
                post["exact"] = f"{self.val_exact:.1%}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(int(self.limits.fraction(*self.where) * BAR_UNITS) - self.bar.n)
        elif kind == "sample":
            # Above the bar on a terminal; in a log, between the validation lines.
            self.message(f"--- sample at step {event['step']} ---\n{event['text'].rstrip()}")
        elif kind == "eval":
            self.val_loss = event["val_loss"]
            self.val_exact = event.get("val_exact_match")
            if self.bar is not None and self.bar.disable:
                # No bar off a terminal (a log file, CI): one line per validation instead.
                clipped = f", {self.clip_fraction:.0%} of updates clipped" if self.clip_fraction is not None else ""
                exact = f", exact match {self.val_exact:.1%}" if self.val_exact is not None else ""
                self.message(f"step {event['step']}: val loss {event['val_loss']:.4f}" + exact
                             + (" (best)" if event["best"] else "") + clipped + self._how_far())

    def _how_far(self) -> str:
        if self.where is None:
            return ""
        left = self.limits.left(*self.where)
        done = f"; {self.limits.fraction(*self.where):.0%} done"
        return done + (f", {clock(left)} left" if left is not None else "")

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        elif not self.quiet:
            click.echo(text, err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def summary(self, result) -> None:
        if self.quiet:
            return
        val = f"val loss {result.val_loss:.4f}, best {result.best_val_loss:.4f}, " if result.val_loss is not None else ""
        click.echo(
            f"done: {result.steps} steps ({result.epoch:.2f} epochs) in {result.seconds:.1f} s, "
            f"{result.chars_per_sec:,.0f} chars/s{_blas(result)}; train loss {result.train_loss:.4f}, {val}"
            f"checkpoint {result.best or result.latest}",
            err=True,
        )


def _blas(result) -> str:
    """" with N BLAS threads", what the updates ran with at the end (auto may change it; threads.py),
    or " with N threads and numba kernels" (fused.use_threads: numba's threads, BLAS on one)."""
    n = result.blas_threads
    numba = result.kernels == "numba"
    text = "" if n is None else f" with {n} {'' if numba else 'BLAS '}thread{'s' if n != 1 else ''}"
    return text + (" and numba kernels" if numba else "")
