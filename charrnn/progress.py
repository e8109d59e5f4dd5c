"""Progress reporting for `charrnn train`: a tqdm bar and a summary, both on stderr."""
from __future__ import annotations

import sys

import click


class Progress:
    """A training callback: turns the loop's events into a progress bar and messages."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.bar = None
        self.val_loss = None
        self.clip_fraction = None
        self.val_exact = None

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "info":
            self.message(event["message"])
        elif kind == "start" and not self.quiet:
            self.message(
                f"{event['params']:,} parameters, vocabulary {event['vocab_size']}, "
                f"{event['train_chars']:,} training and {event['val_chars']:,} validation characters"
            )
            from tqdm import tqdm

            self.bar = tqdm(total=event["max_steps"], unit="step", file=self.stream, dynamic_ncols=True,
                            disable=not self.stream.isatty(), mininterval=0.5)
        elif kind == "step":
            self.clip_fraction = event.get("clip_fraction")
            if self.bar is None:
                return
            self.bar.update(event["step"] - self.bar.n)
            post = {"loss": f"{event['loss']:.3f}", "chars/s": f"{event['chars_per_sec']:,.0f}",
                    "|g|": f"{event['grad_norm']:.2g}", "clipped": f"{event['clip_fraction']:.0%}"}
            if self.val_loss is not None:
                post["val"] = f"{self.val_loss:.3f}"
            if self.val_exact is not None:  # an encoder-decoder's validation exact match
                post["exact"] = f"{self.val_exact:.1%}"
            self.bar.set_postfix(post, refresh=False)
        elif kind == "eval":
            self.val_loss = event["val_loss"]
            self.val_exact = event.get("val_exact_match")
            if self.bar is not None and self.bar.disable:
                # No bar off a terminal (a log file, CI): one line per validation instead.
                clipped = f", {self.clip_fraction:.0%} of updates clipped" if self.clip_fraction is not None else ""
                exact = f", exact match {self.val_exact:.1%}" if self.val_exact is not None else ""
                self.message(f"step {event['step']}: val loss {event['val_loss']:.4f}" + exact
                             + (" (best)" if event["best"] else "") + clipped)

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
            f"{result.chars_per_sec:,.0f} chars/s; train loss {result.train_loss:.4f}, {val}"
            f"checkpoint {result.best or result.latest}",
            err=True,
        )
