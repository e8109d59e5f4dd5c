"""The one training configuration: defaults here, then a YAML file, then command-line flags.

Every field carries its help text in `metadata`; the CLI builds its `train` options from
these fields, so a config key and its flag can never drift apart (`hidden_size` <->
`--hidden-size`).
"""
from __future__ import annotations

import codecs
import dataclasses
import functools
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from .errors import ConfigError

ACTIVATIONS = ("tanh", "relu", "sigmoid")
CELLS = ("elman", "lstm", "gru")
OPTIMIZERS = ("adam", "adagrad", "rmsprop", "sgd")
LR_SCHEDULES = ("constant", "step", "cosine")
CLIP_MODES = ("norm", "value")
DTYPES = ("float32", "float64")
INITS = ("uniform", "normal", "orthogonal")
BYTES = "bytes"  # the encoding of a byte-level vocabulary: every byte is one character
# Fields a resumed run may change (limits, cadences, step size). Every other field shapes
# the model, the data or the trajectory, so `--resume` refuses a different value.
MAY_CHANGE_ON_RESUME = ("lr", "clip", "max_steps", "epochs", "max_time", "eval_every", "save_every",
                        "log_every", "patience", "keep_every", "sample_every", "sample_length", "sample_temp",
                        "threads", "kernels")


def _f(default, help, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class Config:
    hidden_size: int = _f(128, "hidden units per layer (H)")
    cell: str = _f("elman", "recurrent cell: elman, lstm or gru", CELLS)
    activation: str = _f("tanh", "Elman activation: tanh, relu or sigmoid", ACTIVATIONS)
    layers: int = _f(1, "stacked recurrent layers (L)")
    dropout: float = _f(0.0, "dropout probability between layers and before the output layer (training only)")
    batch_size: int = _f(32, "parallel streams per update (B)")
    seq_len: int = _f(64, "characters per stream per update: the BPTT window (T)")
    tbptt_stride: Optional[int] = _f(None, "TBPTT(k1, k2): advance this many characters (k1) per update and "
                                           "backpropagate through the last seq_len (k2); unset, k1 = seq_len")
    optimizer: str = _f("adam", "adam, adagrad (as in min-char-rnn), rmsprop, or sgd with momentum", OPTIMIZERS)
    lr: float = _f(2e-3, "learning rate (the peak one, with a schedule)")
    momentum: float = _f(0.9, "SGD momentum (0 for plain SGD)")
    weight_decay: float = _f(0.0, "decoupled weight decay per unit lr on weight matrices (not biases)")
    lr_schedule: str = _f("constant", "learning rate after warmup: constant, step, or cosine to lr_min", LR_SCHEDULES)
    warmup_steps: int = _f(0, "raise the learning rate linearly from lr/warmup_steps to lr over this many updates")
    lr_decay: float = _f(0.5, "step schedule: multiply the learning rate by this every lr_decay_every updates")
    lr_decay_every: int = _f(1000, "step schedule: updates between decays")
    lr_min: float = _f(0.0, "cosine schedule: the learning rate at the end of training")
    clip: float = _f(5.0, "clip gradients to this (0 turns clipping off); see clip_mode")
    clip_mode: str = _f("norm", "norm: scale all gradients so their global norm is at most clip; "
                        "value: clip each element to [-clip, clip]", CLIP_MODES)
    patience: Optional[int] = _f(None, "stop early after this many validations without a better loss")
    init: str = _f("uniform", "weight initialisation: uniform U(-S/sqrt(H), S/sqrt(H)) (the cells' own), "
                              "normal N(0, S^2), or orthogonal (S x orthogonal blocks); S is init_scale", INITS)
    init_scale: float = _f(1.0, "S, the scale of the init scheme's weights")
    init_from: Optional[str] = _f(None, "start from this checkpoint's weights (fine-tuning); its cell and sizes are kept")
    max_steps: Optional[int] = _f(None, "stop after this many updates")
    epochs: Optional[float] = _f(None, "stop after this many passes over the training text")
    max_time: Optional[float] = _f(None, "stop after this many seconds of training")
    val_fraction: float = _f(0.05, "fraction of the corpus, taken from its end, held out for validation")
    val: Optional[list] = _f(None, "validate on these files instead of a held-out tail (the whole corpus then "
                                   "trains); several allowed: --val a.txt --val b.txt")
    encoding: str = _f("utf-8", "how to read the corpus: a Python codec (utf-8, latin-1, cp1252, utf-16, ...), "
                                "or bytes for a byte-level vocabulary of any file (also --bytes)")
    eval_every: int = _f(200, "validate every this many updates")
    save_every: int = _f(200, "write latest.npz every this many updates")
    log_every: int = _f(10, "write a row to metrics.jsonl every this many updates")
    keep_every: Optional[int] = _f(None, "also keep a checkpoint of every this many updates, as step-NNNNNN.npz "
                                         "(charrnn info lists them)")
    sample_every: Optional[int] = _f(None, "print a short sample from the current weights every this many updates "
                                           "(stderr and metrics.jsonl); it does not change the run")
    sample_length: int = _f(200, "characters in each --sample-every sample")
    sample_temp: float = _f(0.8, "temperature of the --sample-every samples (their seed is the run's seed)")
    seed: int = _f(0, "random seed for initialisation and sampling of the run")
    dtype: str = _f("float32", "float32, or float64 for exact checks", DTYPES)
    threads: Optional[int] = _f(None, "BLAS threads to compute with (also CHARRNN_THREADS); unset: auto, "
                                      "training times 1 against the CPUs this process may use and keeps the faster")
    kernels: str = _f("auto", "training's gate maths: numba (compiled loops, the extra charrnn[fast]), numpy, "
                              "or auto: numba where it is installed", ("auto", "numpy", "numba"))

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            _check_type(f, value)
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise ConfigError(f"{f.name}: {value!r} is not one of {', '.join(choices)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and value != value:
                raise ConfigError(f"{f.name}: must be a number, got nan")
        positive_ints = ("hidden_size", "batch_size", "seq_len", "eval_every", "save_every", "log_every",
                         "layers", "lr_decay_every")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.tbptt_stride is not None and not 1 <= self.tbptt_stride <= self.seq_len:
            raise ConfigError(f"tbptt_stride: must be between 1 and seq_len ({self.seq_len}), got {self.tbptt_stride}")
        if not self.lr > 0:
            raise ConfigError(f"lr: must be positive, got {self.lr}")
        if self.cell != "elman" and self.activation != "tanh":
            raise ConfigError(f"activation: {self.activation!r} applies to the Elman cell only, not {self.cell!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout: must be in [0, 1), got {self.dropout}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum: must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay: must be 0 or positive, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps: must be 0 or more, got {self.warmup_steps}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay: must be in (0, 1], got {self.lr_decay}")
        if not 0 <= self.lr_min <= self.lr:
            raise ConfigError(f"lr_min: must be in [0, lr], got {self.lr_min}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads: must be at least 1, got {self.threads}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience: must be at least 1, got {self.patience}")
        for name in ("keep_every", "sample_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}: must be at least 1, got {value}")
        if self.sample_length < 1:
            raise ConfigError(f"sample_length: must be at least 1, got {self.sample_length}")
        if self.sample_temp < 0:
            raise ConfigError(f"sample_temp: must be 0 or more, got {self.sample_temp}")
        if self.val is not None:
            if not self.val:
                raise ConfigError("val: give at least one file, or leave it out")
            if "-" in self.val:
                raise ConfigError("val: takes files; '-' (stdin) is for the corpus")
        if not self.init_scale > 0:
            raise ConfigError(f"init_scale: must be positive, got {self.init_scale}")
        if self.clip < 0:
            raise ConfigError(f"clip: must be 0 (off) or positive, got {self.clip}")
        try:
            check_encoding(self.encoding)
        except ConfigError as exc:
            raise ConfigError(f"encoding: {exc}") from None
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction: must be in [0, 1), got {self.val_fraction}")
        for name in ("max_steps", "epochs", "max_time"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name}: must be positive, got {value}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        """Build a config from plain data, rejecting unknown keys and wrong types by name."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown config key {unknown[0]!r} (known: {', '.join(known)})")
        values = {}
        for name, value in data.items():
            values[name] = _coerce(name, known[name], value)
        return cls(**values)

    def replace(self, **changes) -> "Config":
        return Config.from_dict({**self.to_dict(), **changes})


def check_encoding(encoding: str) -> str:
    """The encoding if Python has a text codec of that name (or it is "bytes"); else a ConfigError."""
    if encoding == BYTES:
        return encoding
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r} (try utf-8, latin-1, cp1252, utf-16, or bytes)") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ConfigError(f"{encoding!r} is not a text encoding (try utf-8, latin-1, cp1252, utf-16, or bytes)")
    return encoding


@functools.lru_cache(maxsize=None)
def _field_types() -> dict:
    """name -> (plain type, whether None is allowed) of every Config field, from its annotation."""
    types = {}
    for name, hint in typing.get_type_hints(Config).items():
        args = typing.get_args(hint)  # Optional[int] is Union[int, None]
        types[name] = (next(a for a in args if a is not type(None)) if args else hint, type(None) in args)
    return types


def field_type(f: dataclasses.Field) -> type:
    """The plain Python type of a field (int, float or str), Optional stripped."""
    return _field_types()[f.name][0]


def _optional(f: dataclasses.Field) -> bool:
    return _field_types()[f.name][1]


def _check_type(f: dataclasses.Field, value: Any) -> None:
    # Config(...) built in Python gets the same named error as a YAML file, not a TypeError.
    if value is None and _optional(f):
        return
    t = field_type(f)
    allowed = (int, float) if t is float else t
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ConfigError(f"{f.name}: expected {t.__name__}, got {type(value).__name__} {value!r}")
    if t is list and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{f.name}: expected a list of file names, got {value!r}")


def _coerce(name: str, f: dataclasses.Field, value: Any) -> Any:
    if value is None:
        if _optional(f):
            return None
        raise ConfigError(f"{name}: a value is required")
    t = field_type(f)
    if t is list:  # a list of names: one name alone, as YAML `val: held_out.txt`, is a list of one
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{name}: expected a file name or a list of them, got {value!r}")
        return items
    # bool is an int in Python; a YAML `true` for a number is a mistake worth naming.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{name}: expected {t.__name__}, got {type(value).__name__} {value!r}")
    if t is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if t is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if isinstance(value, str):
        # YAML 1.1 (PyYAML) reads `lr: 1e-3` as the string '1e-3': take it as the number meant.
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    try:
        return float(value)
    except OverflowError:
        raise ConfigError(f"{name}: {value} is too large") from None


def load_yaml(path: str) -> dict:
    """Read a YAML config file into a dict, with one-line errors."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of keys to values")
    return data


def resolve(config_path: Optional[str] = None, overrides: Optional[dict] = None,
            base: Optional[dict] = None) -> Config:
    """Defaults (or `base`, e.g. a resumed run's config), then the YAML file, then explicit
    overrides (None means 'not given')."""
    data = dict(base or {})
    data.update(load_yaml(config_path) if config_path else {})
    # None, or () from a repeatable option, means "not given".
    data.update({k: v for k, v in (overrides or {}).items() if v is not None and v != ()})
    return Config.from_dict(data)
