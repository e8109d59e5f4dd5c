"""charrnn: character-level recurrent language models in numpy.

The library is the product; the `charrnn` command is a thin layer over it.
Heavy modules are imported lazily so that `charrnn sample` starts quickly.
"""

__version__ = "0.1.0"

from .errors import CharRNNError  # noqa: E402  (cheap: no numpy)


def __getattr__(name):
    # Lazy re-exports: `import charrnn` stays cheap, `charrnn.train(...)` still works.
    lazy = {
        "Config": ("config", "Config"),
        "load": ("checkpoint", "load"),
        "train": ("train", "train"),
        "sample": ("sample", "sample"),
        "evaluate": ("evaluate", "evaluate"),
        "Vocab": ("vocab", "Vocab"),
    }
    if name in lazy:
        import importlib

        module, attr = lazy[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


__all__ = ["CharRNNError", "Config", "load", "train", "sample", "evaluate", "Vocab", "__version__"]
