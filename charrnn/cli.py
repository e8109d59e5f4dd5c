"""The `charrnn` command: a thin layer of click over the library.

Exit statuses: 0 done, 1 error (one line on stderr), 2 usage error, 130/143 interrupted.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import fields

import click

from . import __version__
from .errors import CharRNNError

DEFAULT_DIR = "checkpoints"


def friendly_errors(fn):
    """Our own errors become one line on stderr and exit 1; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CharRNNError as exc:
            raise click.ClickException(str(exc)) from None
        except MemoryError:
            raise click.ClickException("out of memory: try a smaller --batch-size or --hidden-size") from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="charrnn")
def main():
    """Train character-level recurrent language models, then sample and score text."""


def config_options(fn):
    """One --flag per Config field (hidden_size -> --hidden-size), help from the dataclass."""
    from .config import Config, field_type

    for f in reversed(fields(Config)):
        choices = f.metadata.get("choices")
        ftype = click.Choice(choices) if choices else field_type(f)
        flag = "--" + f.name.replace("_", "-")
        fn = click.option(flag, f.name, type=ftype, default=None,
                          help=f"{f.metadata['help']} [default: {f.default}]")(fn)
    return fn


@main.command()
@click.argument("corpus", nargs=-1, required=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config; flags override it.")
@click.option("--out", default=DEFAULT_DIR, show_default=True, help="Directory for latest.npz and best.npz.")
@click.option("--force", is_flag=True, help="Overwrite checkpoints already in --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@config_options
@friendly_errors
def train(corpus, config_file, out, force, quiet, **overrides):
    """Train on CORPUS (UTF-8 text files, or - for stdin; several are concatenated)."""
    from .config import resolve
    from .progress import Progress
    from .train import Interrupted, train as run

    config = resolve(config_file, overrides)
    progress = Progress(quiet)
    try:
        result = run(config, list(corpus), out=out, callback=progress, force=force)
    except Interrupted as exc:
        progress.close()
        click.echo(f"charrnn: {exc}", err=True)
        sys.exit(exc.exit_code)
    finally:
        progress.close()
    progress.summary(result)


@main.command()
@click.option("--checkpoint", type=click.Path(), help=f"Checkpoint file [default: {DEFAULT_DIR}/best.npz, else latest.npz].")
@click.option("--temp", "temperature", type=click.FloatRange(min=0), default=0.8, show_default=True,
              help="Sampling temperature: lower is safer, higher more surprising; 0 takes the likeliest character.")
@click.option("--length", type=click.IntRange(min=0), default=1000, show_default=True, help="Characters to generate after the prime.")
@click.option("--prime", default="", help="Text to start from; it is printed first.")
@click.option("--seed", type=int, default=None, help="Random seed: the same seed gives the same text.")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Draw only from the K likeliest characters.")
@friendly_errors
def sample(checkpoint, temperature, length, prime, seed, top_k):
    """Generate text from a trained model, written to stdout as it is produced."""
    from . import checkpoint as ckpt
    from .sample import sample as generate

    model = ckpt.load(checkpoint or ckpt.find(DEFAULT_DIR))
    out = StreamWriter(sys.stdout)
    with out:
        for text in generate(model, length, temperature, prime, seed, top_k):
            out.write(text)
        out.write("\n")


@main.command("eval")
@click.argument("file")
@click.option("--checkpoint", type=click.Path(), help=f"Checkpoint file [default: {DEFAULT_DIR}/best.npz, else latest.npz].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly_errors
def eval_(file, checkpoint, as_json):
    """Score FILE (- for stdin): loss in nats/char, bits/char, perplexity."""
    from . import checkpoint as ckpt
    from .data import read_text
    from .evaluate import evaluate

    model = ckpt.load(checkpoint or ckpt.find(DEFAULT_DIR))
    score = evaluate(model, read_text(file))
    if as_json:
        click.echo(json.dumps(score.to_dict()))
    else:
        click.echo(f"loss {score.loss:.4f} nats/char  {score.bits_per_char:.4f} bits/char  "
                   f"perplexity {score.perplexity:.3f}  ({score.predictions} predictions)")


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config whose model shape to measure.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=None, help="H [default: 512, or the config's].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="B [default: 64, or the config's].")
@click.option("--seq-len", type=click.IntRange(min=1), default=None, help="T [default: 64, or the config's].")
@click.option("--vocab-size", type=click.IntRange(min=2), default=84, show_default=True, help="V, as in the full Shakespeare corpus.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="Time spent measuring training.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly_errors
def bench(config_file, hidden_size, batch_size, seq_len, vocab_size, seconds, as_json):
    """Measure training, sampling and evaluation speed on this machine."""
    from .bench import run
    from .config import resolve

    given = {"hidden_size": hidden_size, "batch_size": batch_size, "seq_len": seq_len}
    defaults = {} if config_file else {"hidden_size": 512, "batch_size": 64, "seq_len": 64}
    overrides = {**defaults, **{k: v for k, v in given.items() if v is not None}, "dtype": "float32"}
    config = resolve(config_file, overrides)
    result = run(config, vocab_size, seconds, progress=lambda name: click.echo(f"measuring {name}...", err=True))
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    r = result
    rows = [
        ("float32 matmul peak (2048^3)", f"{r.matmul_gflops:,.0f} GFLOP/s"),
        (f"train chars/s (H={r.hidden_size} B={r.batch_size} T={r.seq_len} V={r.vocab_size})", f"{r.train_chars_per_sec:,.0f}"),
        ("train share of matmul peak", f"{r.share_of_peak:.0%} ({r.train_gflops:,.0f} GFLOP/s)"),
        ("sample chars/s, one stream", f"{r.sample_chars_per_sec:,.0f}"),
        ("sample chars/s, 64 streams in total", f"{r.sample64_chars_per_sec:,.0f}"),
        ("eval chars/s, one stream", f"{r.eval_chars_per_sec:,.0f}"),
    ]
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        click.echo(f"{a:<{width}}  {b}")


@main.command()
@click.argument("file")
@click.option("--checkpoint", type=click.Path(), help=f"Checkpoint file [default: {DEFAULT_DIR}/best.npz, else latest.npz].")
@click.option("--steps", type=click.IntRange(min=1), default=50, show_default=True, help="How many steps back (K).")
@click.option("--windows", type=click.IntRange(min=1), default=256, show_default=True, help="Windows of FILE averaged over.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, {\"flows\": [...]}, instead of the table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Draw the curves into this PNG (needs matplotlib).")
@click.option("--compare-activations", is_flag=True, help="Train small tanh, relu and sigmoid models on FILE and compare them.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="With --compare-activations: training time per model.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=64, show_default=True, help="With --compare-activations: H of each model.")
@friendly_errors
def gradflow(file, checkpoint, steps, windows, as_json, plot_path, compare_activations, seconds, hidden_size):
    """How d(loss at the last step)/d(h k steps earlier) shrinks or grows with k, on FILE (- for stdin)."""
    from . import gradflow as gf
    from .data import read_text

    if plot_path:
        gf.require_matplotlib()  # fail before any work, not after it
    text = read_text(file)
    if compare_activations:
        flows = gf.compare_activations(text, seconds, hidden_size, steps, windows,
                                       progress=lambda msg: click.echo(msg, err=True))
    else:
        from . import checkpoint as ckpt
        flows = [gf.flow_of_checkpoint(checkpoint or ckpt.find(DEFAULT_DIR), text, steps, windows)]
    if plot_path:
        gf.plot(flows, plot_path, f"gradient flow on {os.path.basename(file) if file != '-' else 'stdin'}")
    click.echo(json.dumps({"flows": [f.to_dict() for f in flows]}) if as_json else gf.format_table(flows))


@main.command()
@click.option("--word", default="hello", show_default=True, help="The text to learn.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training updates [default: 300, as configs/hello.yaml].")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the initial weights.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly_errors
def hello(word, steps, seed, as_json):
    """The seed's walk-through: an RNN learns "hello"; its outputs before and after training."""
    from .walkthrough import format_walkthrough, hello as run

    result = run(word, steps, seed)
    click.echo(json.dumps(result.to_dict()) if as_json else format_walkthrough(result))


class StreamWriter:
    """Writes text as it comes, flushing at line ends and at least every 0.1 s.

    A closed pipe (`| head`) ends the output quietly with status 0.
    """

    def __init__(self, stream, interval: float = 0.1):
        import time

        self.stream, self.interval, self._clock = stream, interval, time.monotonic
        self._last = self._clock()

    def write(self, text: str) -> None:
        self.stream.write(text)
        now = self._clock()
        if "\n" in text or now - self._last >= self.interval:
            self.stream.flush()
            self._last = now

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.stream.flush()
            except BrokenPipeError:
                exc_type = BrokenPipeError
        if exc_type is BrokenPipeError:
            # Point stdout at /dev/null so the interpreter's final flush does not fail too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        return False


if __name__ == "__main__":
    main()
