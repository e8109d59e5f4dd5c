"""The models the server answers with, reloaded when their files on disk are replaced.

A directory is watched for best.npz and latest.npz (or one --checkpoint file). A poller
stats them twice a second; a file whose size, mtime or inode changed is loaded anew, and
only a file that loads and validates replaces the model in memory. `charrnn train` writes
checkpoints atomically, so the new file is complete when it appears; a file written some
other way, truncated or damaged fails to load, and the last good model keeps serving (the
failure is reported in /api/info and on stderr, and the file is tried again when it changes).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import CharRNNError

NAMES = ("best", "latest")  # preferred first: Generate and Inspect use best.npz when it exists


class NoModel(CharRNNError):
    """No checkpoint has loaded yet (train first)."""


@dataclass
class Entry:
    """One watched checkpoint file and the last good model read from it."""

    name: str
    path: str
    checkpoint: Optional[object] = None  # charrnn.checkpoint.Checkpoint
    version: int = 0  # counts successful loads, so a page can tell a reload happened
    loaded_at: Optional[float] = None
    stamp: Optional[tuple] = None  # (size, mtime_ns, inode) of the last file tried
    error: Optional[str] = None  # why the last try failed; None once a load succeeds

    def info(self) -> dict:
        ck = self.checkpoint
        out = {"name": self.name, "file": os.path.basename(self.path), "loaded": ck is not None,
               "version": self.version, "loaded_at": self.loaded_at, "error": self.error}
        if ck is not None:
            meta, config = ck.meta, ck.meta.get("config", {})
            out.update({
                "step": meta.get("step"), "epoch": meta.get("epoch"), "elapsed": meta.get("elapsed"),
                "train_loss": meta.get("train_loss"), "val_loss": meta.get("val_loss"),
                "best_val_loss": meta.get("best_val_loss"), "charrnn_version": meta.get("charrnn_version"),
                "config": config, "vocab": ck.vocab.chars, "vocab_size": len(ck.vocab),
                "hidden_size": config.get("hidden_size"),
                "parameters": int(sum(a.size for a in ck.params.values())),
            })
        return out


class ModelStore:
    """best.npz and latest.npz in a directory (or one checkpoint file), kept loaded and fresh."""

    def __init__(self, directory: str, checkpoint: Optional[str] = None,
                 log: Callable[[str], None] = lambda line: None, poll: float = 0.5):
        self.directory, self.poll, self.log = directory, poll, log
        if checkpoint:
            self.entries = {"checkpoint": Entry("checkpoint", checkpoint)}
            self._confined = False  # a file the user named: wherever it is
        else:
            self.entries = {n: Entry(n, os.path.join(directory, f"{n}.npz")) for n in NAMES}
            self._confined = True  # DIR's files: never followed out of DIR through a symlink
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> "ModelStore":
        self.refresh()
        threading.Thread(target=self._watch, name="charrnn-reload", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            self.refresh()

    def refresh(self) -> None:
        """Load every watched file that changed since it was last tried."""
        from ..checkpoint import load, require_lm

        for entry in self.entries.values():
            stamp = _stamp(entry.path)
            if stamp is None or stamp == entry.stamp:
                continue  # absent (keep what we have) or unchanged
            entry.stamp = stamp
            try:
                if self._confined and not inside(entry.path, self.directory):
                    raise CharRNNError(f"{entry.path} points outside {self.directory}/; not loaded")
                checkpoint = require_lm(load(entry.path), "charrnn serve")
            except CharRNNError as exc:
                kept = entry.checkpoint
                with self._lock:
                    still = f"; still serving the model from step {kept.meta.get('step')}" if kept else ""
                    entry.error = str(exc) + still
                self.log(f"charrnn serve: {entry.error}")
                continue
            with self._lock:
                entry.checkpoint, entry.error = checkpoint, None
                entry.version += 1
                entry.loaded_at = time.time()
            if entry.version > 1:
                self.log(f"charrnn serve: reloaded {entry.path} (step {checkpoint.meta.get('step')})")

    def default(self) -> Optional[str]:
        """The name requests use when they name none: best.npz if loaded, else latest.npz."""
        for name, entry in self.entries.items():
            if entry.checkpoint is not None:
                return name
        return None

    def get(self, name: Optional[str] = None) -> tuple:
        """(name, Checkpoint) of the named model or the default one; NoModel if it has not loaded."""
        name = name or self.default()
        with self._lock:
            entry = self.entries.get(name) if name else None
            if entry is None or entry.checkpoint is None:
                where = f"{self.directory}/" if self._confined else next(iter(self.entries.values())).path
                raise NoModel(f"no model loaded yet from {where} (train first)")
            return name, entry.checkpoint

    def info(self) -> dict:
        with self._lock:
            return {"default": self.default(), "models": {n: e.info() for n, e in self.entries.items()}}


def _stamp(path: str) -> Optional[tuple]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def inside(path: str, directory: str) -> bool:
    """Whether path, symlinks resolved, lies within directory (symlinks resolved too)."""
    real, root = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([real, root]) == root
