"""The checkpoint file: everything `sample`, `eval` and a resumed `train` need, in one .npz.

Layout (all plain arrays; read with np.load(path, allow_pickle=False)):
    param/<name>      model parameters, e.g. param/W_xh (V, H)
    vocab             int32 (V,): the vocabulary's Unicode code points, ascending
    meta              0-d str: JSON with format, charrnn_version, config, step, epoch,
                      train_loss, val_loss, best_val_loss (and training progress)
    optim/<slot>/<n>  optimizer state (Adam m and v, Adagrad mem), same shapes as params
    state/h.<l>       hidden state carried into the next chunk, layer l, (B, H)
    state/c.<l>       the LSTM's cell state carried with it, layer l, (B, H)

All reading and writing lives here; every write is atomic (temporary file in the same
directory, fsync, rename), so a crash mid-save never leaves a half-written checkpoint
where a good one was.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import __version__
from .errors import CheckpointError

FORMAT = 1
TMP_PREFIX = ".tmp-"


@dataclass
class Checkpoint:
    params: dict
    vocab: "object"  # charrnn.vocab.Vocab
    meta: dict
    optim: dict = field(default_factory=dict)  # 'slot/name' -> array, plus 't' in meta
    state: list = field(default_factory=list)  # carried hidden state per layer
    path: Optional[str] = None

    @property
    def config(self):
        from .config import Config

        return Config.from_dict(self.meta["config"])

    def model(self):
        """The model these parameters belong to, ready for sampling or evaluation."""
        from .model import Model

        return Model.from_config(self.config, len(self.vocab)).set_params(self.params)


def save(path: str, params: dict, vocab, meta: dict, optim: Optional[dict] = None,
         state: Optional[list] = None) -> None:
    """Write a checkpoint atomically: it is either the old file or the complete new one."""
    meta = {"format": FORMAT, "charrnn_version": __version__, **meta}
    arrays = {f"param/{k}": np.asarray(v) for k, v in params.items()}
    arrays["vocab"] = np.asarray(vocab.codepoints, dtype=np.int32)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    for k, v in (optim or {}).items():
        if k != "t":
            arrays[f"optim/{k}"] = np.asarray(v)
    for i, s in enumerate(state or []):
        h, c = s if isinstance(s, tuple) else (s, None)  # an LSTM layer's state is (h, c)
        arrays[f"state/h.{i}"] = np.asarray(h)
        if c is not None:
            arrays[f"state/c.{i}"] = np.asarray(c)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + os.path.basename(path) + ".", dir=directory)
    try:
        # mkstemp makes the file 0600; a checkpoint is an ordinary file for whoever may read the directory.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Interrupted or failed: the old checkpoint stays; remove the partial one.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_stale(directory: str) -> list:
    """Remove temporary files that a crash during a save left behind."""
    removed = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.startswith(TMP_PREFIX):
                try:
                    os.unlink(os.path.join(directory, name))
                    removed.append(name)
                except OSError:
                    pass
    return removed


def load(path: str) -> Checkpoint:
    """Read and validate a checkpoint; any problem is a CheckpointError with one clear line."""
    from .config import Config
    from .errors import CharRNNError
    from .model import Model
    from .vocab import Vocab

    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint path is a directory: {path}")
    # Anything but a zip archive (an .npy array, text, random bytes) is refused before
    # np.load, which would return a bare array or suggest unpickling an untrusted file.
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if magic[:2] != b"PK":
        raise CheckpointError(f"{path} is not a charrnn checkpoint: not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib_error()) as exc:
        raise CheckpointError(f"{path} is not a readable charrnn checkpoint ({type(exc).__name__}: {exc})") from None
    def bad(why):
        return CheckpointError(f"{path} is not a valid charrnn checkpoint: {why}")

    for required in ("meta", "vocab"):
        if required not in arrays:
            raise bad(f"missing array {required!r}")
    meta_arr = arrays["meta"]
    if meta_arr.shape != () or meta_arr.dtype.kind != "U":
        raise bad("'meta' is not a JSON string")
    try:
        meta = json.loads(str(meta_arr))
    except ValueError:
        raise bad("'meta' is not valid JSON") from None
    if not isinstance(meta, dict):
        raise bad("'meta' is not a JSON object")
    fmt = meta.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise bad("no format version in 'meta'")
    if fmt > FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {fmt}, newer than this charrnn ({__version__}) reads ({FORMAT}); upgrade charrnn"
        )
    if not isinstance(meta.get("config"), dict):
        raise bad("no config in 'meta'")
    try:
        config = Config.from_dict(meta["config"])
    except CharRNNError as exc:
        raise bad(f"its config is invalid: {exc}") from None
    v = arrays["vocab"]
    if v.ndim != 1 or v.dtype.kind not in "iu" or len(v) == 0:
        raise bad("'vocab' is not a 1-d integer array")
    try:
        vocab = Vocab(v)
    except CharRNNError as exc:
        raise bad(str(exc)) from None
    model = Model.from_config(config, len(vocab))
    shapes = model.shapes()
    params = {k[len("param/"):]: a for k, a in arrays.items() if k.startswith("param/")}
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(shapes))
    if missing:
        raise bad(f"missing parameter {missing[0]!r}")
    if extra:
        raise bad(f"unexpected parameter {extra[0]!r}")
    for k, shape in shapes.items():
        a = params[k]
        if a.shape != tuple(shape):
            raise bad(f"parameter {k!r} has shape {a.shape}, expected {tuple(shape)} for vocabulary {len(vocab)}, hidden {config.hidden_size}")
        if a.dtype.kind != "f":
            raise bad(f"parameter {k!r} has dtype {a.dtype}, expected floating point")
        if not np.all(np.isfinite(a)):
            raise bad(f"parameter {k!r} holds NaN or infinite values")
    known_prefixes = ("param/", "optim/", "state/")
    unknown = sorted(k for k in arrays if k not in ("meta", "vocab") and not k.startswith(known_prefixes))
    if unknown:
        raise bad(f"unexpected array {unknown[0]!r}")
    optim = {k[len("optim/"):]: a for k, a in arrays.items() if k.startswith("optim/")}
    state = []
    for i in range(len(model.layers)):
        h, c = arrays.get(f"state/h.{i}"), arrays.get(f"state/c.{i}")
        if h is None:
            continue
        for name, a in ((f"state/h.{i}", h), (f"state/c.{i}", c)):
            if a is not None and (a.ndim != 2 or a.shape[1] != config.hidden_size or a.dtype.kind != "f"):
                raise bad(f"hidden state {name!r} has shape {a.shape}")
        if config.cell == "lstm":
            if c is None or c.shape != h.shape:
                raise bad(f"LSTM state 'state/h.{i}' has no matching 'state/c.{i}'")
            state.append((h, c))
        else:
            state.append(h)
    return Checkpoint(params, vocab, meta, optim, state, path)


def zlib_error():
    import zlib

    return zlib.error


def find(directory: str = "checkpoints") -> str:
    """best.npz if it exists, else latest.npz, in directory."""
    for name in ("best.npz", "latest.npz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise CheckpointError(f"no checkpoint in {directory}/ (train first, or pass --checkpoint PATH)")
