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

from .errors import CharRNNError  # cheap: no numpy

# name -> (module, attribute) for the lazy re-exports. No module is named like a function
# it exports (training.train, sampling.sample), so importing a module never hides a function.
_LAZY = {
    "Config": ("config", "Config"),
    "load": ("checkpoint", "load"),
    "train": ("training", "train"),
    "sample": ("sampling", "sample"),
    "samples": ("sampling", "samples"),
    "likeliest": ("sampling", "likeliest"),
    "evaluate": ("scoring", "evaluate"),
    "score_lines": ("scoring", "score_lines"),
    "encode": ("vectors", "encode"),
    "plot": ("plotting", "plot"),
    "Vocab": ("vocab", "Vocab"),
    "char_scores": ("surprise", "char_scores"),
    "hidden_states": ("surprise", "hidden_states"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


__all__ = ["CharRNNError", "__version__", *_LAZY]
