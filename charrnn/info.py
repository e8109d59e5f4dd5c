"""What a checkpoint is, or what a run directory holds: `charrnn info`.

A directory is listed one checkpoint per row (latest.npz, best.npz and the history that
`--keep-every` writes, step-NNNNNN.npz), ordered by step; a file is described in full:
the model, its vocabulary, the config it was trained with, the corpus and the run so far.
Everything is read through `checkpoint.py`; a listing reads only each file's metadata.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

from . import checkpoint as ckpt
from .errors import CheckpointError


@dataclass
class Entry:
    """One row of a directory listing."""

    file: str
    step: Optional[int] = None
    epoch: Optional[float] = None
    train_loss: Optional[float] = None
    val_loss: Optional[float] = None
    elapsed: Optional[float] = None  # seconds of training up to this checkpoint
    saved: Optional[str] = None  # when the file was written (its modification time), local time
    error: Optional[str] = None  # why the file could not be read, if it could not

    def to_dict(self) -> dict:
        return asdict(self)


def list_dir(directory: str) -> list:
    """The checkpoints (*.npz) in directory, by step, then name; unreadable ones included, with
    their error. An empty directory is an error."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"not a directory: {directory}")
    names = sorted(n for n in os.listdir(directory) if n.endswith(".npz") and not n.startswith(ckpt.TMP_PREFIX))
    if not names:
        raise CheckpointError(f"no checkpoints in {directory}/")
    entries = []
    for name in names:
        path = os.path.join(directory, name)
        saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(path)))
        try:
            meta = ckpt.read_meta(path)
        except CheckpointError as exc:
            entries.append(Entry(name, saved=saved, error=str(exc)))
            continue
        entries.append(Entry(name, _int(meta.get("step")), _num(meta.get("epoch")), _num(meta.get("train_loss")),
                             _num(meta.get("val_loss")), _num(meta.get("elapsed")), saved))
    return sorted(entries, key=lambda e: (e.step is None, e.step or 0, e.file))


def describe(checkpoint) -> dict:
    """Everything a checkpoint says about itself, as plain data (the `--json` output)."""
    ck = ckpt.as_checkpoint(checkpoint)
    config, meta, vocab = ck.config, ck.meta, ck.vocab
    params = {k: list(v.shape) for k, v in ck.params.items()}
    return {
        "path": ck.path,
        "format": meta.get("format"),
        "charrnn_version": meta.get("charrnn_version"),
        "task": ck.task,  # "lm", or "seq2seq" for an encoder-decoder (charrnn translate)
        "model": {"cell": config.cell, "layers": config.layers, "hidden_size": config.hidden_size,
                  "activation": config.activation, "dropout": config.dropout, "dtype": config.dtype,
                  "parameters": int(sum(v.size for v in ck.params.values())), "shapes": params},
        "vocabulary": {"size": len(vocab), "kind": "bytes" if _encoding(config) == "bytes" else "characters",
                       "encoding": _encoding(config), "characters": vocab.chars},
        # An encoder-decoder reads one vocabulary and writes another; "vocabulary" is the one it writes.
        "source_vocabulary": ({"size": len(ck.src_vocab), "characters": ck.src_vocab.chars}
                              if ck.task == "seq2seq" else None),
        "corpus": {"sha256": meta.get("corpus_sha256"), "chars": meta.get("corpus_chars"),
                   "train_chars": meta.get("train_chars"), "val_chars": meta.get("val_chars")},
        "run": {"step": meta.get("step"), "epoch": meta.get("epoch"), "elapsed": meta.get("elapsed"),
                "train_loss": meta.get("train_loss"), "val_loss": meta.get("val_loss"),
                "best_val_loss": meta.get("best_val_loss"), "optimizer_step": ck.optim.get("t"),
                "validations": int(len(ck.history.get("val_loss", []))),
                "resumable": bool(ck.history) and bool(ck.state)},
        "config": config.to_dict(),
    }


def format_listing(directory: str, entries: list) -> str:
    rows = [("file", "step", "epoch", "train", "val", "time", "saved")]
    for e in entries:
        if e.error:
            rows.append((e.file, "-", "-", "-", "-", "-", e.saved or "-"))
            continue
        rows.append((e.file, _fmt(e.step, "d"), _fmt(e.epoch, ".2f"), _fmt(e.train_loss, ".4f"),
                     _fmt(e.val_loss, ".4f"), _duration(e.elapsed), e.saved))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{directory}/: {len(entries)} checkpoint{'s' if len(entries) != 1 else ''}"]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    lines += [f"{e.file}: {e.error}" for e in entries if e.error]
    return "\n".join(lines)


def format_description(d: dict) -> str:
    m, v, c, r, cfg = d["model"], d["vocabulary"], d["corpus"], d["run"], d["config"]
    act = f" {m['activation']}" if m["cell"] == "elman" else ""
    drop = f", dropout {m['dropout']:g}" if m["dropout"] else ""
    shown = _shown(v["characters"])
    kind = "bytes" if v["kind"] == "bytes" else f"characters, read as {v['encoding']}"
    schedule = cfg["lr_schedule"] + (f", {cfg['warmup_steps']} warmup steps" if cfg["warmup_steps"] else "")
    clip = f"clip {cfg['clip_mode']} {cfg['clip']:g}" if cfg["clip"] else "no clipping"
    limits = ", ".join(f"{k} {cfg[k]:g}" for k in ("max_steps", "epochs", "max_time") if cfg[k] is not None) or "one epoch"
    lines = [
        f"{d['path']}: charrnn checkpoint format {d['format']} (charrnn {d['charrnn_version']})",
        f"model:      {'encoder-decoder, ' if d['task'] == 'seq2seq' else ''}{m['cell']}{act}, "
        f"{m['layers']} layer{'s' if m['layers'] > 1 else ''} x {m['hidden_size']} "
        f"hidden{drop}, {m['parameters']:,} parameters ({m['dtype']})",
        f"vocabulary: {v['size']} {kind}: {shown}",
        *([f"source:     {d['source_vocabulary']['size']} characters: {_shown(d['source_vocabulary']['characters'])}"]
          if d.get("source_vocabulary") else []),
        f"corpus:     sha256 {c['sha256']}, {_fmt(c['chars'], ',')} chars "
        f"({_fmt(c['train_chars'], ',')} training, {_fmt(c['val_chars'], ',')} validation)",
        f"run:        step {_fmt(r['step'], 'd')}, epoch {_fmt(r['epoch'], '.2f')}, {_duration(r['elapsed'])} of training; "
        f"train loss {_fmt(r['train_loss'], '.4f')}, val loss {_fmt(r['val_loss'], '.4f')} "
        f"(best {_fmt(r['best_val_loss'], '.4f')}, {r['validations']} validations)",
        f"trained:    {cfg['optimizer']} lr {cfg['lr']:g} ({schedule}), {clip}, batch {cfg['batch_size']} "
        f"x seq_len {cfg['seq_len']}, seed {cfg['seed']}, until {limits}"
        + (f"; fine-tuned from {cfg['init_from']}" if cfg.get("init_from") else ""),
        "config:     " + ", ".join(f"{k}={val}" for k, val in cfg.items() if val is not None),
    ]
    return "\n".join(lines)


def _shown(chars: str) -> str:
    # repr shows control characters and spaces unambiguously; the quotes it adds say nothing here.
    return repr(chars[:100])[1:-1].replace("\\'", "'") + ("..." if len(chars) > 100 else "")


def _encoding(config) -> str:
    return getattr(config, "encoding", "utf-8")


def _int(x):
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _num(x):
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes}:{s:02d} min" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{s:02d} h"
