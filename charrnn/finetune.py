"""Fine-tuning: start training from a checkpoint's weights on a text that may have new characters.

The vocabulary becomes the union of the checkpoint's and the text's. Every character the
model knew keeps its weights exactly (its row of the first layer's input matrix, its
column of W_hy, its entry of b_y), though its id may move since ids follow code-point
order. A new character gets a freshly initialised input row, a zero output column and an
output bias NEW_CHAR_BIAS nats below the checkpoint's smallest, so until training
teaches it the new characters the model predicts exactly what it did (to float rounding,
a relative e^-20): its loss on the old text is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import BYTES, Config
from .data import kind
from .errors import CharRNNError
from .model import Model
from .vocab import Vocab, describe

NEW_CHAR_BIAS = 20.0
ARCHITECTURE = ("cell", "hidden_size", "layers", "activation")


@dataclass
class Start:
    model: Model
    config: Config  # the run's config with the checkpoint's architecture
    vocab: Vocab  # the union vocabulary
    ids: np.ndarray  # the corpus in the union vocabulary's ids
    added: list  # characters the checkpoint did not know
    message: str


def extend(checkpoint, vocab: Vocab, config: Config | None = None) -> tuple[Model, Vocab, list]:
    """The checkpoint's model over the union of its vocabulary and `vocab`, and the added characters.

    `config` (default: the checkpoint's) gives the seed for the new characters' rows and the
    dtype and dropout; the architecture always comes from the checkpoint.
    """
    old_vocab, old_config = checkpoint.vocab, checkpoint.config
    config = old_config if config is None else config.replace(
        **{k: getattr(old_config, k) for k in ARCHITECTURE})
    union = Vocab(np.union1d(old_vocab.codepoints, vocab.codepoints))
    added = [c for c in union.chars if c not in old_vocab]
    model = Model.from_config(config, len(union)).init(config.seed)
    where = old_vocab.id_map(union)
    new = np.setdiff1d(np.arange(len(union)), where)
    old_b_y = checkpoint.params["b_y"]
    for name, old in checkpoint.params.items():
        target = model.params[name]
        index = tuple(where if old.shape[ax] != target.shape[ax] else slice(None) for ax in range(old.ndim))
        target[index] = old
    if len(new):
        model.params["W_hy"][:, new] = 0
        model.params["b_y"][new] = float(np.min(old_b_y)) - NEW_CHAR_BIAS
    return model, union, added


def start(config: Config, vocab: Vocab, ids: np.ndarray) -> Start:
    """Load config.init_from and set up a run on ids (in `vocab`'s ids) from its weights."""
    from . import checkpoint as ckpt

    checkpoint = ckpt.require_lm(ckpt.load(config.init_from), "--init-from")
    old = checkpoint.config
    if (old.encoding == BYTES) != (config.encoding == BYTES):
        raise CharRNNError(f"cannot fine-tune {config.init_from}: it reads {kind(old.encoding)}, and this corpus is "
                           f"read as {kind(config.encoding)}; " + ("pass --bytes" if old.encoding == BYTES else "drop --bytes"))
    changed = [k for k in ARCHITECTURE if getattr(config, k) != getattr(old, k)]
    model, union, added = extend(checkpoint, vocab, config)
    new_ids = vocab.recode(ids, union)
    run_config = config.replace(**{k: getattr(old, k) for k in ARCHITECTURE})
    parts = [f"fine-tuning from {config.init_from} ({old.cell}, {old.layers} x {old.hidden_size})"]
    if changed:
        parts.append(f"keeping its {', '.join(changed)}")
    parts.append(f"added {len(added)} new characters: {describe(added)}" if added else "no new characters")
    return Start(model, run_config, union, new_ids, added, "; ".join(parts))
