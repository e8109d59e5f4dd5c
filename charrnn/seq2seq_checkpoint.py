"""Validating an encoder-decoder checkpoint (meta "task": "seq2seq"); checkpoint.py calls this.

The layout is checkpoint.py's: param/enc.* and param/dec.* (seq2seq.py names them),
`vocab` the target vocabulary (holding the START and END markers), `src_vocab` the source
vocabulary, optim/<slot>/<name>, history/*, and meta with "task": "seq2seq".
"""
from __future__ import annotations

import numpy as np

from .errors import CharRNNError


def validate(path: str, arrays: dict, meta: dict, config, bad):
    from .checkpoint import Checkpoint, _check_floats, _group, is_int
    from .seq2seq import END, START, Seq2Seq
    from .vocab import Vocab

    if meta.get("task") != "seq2seq":
        raise bad(f"unknown task {meta.get('task')!r} in 'meta'")
    vocabs = []
    for name in ("src_vocab", "vocab"):
        v = arrays.get(name)
        if v is None:
            raise bad(f"missing array {name!r}")
        if v.ndim != 1 or v.dtype.kind not in "iu" or len(v) == 0:
            raise bad(f"{name!r} is not a 1-d integer array")
        try:
            vocabs.append(Vocab(v))
        except CharRNNError as exc:
            raise bad(f"{name!r}: {exc}") from None
    src_vocab, tgt_vocab = vocabs
    if START not in tgt_vocab or END not in tgt_vocab:
        raise bad("the target vocabulary lacks the START/END markers")
    model = Seq2Seq.from_config(config, len(src_vocab), len(tgt_vocab))
    shapes = {k: tuple(s) for k, s in model.shapes().items()}
    params = _group(arrays, "param/")
    missing, extra = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
    if missing:
        raise bad(f"missing parameter {missing[0]!r}")
    if extra:
        raise bad(f"unexpected parameter {extra[0]!r}")
    dtype = np.dtype(config.dtype)
    for k, shape in shapes.items():
        if params[k].shape != shape:
            raise bad(f"parameter {k!r} has shape {params[k].shape}, expected {shape}")
        _check_floats(bad, f"parameter {k!r}", params[k], dtype)
    known = ("param/", "optim/", "history/")
    unknown = sorted(k for k in arrays if k not in ("meta", "vocab", "src_vocab") and not k.startswith(known))
    if unknown:
        raise bad(f"unexpected array {unknown[0]!r}")
    optim = _group(arrays, "optim/")
    for k, a in optim.items():
        name = k.partition("/")[2]
        if name not in shapes or a.shape != shapes[name]:
            raise bad(f"optimizer state 'optim/{k}' does not match a parameter")
        _check_floats(bad, f"optimizer state 'optim/{k}'", a, dtype)
    scalars = meta.get("optim", {"t": 0})
    if not isinstance(scalars, dict) or not is_int(scalars.get("t", 0)) or scalars.get("t", 0) < 0:
        raise bad("the optimizer's step counter is invalid")
    optim.update(scalars)
    history = _group(arrays, "history/")
    for k, a in history.items():
        if a.dtype.kind != "f" or a.ndim not in (1, 2) or not np.all(np.isfinite(a)):
            raise bad(f"history 'history/{k}' is not a finite float array")
    return Checkpoint(params, tgt_vocab, meta, optim, [], path, history, src_vocab)
