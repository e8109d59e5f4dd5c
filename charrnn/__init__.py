"""charrnn: character-level recurrent language models in numpy.

The library is the product; the `charrnn` command is a thin layer over it:

    import charrnn
    result = charrnn.train(charrnn.Config(hidden_size=64, max_steps=500), "data/hello.txt", out="ckpt")
    model = charrnn.load("ckpt/latest.npz")
    text = "".join(charrnn.sample(model, length=200, seed=1))
    score = charrnn.evaluate(model, "some text")          # .loss nats/char, .bits_per_char
    vectors = charrnn.encode(model, ["a line", "another"])  # (2, H) final hidden states

Heavy modules (numpy and up) are imported lazily so that `import charrnn` and
`charrnn sample` start quickly.
"""

__version__ = "0.1.0"

import sys as _sys
import types as _types

from .errors import CharRNNError  # noqa: E402  (cheap: no numpy)

# name -> (module, attribute) for the lazy re-exports.
_LAZY = {
    "Config": ("config", "Config"),
    "load": ("checkpoint", "load"),
    "train": ("train", "train"),
    "sample": ("sample", "sample"),
    "samples": ("sample", "samples"),
    "evaluate": ("evaluate", "evaluate"),
    "score_lines": ("evaluate", "score_lines"),
    "encode": ("encode", "encode"),
    "plot": ("plot", "plot"),
    "Vocab": ("vocab", "Vocab"),
}


def _resolve(name):
    import importlib

    module, attr = _LAZY[name]
    return getattr(importlib.import_module(f".{module}", __name__), attr)


class _Package(_types.ModuleType):
    # `charrnn.train` is both a function and a submodule's name, and importing the
    # submodule `charrnn.train` binds the module over the name. Reading these names
    # through __getattribute__ keeps `charrnn.train(...)` the function whatever was
    # imported before. (`from charrnn.train import train` still reaches the module.)
    def __getattribute__(self, name):
        if name in _LAZY:
            return _resolve(name)
        return super().__getattribute__(name)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name):
    if name in _LAZY:
        return _resolve(name)
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


__all__ = ["CharRNNError", "__version__", *_LAZY]
