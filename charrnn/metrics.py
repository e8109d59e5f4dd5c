"""The metrics file: one JSON line per logged training step, written from the loop's events.

`out/metrics.jsonl` gets a row every `log_every` steps, at every validation and at the
last step:

    {"step": 200, "epoch": 0.41, "train_loss": 1.83, "val_loss": 1.79, "lr": 0.002,
     "grad_norm": 0.61, "clipped": 0.0, "chars_per_sec": 60210.4, "elapsed": 13.61}

With --sample-every, a row also has "sample": the text drawn at that step.
train_loss is the mean training loss over the steps since the previous row; val_loss is
null except on rows where validation ran; clipped is the fraction of those steps whose
gradient was clipped; chars_per_sec is the mean rate since the start of the run.
A run from step 0 starts the file afresh; a run resumed at step k keeps the rows up to k
and appends after them. Either happens when the run first writes a checkpoint (until then
rows wait in memory), so a run that fails before it saves anything leaves the directory's
metrics as they were, like its checkpoints.
"""
from __future__ import annotations

import json
import os
from typing import Optional

FILENAME = "metrics.jsonl"


class MetricsRecorder:
    """A training callback that appends rows to a JSON-lines file."""

    def __init__(self, path: str, log_every: int = 10):
        self.path, self.log_every = path, max(1, int(log_every))
        self._fh = None  # open once the run has written a checkpoint
        self._start_step = 0
        self._waiting: list = []  # finished rows not yet on disk
        self._pending: Optional[dict] = None  # the current step's row, finished when the step is over
        self._last: Optional[dict] = None
        self._losses: list = []
        self._clipped = 0

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            self._start_step = int(event.get("step", 0) or 0)
        elif kind == "step":
            self._flush()
            self._losses.append(event["loss"])
            self._clipped += bool(event.get("clipped"))
            self._last = event
            if event["step"] % self.log_every == 0:
                self._pending = self._row(event)
        elif kind == "eval":
            if self._pending is None and self._last is not None and self._last["step"] == event["step"]:
                self._pending = self._row(self._last)
            if self._pending is not None:
                self._pending["val_loss"] = _round(event["val_loss"])
                if "val_exact_match" in event:  # an encoder-decoder's validation
                    self._pending["val_exact_match"] = _round(event["val_exact_match"])
            if event.get("best"):  # best.npz was written
                self._open()
        elif kind == "sample":  # --sample-every: the sample joins its step's row
            if self._pending is None and self._last is not None and self._last["step"] == event["step"]:
                self._pending = self._row(self._last)
            if self._pending is not None:
                self._pending["sample"] = event["text"]
        elif kind in ("saving", "save"):
            # Rows up to a checkpoint are on disk before it: a kill between the two leaves
            # rows past the checkpoint, which a resume drops, never a checkpoint past its rows.
            self._open()
            self._flush()
        elif kind == "done":
            if self._pending is None and self._losses and self._last is not None:
                self._pending = self._row(self._last)
            self._open()
            self.close()

    def _row(self, e: dict) -> dict:
        n = max(len(self._losses), 1)
        row = {"step": e["step"], "epoch": round(e["epoch"], 6), "train_loss": round(sum(self._losses) / n, 6),
               "val_loss": None, "lr": e.get("lr"), "grad_norm": _round(e.get("grad_norm")),
               "clipped": self._clipped / n, "chars_per_sec": round(e["chars_per_sec"], 1),
               "elapsed": round(e["elapsed"], 3)}
        self._losses, self._clipped = [], 0
        return row

    def _open(self) -> None:
        """The run has written a checkpoint: from now on the file is this run's."""
        if self._fh is not None:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        keep = []
        if self._start_step > 0 and os.path.exists(self.path):
            keep = [r for r in read(self.path) if r.get("step", 0) <= self._start_step]
        # The kept rows go to a temporary file that replaces the old one whole, so a kill
        # at any moment leaves either the old file or the kept rows, never a cut-short file.
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in keep)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._write_waiting()

    def _flush(self) -> None:
        if self._pending is not None:
            self._waiting.append(_finite(self._pending))
            self._pending = None
        self._write_waiting()

    def _write_waiting(self) -> None:
        if self._fh is not None and self._waiting:
            self._fh.writelines(json.dumps(r) + "\n" for r in self._waiting)
            self._fh.flush()
            self._waiting = []

    def close(self) -> None:
        self._flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _finite(row: dict) -> dict:
    # JSON has no NaN or Infinity; a diverged step's loss is written as null.
    return {k: (None if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")) else v)
            for k, v in row.items()}


def read(path: str) -> list:
    """The rows of a metrics file; a torn last line (a crash mid-write) is skipped."""
    from .errors import CharRNNError

    if os.path.isdir(path):
        path = os.path.join(path, FILENAME)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise CharRNNError(f"no metrics file: {path} (train first; training writes it)") from None
    except OSError as exc:
        raise CharRNNError(f"cannot read {path}: {exc.strerror or exc}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if n == len(text.splitlines()):
                break
            raise CharRNNError(f"{path} line {n} is not JSON") from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _round(x, digits: int = 6):
    return None if x is None else round(float(x), digits)
