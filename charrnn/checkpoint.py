"""The checkpoint file: everything `sample`, `eval` and a resumed `train` need, in one .npz.

Layout (all plain arrays; read with np.load(path, allow_pickle=False)):
    param/<name>      model parameters, e.g. param/W_xh (V, H)
    vocab             int32 (V,): the vocabulary's Unicode code points, ascending
    meta              0-d str: JSON with format, charrnn_version, config, corpus_sha256,
                      step, epoch, chunk (the data cursor), elapsed, train_loss, val_loss,
                      best_val_loss, optim (the optimizer's scalars, e.g. its step t) and
                      rng (bit-generator state of each random generator training uses)
    optim/<slot>/<n>  optimizer state (Adam m and v, Adagrad mem), same shapes as params
    state/h.<l>       hidden state carried into the next chunk, layer l, (B, H)
    state/c.<l>       the LSTM's cell state carried with it, layer l, (B, H)
    history/<name>    float64 run history: train_loss (steps,), val_loss (validations, 2)
                      as (step, loss) rows

An encoder-decoder (meta "task": "seq2seq", seq2seq.py) has the same layout, with its
parameters under param/enc.<name> and param/dec.<name>, `vocab` its target vocabulary
(with the decoder's START and END markers, U+0002 and U+0003), `src_vocab` its source
vocabulary, and no state/ arrays; seq2seq_checkpoint.py validates it.

All reading and writing lives here; every write is atomic (temporary file in the same
directory, fsync, rename), so a crash mid-save never leaves a half-written checkpoint
where a good one was.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import __version__
from .errors import CheckpointError, CheckpointWriteError

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
    history: dict = field(default_factory=dict)  # 'train_loss' -> array, 'val_loss' -> array
    src_vocab: "object" = None  # an encoder-decoder's source vocabulary (vocab is its target's)

    @property
    def task(self) -> str:
        """'lm' (a language model) or 'seq2seq' (an encoder-decoder, seq2seq.py), from the metadata."""
        return self.meta.get("task", "lm")

    @property
    def config(self):
        from .config import Config

        return Config.from_dict(self.meta["config"])

    def model(self):
        """The model these parameters belong to, ready for sampling or evaluation."""
        from .model import Model

        if self.task == "seq2seq":
            from .seq2seq import Seq2Seq

            return Seq2Seq.from_config(self.config, len(self.src_vocab), len(self.vocab)).set_params(self.params)

        return Model.from_config(self.config, len(self.vocab)).set_params(self.params)


def save(path: str, params: dict, vocab, meta: dict, optim: Optional[dict] = None,
         state: Optional[list] = None, history: Optional[dict] = None, src_vocab=None) -> None:
    """Write a checkpoint atomically: it is either the old file or the complete new one.

    `optim` is an optimizer's state_dict(): its arrays go to optim/<key>, its scalars
    (the step counter t, ...) to meta["optim"]. An encoder-decoder also stores its source
    vocabulary (`src_vocab`) and says task "seq2seq" in meta.
    """
    optim = optim or {}
    scalars = {k: v.item() if isinstance(v, np.generic) else v for k, v in optim.items() if np.ndim(v) == 0}
    meta = {"format": FORMAT, "charrnn_version": __version__, **meta, "optim": scalars}
    arrays = {f"param/{k}": np.asarray(v) for k, v in params.items()}
    arrays["vocab"] = np.asarray(vocab.codepoints, dtype=np.int32)
    if src_vocab is not None:
        arrays["src_vocab"] = np.asarray(src_vocab.codepoints, dtype=np.int32)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    for k, v in optim.items():
        if k not in scalars:
            arrays[f"optim/{k}"] = np.asarray(v)
    for i, s in enumerate(state or []):
        h, c = s if isinstance(s, tuple) else (s, None)  # an LSTM layer's state is (h, c)
        arrays[f"state/h.{i}"] = np.asarray(h)
        if c is not None:
            arrays[f"state/c.{i}"] = np.asarray(c)
    for k, v in (history or {}).items():
        arrays[f"history/{k}"] = np.asarray(v)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f"{TMP_PREFIX}{os.path.basename(path)}.{secrets.token_hex(4)}")
        # Mode 0666 less the umask, as for any file a program writes: a checkpoint is an ordinary
        # file for whoever may read the directory (mkstemp's would be 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise CheckpointWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        # Interrupted or failed: the old checkpoint stays; remove the partial one.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):  # a full disk, a lost mount...
            raise CheckpointWriteError(f"cannot write {path}: {exc.strerror or exc}; the previous file is kept") from None
        raise
    _fsync_dir(directory)


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
    """Read and validate a checkpoint; any problem is a CheckpointError with one clear line.

    The file is untrusted input: nothing is unpickled, and whatever its bytes are (truncated,
    flipped, arrays renamed or swapped, metadata edited) the answer is either a checkpoint
    that passed every check below or a CheckpointError.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint path is a directory: {path}")
    arrays = _read_arrays(path)
    return _validate(path, arrays)


def _read_arrays(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if magic != b"PK\x03\x04":
        raise CheckpointError(f"{path} is not a charrnn checkpoint: not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except Exception as exc:  # noqa: BLE001
        # zipfile and numpy's header parser raise a zoo of types on damaged bytes (BadZipFile,
        # EOFError, ValueError, zlib.error, NotImplementedError, SyntaxError, MemoryError...);
        # all of them mean the same thing here: the file is damaged.
        raise CheckpointError(f"{path} is damaged and cannot be read ({type(exc).__name__}: {exc})"[:300]) from None
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):  # a member that is not an .npy comes back as bytes
            raise CheckpointError(f"{path} is not a valid charrnn checkpoint: member {name!r} is not an array")
    return arrays


def _validate(path: str, arrays: dict) -> Checkpoint:
    """Every array and the metadata checked in turn; the first problem is the CheckpointError."""
    from .model import Model

    def bad(why):
        return CheckpointError(f"{path} is not a valid charrnn checkpoint: {why}")

    for required in ("meta", "vocab"):
        if required not in arrays:
            raise bad(f"missing array {required!r}")
    meta, config = _read_meta(path, arrays["meta"], bad)
    if meta.get("task", "lm") != "lm":
        from .seq2seq_checkpoint import validate  # an encoder-decoder: its own layout checks

        return validate(path, arrays, meta, config, bad)
    vocab = _read_vocab(arrays["vocab"], bad)
    model = Model.from_config(config, len(vocab))
    shapes = {k: tuple(s) for k, s in model.shapes().items()}
    dtype = np.dtype(config.dtype)
    params = _read_params(arrays, shapes, dtype, bad, f"for vocabulary {len(vocab)}, hidden {config.hidden_size}")
    known_prefixes = ("param/", "optim/", "state/", "history/")
    unknown = sorted(k for k in arrays if k not in ("meta", "vocab") and not k.startswith(known_prefixes))
    if unknown:
        raise bad(f"unexpected array {unknown[0]!r}")
    optim = _read_optim(arrays, meta, shapes, dtype, bad)
    state = _read_state(arrays, len(model.layers), config, dtype, bad)
    history = _read_history(arrays, bad)
    return Checkpoint(params, vocab, meta, optim, state, path, history)


def _read_meta(path: str, meta_arr: np.ndarray, bad) -> tuple:
    """(meta, Config): the JSON metadata, of a format this charrnn reads, with a valid config."""
    from .config import Config
    from .errors import CharRNNError

    if meta_arr.shape != () or meta_arr.dtype.kind != "U":
        raise bad("'meta' is not a JSON string")
    try:
        meta = json.loads(str(meta_arr))
    except (ValueError, RecursionError):
        raise bad("'meta' is not valid JSON") from None
    if not isinstance(meta, dict):
        raise bad("'meta' is not a JSON object")
    fmt = meta.get("format")
    if not is_int(fmt) or fmt < 1:
        raise bad("no format version in 'meta'")
    if fmt > FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {fmt}, newer than this charrnn ({__version__}) reads ({FORMAT}); upgrade charrnn"
        )
    if not isinstance(meta.get("config"), dict):
        raise bad("no config in 'meta'")
    try:
        return meta, Config.from_dict(meta["config"])
    except CharRNNError as exc:
        raise bad(f"its config is invalid: {exc}") from None


def _read_vocab(v: np.ndarray, bad):
    from .errors import CharRNNError
    from .vocab import Vocab

    if v.ndim != 1 or v.dtype.kind not in "iu" or len(v) == 0:
        raise bad("'vocab' is not a 1-d integer array")
    try:
        return Vocab(v)
    except CharRNNError as exc:
        raise bad(str(exc)) from None


def _read_params(arrays: dict, shapes: dict, dtype: np.dtype, bad, model_is: str) -> dict:
    """param/<name>: exactly the model's parameters, each of its shape, finite floats."""
    params = _group(arrays, "param/")
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(shapes))
    if missing:
        raise bad(f"missing parameter {missing[0]!r}")
    if extra:
        raise bad(f"unexpected parameter {extra[0]!r}")
    for k, shape in shapes.items():
        a = params[k]
        if a.shape != shape:
            raise bad(f"parameter {k!r} has shape {a.shape}, expected {shape} {model_is}")
        _check_floats(bad, f"parameter {k!r}", a, dtype)
    return params


def _read_optim(arrays: dict, meta: dict, shapes: dict, dtype: np.dtype, bad) -> dict:
    """optim/<slot>/<name>: finite floats shaped as their parameter; plus meta's optimizer scalars."""
    optim = _group(arrays, "optim/")
    for k, a in optim.items():
        slot, _, name = k.partition("/")
        if name not in shapes:
            raise bad(f"optimizer state 'optim/{k}' belongs to no parameter")
        if a.shape != shapes[name]:
            raise bad(f"optimizer state 'optim/{k}' has shape {a.shape}, expected {shapes[name]}")
        _check_floats(bad, f"optimizer state 'optim/{k}'", a, dtype)
    scalars = meta.get("optim", {"t": meta.get("optim_t", 0)})  # optim_t: the first 0.1.0 layout
    if not isinstance(scalars, dict) or not all(is_int(x) or isinstance(x, float) for x in scalars.values()):
        raise bad("'optim' in 'meta' is not a mapping of numbers")
    if not is_int(scalars.get("t", 0)) or scalars.get("t", 0) < 0:
        raise bad("the optimizer's step counter is invalid")
    optim.update(scalars)
    return optim


def _read_state(arrays: dict, layers: int, config, dtype: np.dtype, bad) -> list:
    """state/h.<l> (and an LSTM's state/c.<l>): the carried state per layer, (batch, H) each."""
    state_arrays = _group(arrays, "state/")
    names = [f"{kind}.{i}" for i in range(layers) for kind in ("h", "c")]
    if set(state_arrays) - set(names):
        raise bad(f"unexpected hidden state 'state/{sorted(set(state_arrays) - set(names))[0]}'")
    state = []
    for i in range(layers):
        h, c = state_arrays.get(f"h.{i}"), state_arrays.get(f"c.{i}")
        if h is None:
            break
        for name, a in ((f"h.{i}", h), (f"c.{i}", c)):
            if a is None:
                continue
            if a.ndim != 2 or a.shape[1] != config.hidden_size:
                raise bad(f"hidden state 'state/{name}' has shape {a.shape}, expected (batch, {config.hidden_size})")
            _check_floats(bad, f"hidden state 'state/{name}'", a, dtype)
        if config.cell == "lstm":
            if c is None or c.shape != h.shape:
                raise bad(f"LSTM state 'state/h.{i}' has no matching 'state/c.{i}'")
            state.append((h, c))
        else:
            state.append(h)
    return state


def _read_history(arrays: dict, bad) -> dict:
    history = _group(arrays, "history/")
    for k, a in history.items():
        if a.dtype.kind != "f" or a.ndim not in (1, 2) or not np.all(np.isfinite(a)):
            raise bad(f"history 'history/{k}' is not a finite float array")
    return history


def _group(arrays: dict, prefix: str) -> dict:
    return {k[len(prefix):]: a for k, a in arrays.items() if k.startswith(prefix)}


def _check_floats(bad, what: str, a: np.ndarray, dtype: np.dtype) -> None:
    # Any floating dtype will do: the model and optimizer cast into their own buffers.
    if a.dtype.kind != "f":
        raise bad(f"{what} has dtype {a.dtype}, expected floating point ({dtype})")
    if not np.all(np.isfinite(a)):
        raise bad(f"{what} holds NaN or infinite values")


def is_int(x) -> bool:
    """A JSON integer (bool is an int in Python, and not one here)."""
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def model_and_vocab(source, command: str = "this") -> tuple:
    """The (model, vocabulary) that sampling, scoring, encoding and gradflow work on.

    `source` is a checkpoint or its path (a language model's: `command` names what refused
    an encoder-decoder), a (model, vocab) pair, or anything with .model and .vocab, such as
    the Result of a training run.
    """
    if isinstance(source, tuple):
        return source
    if isinstance(source, (str, Checkpoint)):
        checkpoint = require_lm(as_checkpoint(source), command)
        return checkpoint.model(), checkpoint.vocab
    return source.model, source.vocab


def require_lm(checkpoint: Checkpoint, command: str) -> Checkpoint:
    """Refuse, in one line, to run a language-model command on an encoder-decoder."""
    if checkpoint.task != "lm":
        raise CheckpointError(f"{command} needs a language model; {checkpoint.path or 'this checkpoint'} is an "
                              f"encoder-decoder (trained with --pairs): use charrnn translate")
    return checkpoint


def as_checkpoint(checkpoint) -> Checkpoint:
    """A loaded Checkpoint as it is; a path loaded (the library's functions take either)."""
    return load(checkpoint) if isinstance(checkpoint, str) else checkpoint


def find(directory: str = "checkpoints") -> str:
    """best.npz if it exists, else latest.npz, in directory."""
    for name in ("best.npz", "latest.npz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise CheckpointError(f"no checkpoint in {directory}/ (train first, or pass --checkpoint PATH)")


def read_meta(path: str) -> dict:
    """Only the 'meta' JSON of a checkpoint, without reading its arrays (for listings).

    Not validated beyond being a JSON object: use load() before using the checkpoint.
    """
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint path is a directory: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # noqa: BLE001  (as in _read_arrays: any failure means damaged)
        raise CheckpointError(f"{path} is damaged and cannot be read ({type(exc).__name__}: {exc})"[:300]) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is not a valid charrnn checkpoint: 'meta' is not a JSON object")
    return meta
