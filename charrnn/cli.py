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
            raise click.ClickException(str(exc) + environment_note(click.get_current_context(), str(exc))) from None
        except MemoryError:
            raise click.ClickException("out of memory: try a smaller --batch-size or --hidden-size") from None

    return wrapper


class CharRNNGroup(click.Group):
    """The command group: Ctrl-C exits 130 and a closed pipe exits 0, in every command,
    and a usage error is one line on stderr (click would print three)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        name_environment_variables(self)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            # Plain `charrnn`: the help, as click does.
            if isinstance(exc, click.exceptions.NoArgsIsHelpError):
                click.echo(exc.format_message(), err=True)
                sys.exit(exc.exit_code)
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            message = exc.format_message()
            note = environment_note(exc.ctx, message) if exc.ctx is not None else ""
            click.echo(f"Error: {message.rstrip('.') if note else message}{note}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("charrnn: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("charrnn: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # `charrnn ... | head`: the reader has all it wants; that is success.
            _stdout_to_devnull()
            ctx.exit(0)


def name_environment_variables(group: click.Group) -> None:
    """Each option's variable is CHARRNN_<COMMAND>_<LONG FLAG> (CHARRNN_SAMPLE_TEMP for --temp),
    not click's default, which follows the Python parameter name (..._TEMPERATURE)."""
    for command_name, command in group.commands.items():
        for p in command.params:
            if isinstance(p, click.Option) and p.envvar is None and p.allow_from_autoenv:
                flag = max(p.opts, key=len).lstrip("-").replace("-", "_").upper()
                p.envvar = f"CHARRNN_{command_name.upper()}_{flag}"


def environment_note(ctx, message: str) -> str:
    """'; CHARRNN_TRAIN_HIDDEN_SIZE=32 is set in the environment' when an error is about an
    option whose value came from a variable, so a stray variable is named, not guessed at."""
    import re

    from click.core import ParameterSource

    notes = []
    for p in ctx.command.params:
        if ctx.get_parameter_source(p.name) is not ParameterSource.ENVIRONMENT:
            continue
        flags = [o for o in p.opts if o.startswith("--")]
        if re.search(rf"\b{p.name}\b", message) or any(f"'{f}'" in message or f"{f} " in message for f in flags):
            names = [p.envvar] if isinstance(p.envvar, str) else list(p.envvar or [])
            names += [f"{ctx.auto_envvar_prefix}_{p.name.upper()}"] if ctx.auto_envvar_prefix else []
            var = next((n for n in names if n in os.environ), names[0] if names else p.name)
            notes.append(f"{var}={os.environ.get(var, '')}")
    return f"; {' and '.join(notes)} {'is' if len(notes) == 1 else 'are'} set in the environment" if notes else ""


# The order of precedence of a value: Config's default, then --config YAML, then the
# environment, then a flag on the command line.
# auto_envvar_prefix: every option can come from CHARRNN_<COMMAND>_<OPTION>
# (CHARRNN_SAMPLE_TEMP=0.5, CHARRNN_TRAIN_HIDDEN_SIZE=256); --checkpoint also from CHARRNN_CHECKPOINT.
@click.group(cls=CharRNNGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                 "auto_envvar_prefix": "CHARRNN"})
@click.version_option(__version__, prog_name="charrnn", allow_from_autoenv=False)
def main():
    """Train character-level recurrent language models, then sample, score and encode text.

    Data goes to stdout, messages to stderr. Exit status: 0 done, 1 error, 2 usage error,
    130 interrupted (143 for a terminated train). FILE arguments take - for stdin.
    """


def checkpoint_option(fn):
    return click.option(
        "--checkpoint", type=click.Path(), envvar="CHARRNN_CHECKPOINT",
        help=f"Checkpoint file [default: {DEFAULT_DIR}/best.npz, else latest.npz; env CHARRNN_CHECKPOINT].")(fn)


def load_checkpoint(path, task=None):
    """The checkpoint at path (default: DEFAULT_DIR's best, else latest); with `task`, refuse another kind."""
    from . import checkpoint as ckpt

    ck = ckpt.load(path or ckpt.find(DEFAULT_DIR))
    if task == "lm":
        ckpt.require_lm(ck, f"charrnn {click.get_current_context().info_name}")
    return ck


THREADS_HELP = ("BLAS threads to compute with [default: auto: training times one thread against the CPUs "
                "this process may use and keeps the faster, other commands use one; env CHARRNN_THREADS].")


def use_threads(n) -> None:
    """Apply --threads: called before numpy is imported, so that it works without threadpoolctl."""
    from .errors import ConfigError
    from .threads import set_threads

    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"threads: must be a whole number, at least 1, got {n!r}")
    set_threads(n)


def threads_option(fn):
    """--threads N (env CHARRNN_THREADS) for a command that computes, applied before it runs."""

    @functools.wraps(fn)
    def wrapper(*args, threads=None, **kwargs):
        use_threads(threads)
        return fn(*args, **kwargs)

    return click.option("--threads", type=click.IntRange(min=1), default=None, envvar="CHARRNN_THREADS",
                        help=THREADS_HELP)(wrapper)


def encoding_options(fn):
    """--encoding and --bytes for a command that reads text for a trained model."""
    fn = click.option("--bytes", "bytes", is_flag=True, help="Read FILE as bytes (a model trained with --bytes does anyway).")(fn)
    return click.option("--encoding", default=None,
                        help="Read FILE in this encoding [default: the one the model was trained with].")(fn)


def read_for(model, file, encoding, as_bytes) -> str:
    """FILE read as the model's training text was, unless --encoding says otherwise; a
    byte-level model and a character model never read each other's input."""
    from .data import read_text, reading_encoding

    return read_text(file, reading_encoding(model.config.encoding, encoding_option(encoding, as_bytes)))


def config_options(fn):
    """One --flag per Config field (hidden_size -> --hidden-size), help from the dataclass."""
    from .config import Config, field_type

    for f in reversed(fields(Config)):
        choices = f.metadata.get("choices")
        ftype = click.Choice(choices) if choices else field_type(f)
        flag = "--" + f.name.replace("_", "-")
        many = ftype is list  # a list key is a repeatable flag: --val a.txt --val b.txt
        env = {"envvar": "CHARRNN_THREADS"} if f.name == "threads" else {}  # one variable for every command
        fn = click.option(flag, f.name, type=str if many else ftype, default=None, multiple=many,
                          help=f"{f.metadata['help']} [default: {f.default}]", **env)(fn)
    return fn


def bytes_option(fn):
    # The parameter is named "bytes" so that its environment variable is CHARRNN_TRAIN_BYTES;
    # it arrives in **overrides and is taken out there.
    return click.option("--bytes", "bytes", is_flag=True, default=None,
                        help="A byte-level vocabulary: every byte of any file is one symbol (same as --encoding bytes).")(fn)


def encoding_option(encoding, as_bytes):
    """--encoding NAME and --bytes as one value (None: not given)."""
    if as_bytes and encoding not in (None, "bytes"):
        raise click.UsageError(f"--bytes and --encoding {encoding} contradict each other; give one")
    return "bytes" if as_bytes else encoding


@main.command()
@click.argument("corpus", nargs=-1, metavar="CORPUS...")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config; flags override it.")
@click.option("--out", default=None, help=f"Directory for latest.npz and best.npz. [default: {DEFAULT_DIR}]")
@click.option("--force", is_flag=True, help="Overwrite checkpoints already in --out.")
@click.option("--resume", is_flag=False, flag_value="", default=None, metavar="[DIR]",
              help="Continue the run in DIR/latest.npz exactly where it stopped [DIR: --out]; "
                   "give the same corpus; limits count from the run's start.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--pairs", "pairs_file", default=None, metavar="PAIRS.tsv",
              help="Train an encoder-decoder on source TAB target lines (- for stdin) instead of a language model.")
@bytes_option
@config_options
@friendly_errors
def train(corpus, config_file, out, force, resume, quiet, pairs_file, **overrides):
    """Train on CORPUS (text files, UTF-8 unless --encoding or --bytes, or - for stdin; several are concatenated).

    With --pairs PAIRS.tsv instead: an encoder-decoder that learns to write each line's
    target from its source (then: charrnn translate).
    """
    from .config import load_yaml

    # Threads first, before numpy loads: a flag or CHARRNN_THREADS, else the config file's.
    use_threads(overrides["threads"] if overrides["threads"] is not None
                else (load_yaml(config_file) if config_file else {}).get("threads"))
    if pairs_file is not None:
        if overrides.pop("bytes"):
            raise click.UsageError("--bytes applies to language models, not to --pairs")
        return train_pairs(corpus, config_file, out, force, resume, quiet, pairs_file, overrides)
    from .config import resolve
    from .metrics import FILENAME, MetricsRecorder
    from .progress import Progress
    from .resume import load_latest
    from .training import Run, fan_out, prepare_out

    overrides["encoding"] = encoding_option(overrides.get("encoding"), overrides.pop("bytes"))
    out, resume = run_dir(corpus, resume, out), resume is not None
    config = resolve(config_file, overrides, base=load_latest(out).meta["config"] if resume else None)
    if config.threads is not None:
        use_threads(config.threads)  # a resumed run's own setting
    progress = Progress(quiet, max_time=config.max_time)
    metrics = MetricsRecorder(os.path.join(out, FILENAME), config.log_every)

    def train_lm():
        run = Run(config, list(corpus), out, callback=fan_out([progress, metrics]), resume=resume)
        prepare_out(out, force, resume)
        return run.train()

    report_training(progress, train_lm)


def report_training(progress, train):
    """Run train() under the progress bar; a stop by signal is one line and its exit status."""
    from .training import Interrupted

    try:
        result = train()
    except Interrupted as exc:
        progress.close()
        click.echo(f"charrnn: {exc}", err=True)
        sys.exit(exc.exit_code)
    finally:
        progress.close()
    progress.summary(result)


def train_pairs(corpus, config_file, out, force, resume, quiet, pairs_file, overrides):
    if corpus:
        raise click.UsageError(f"give a CORPUS or --pairs, not both (got {corpus[0]} and --pairs {pairs_file})")
    from .config import resolve
    from .progress import Progress
    from .resume import load_latest
    from .seq2seq_training import train_pairs as run

    out = run_dir((pairs_file,), resume, out)
    defaults = {"cell": "lstm", "batch_size": 64}  # the encoder-decoder's own defaults
    config = resolve(config_file, overrides, base=load_latest(out).meta["config"] if resume is not None else defaults)
    progress = Progress(quiet, max_time=config.max_time)
    report_training(progress, lambda: run(config, pairs_file, out=out, callback=progress, force=force,
                                          resume=resume is not None))


def run_dir(corpus, resume, out) -> str:
    """The directory of `train CORPUS... [--out DIR] [--resume [DIR]]`, with usage errors for
    the mix-ups an optional value allows (`train --resume corpus.txt`)."""
    if resume and os.path.isfile(resume):
        raise click.UsageError(f"--resume takes a run directory, and {resume} is a file; "
                               f"put the corpus first: charrnn train {resume} --resume")
    if not corpus:
        raise click.UsageError("Missing argument 'CORPUS...'.")
    if resume and out and os.path.normpath(resume) != os.path.normpath(out):
        raise click.UsageError(f"--resume {resume} and --out {out} name different directories; give one")
    return resume or out or DEFAULT_DIR


@main.command()
@checkpoint_option
@click.option("--temp", "temperature", type=click.FloatRange(min=0), default=0.8, show_default=True,
              help="Sampling temperature: lower is safer, higher more surprising; 0 takes the likeliest character.")
@click.option("--length", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Characters to generate after the prime (at most, with --stop-at).")
@click.option("--prime", default="", help="Text to start from, printed first; - reads it from stdin.")
@click.option("--seed", type=int, default=None, help="Random seed: the same seed gives the same text. Sample i uses SEED+i.")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Draw only from the K likeliest characters.")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
              help="Nucleus sampling: draw only from the likeliest characters whose probabilities sum to at least P, in (0, 1].")
@click.option("--repetition-penalty", type=click.FloatRange(min=1), default=1.0, show_default=True,
              help="Divide by R the probability of a character that continues a string already in the text "
                   "(a guard against loops); 1 is off.")
@click.option("--beam", type=click.IntRange(min=1), default=None,
              help="Search for the likeliest text with a beam of N hypotheses instead of drawing (1 is --temp 0); "
                   "--json prints every beam.")
@click.option("--num-samples", "-n", type=click.IntRange(min=1), default=1, show_default=True,
              help="Samples to draw, generated side by side in one batch.")
@click.option("--separator", default=r"\n\n", show_default=True,
              help=r"Written between samples; \n, \t, \0 and \\ are understood.")
@click.option("--stop-at", default=None,
              help="End each sample after the first occurrence of this string in it (escapes as --separator).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per sample and line: seed, temperature, top_k, prime, text, logprobs, stopped, logprob; "
                   "with --beam: prime, text, logprob, logprobs, stopped, beam, rank.")
@click.pass_context
@threads_option
@friendly_errors
def sample(ctx, checkpoint, temperature, length, prime, seed, top_k, top_p, repetition_penalty, beam,
           num_samples, separator, stop_at, as_json):
    """Generate text from a trained model, written to stdout as it is produced."""
    from .data import BYTES, model_text, read_text
    from .sampling import likeliest, samples, stream, unescape

    if beam is not None:
        check_beam_options(ctx, top_k, top_p, num_samples)
    model = load_checkpoint(checkpoint, task="lm")
    # A byte-level model's text is one character per byte; what the user typed is its UTF-8 bytes.
    enc = model.config.encoding
    prime = read_text("-", enc) if prime == "-" else model_text(prime, enc)
    stop_at = model_text(unescape(stop_at), enc) if stop_at is not None else None
    unseen = model.vocab.missing(prime) if enc == BYTES else []
    if unseen:  # name bytes as bytes: 0xc3, not the 'Ã' that stands for it in the vocabulary
        raise click.ClickException("the prime has bytes the model never saw: " + ", ".join(f"0x{ord(c):02x}" for c in unseen))
    if beam is not None:
        found = likeliest(model, beam, length, prime, stop_at, repetition_penalty)
        if as_json:
            for b in found:
                click.echo(json.dumps(b.to_dict(), ensure_ascii=False))
            return
        texts = [prime + found[0].text]
    elif as_json:
        for s in samples(model, num_samples, length, temperature, prime, seed, top_k, stop_at,
                         top_p=top_p, repetition_penalty=repetition_penalty):
            click.echo(json.dumps(s.to_dict(), ensure_ascii=False))
        return
    else:
        texts = stream(model, num_samples, length, temperature, prime, seed, top_k, stop_at,
                       model_text(unescape(separator), enc), top_p, repetition_penalty)
    # A byte-level model's samples are raw bytes, written as they are, with no newline added.
    raw = enc == BYTES
    with StreamWriter(sys.stdout.buffer if raw else sys.stdout, "latin-1" if raw else None) as out:
        for text in texts:
            out.write(text)
        if not raw and not out.last.endswith("\n"):
            out.write("\n")


def check_beam_options(ctx, top_k, top_p, num_samples) -> None:
    """--beam searches instead of drawing: the drawing options do not apply; say so, don't ignore them."""
    given = [name for name, value in (("--top-k", top_k), ("--top-p", top_p)) if value is not None]
    if ctx.get_parameter_source("temperature") == click.core.ParameterSource.COMMANDLINE:
        given.insert(0, "--temp")
    if num_samples != 1:
        given.append("--num-samples")
    if given:
        raise click.UsageError(f"--beam searches for the likeliest text instead of drawing: {', '.join(given)} "
                               f"do{'es' if len(given) == 1 else ''} not apply (--json prints every beam)")


@main.command("eval")
@click.argument("file")
@checkpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--per-line", is_flag=True,
              help="Score each line: one JSON object per line (line, chars, predictions, nats, "
                   "nats_per_prediction, bits, bits_per_prediction, text).")
@click.option("--reset-per-line", is_flag=True, help="Score each line alone, from a zero state (implies --per-line).")
@encoding_options
@click.option("--tsv", is_flag=True,
              help="Per-line scores as tab-separated line, chars, nats, nats_per_prediction, bits, "
                   "bits_per_prediction, text (implies --per-line).")
@click.option("--pairs", is_flag=True,
              help="FILE holds source TAB target lines: an encoder-decoder's per-char target loss and exact-match accuracy.")
@threads_option
@friendly_errors
def eval_(file, checkpoint, as_json, per_line, reset_per_line, encoding, tsv, pairs, **flags):
    """Score FILE (- for stdin): loss in nats/char, bits/char, perplexity; or each line's."""
    from .scoring import evaluate, score_lines

    if pairs:
        return eval_pairs(file, checkpoint, as_json)
    model = load_checkpoint(checkpoint, task="lm")
    text = read_for(model, file, encoding, flags["bytes"])
    if per_line or reset_per_line or tsv:
        for s in score_lines(model, text, reset=reset_per_line):
            d = s.to_dict()
            click.echo("\t".join(str(d[k]) for k in TSV_COLUMNS) if tsv else json.dumps(d, ensure_ascii=False))
        return
    score = evaluate(model, text)
    if as_json:
        click.echo(json.dumps(score.to_dict()))
    else:
        click.echo(f"loss {score.loss:.4f} nats/char  {score.bits_per_char:.4f} bits/char  "
                   f"perplexity {score.perplexity:.3f}  ({score.predictions} predictions)")


def eval_pairs(file, checkpoint, as_json):
    from .pairs import read_pairs
    from .translate import evaluate_pairs

    ck = load_checkpoint(checkpoint)
    pairs = read_pairs(file)
    try:
        score = evaluate_pairs(ck, pairs)
    except CharRNNError as exc:  # a source the encoder cannot read: say in which file
        raise CharRNNError(f"{'<stdin>' if file == '-' else file}: {exc}") from None
    if as_json:
        click.echo(json.dumps(score.to_dict()))
    else:
        click.echo(f"loss {score.loss:.4f} nats/char  {score.bits_per_char:.4f} bits/char  "
                   f"exact match {score.exact_match:.2%}  ({score.pairs} pairs, {score.target_chars} target chars)")


TSV_COLUMNS = ("line", "chars", "nats", "nats_per_prediction", "bits", "bits_per_prediction", "text")


@main.command()
@click.argument("file")
@checkpoint_option
@click.option("--format", "fmt", type=click.Choice(["jsonl", "npy"]), default="jsonl", show_default=True,
              help='jsonl: {"line": N, "vector": [...]} per line on stdout; npy: a (lines, H) float array to --output.')
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of stdout (- is stdout).")
@encoding_options
@click.option("--skip-unknown", is_flag=True, help="Skip lines with characters the model never saw, instead of failing.")
@click.option("--quiet", "-q", is_flag=True, help="Do not report skipped lines on stderr.")
@threads_option
@friendly_errors
def encode(file, checkpoint, fmt, output, encoding, skip_unknown, quiet, **flags):
    """Encode each line of FILE (- for stdin) as the final hidden state of the top layer."""
    from .batching import split_lines
    from .vectors import encode_lines

    if fmt == "npy" and output is None:
        raise click.UsageError("--format npy writes binary: give --output FILE (or - for stdout)")
    model = load_checkpoint(checkpoint)
    lines = split_lines(read_for(model, file, encoding, flags["bytes"]))
    numbers, vectors = encode_lines(model, lines, skip_unknown=skip_unknown)
    write_vectors(numbers, vectors, fmt, output)
    skipped = len(lines) - len(numbers)
    if skipped and not quiet:
        click.echo(f"charrnn: skipped {skipped} of {len(lines)} lines (characters the model never saw)", err=True)


def write_vectors(numbers, vectors, fmt, output):
    if fmt == "npy":
        import numpy as np

        if output == "-":
            np.save(sys.stdout.buffer, vectors)
        else:
            with open(output, "wb") as fh:  # np.save(path) would append .npy to other names
                np.save(fh, vectors)
        return
    # %.9g: enough digits to give back the same float32.
    template = '{"line": %d, "vector": [' + ",".join(["%.9g"] * vectors.shape[1]) + "]}\n"
    to_stdout = output in (None, "-")
    fh = sys.stdout if to_stdout else open(output, "w", encoding="utf-8")
    try:
        for n, row in zip(numbers, vectors.tolist()):
            fh.write(template % (n, *row))
        fh.flush()
    finally:
        if not to_stdout:
            fh.close()


@main.command()
@click.argument("file", default="-", required=False)
@checkpoint_option
@click.option("--temp", "temperature", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0 writes the likeliest character each step (greedy); above 0, draws from softmax(y / temp).")
@click.option("--beam", type=click.IntRange(min=1), default=1, show_default=True,
              help="Beam search with this many hypotheses (1: greedy or --temp).")
@click.option("--seed", type=int, default=None, help="Random seed for --temp above 0.")
@click.option("--max-length", type=click.IntRange(min=1), default=None,
              help="Most characters written per line [default: twice the longest training target].")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: line, source, output, logprob (ln p of output and END), finished.")
@threads_option
@friendly_errors
def translate(file, checkpoint, temperature, beam, seed, max_length, as_json):
    """Translate each line of FILE (default -, stdin) with an encoder-decoder: one output line per input line.

    Output is written as lines are translated. A line that cannot be translated is reported
    on stderr with its number and leaves an empty line; the exit status is then 1.
    """
    from .translate import Translator, available_lines

    tr = Translator(load_checkpoint(checkpoint), temperature, beam, seed, max_length)
    if file != "-" and os.path.isdir(file):
        raise click.ClickException(f"{file} is a directory, not a text file")
    try:
        source = sys.stdin if file == "-" else os.open(file, os.O_RDONLY)
    except FileNotFoundError:
        raise click.ClickException(f"file not found: {file}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from None
    failed, first = 0, 1
    with StreamWriter(sys.stdout) as out:
        for lines in available_lines(source):
            for t in tr.translate(lines, first):
                if t.error:
                    failed += 1
                    click.echo(f"charrnn: line {t.line}: {t.error}", err=True)
                out.write((json.dumps(t.to_dict(), ensure_ascii=False) if as_json else (t.output or "")) + "\n")
            first += len(lines)
    if failed:
        raise click.ClickException(f"{failed} of {first - 1} lines could not be translated")


@main.command()
@click.argument("source", default=DEFAULT_DIR, required=False)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="PNG to write [default: loss.png beside metrics.jsonl].")
@click.option("--title", default=None, help="A title over the curves.")
@click.option("--quiet", "-q", is_flag=True, help="Do not say where the picture went.")
@friendly_errors
def plot(source, output, title, quiet):
    """Draw training and validation loss and gradient norm from SOURCE/metrics.jsonl to a PNG.

    SOURCE is a checkpoint directory (default checkpoints) or a metrics.jsonl file.
    Needs matplotlib: pip install 'charrnn[plot]'.
    """
    from .plotting import plot as draw

    path = draw(source, output, title)
    if not quiet:
        click.echo(f"wrote {path}", err=True)


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config whose model shape to measure.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=None, help="H [default: 512, or the config's].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="B [default: 64, or the config's].")
@click.option("--seq-len", type=click.IntRange(min=1), default=None, help="T [default: 64, or the config's].")
@click.option("--vocab-size", type=click.IntRange(min=2), default=84, show_default=True,
              help="V, as in the full Shakespeare corpus.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="Time spent measuring training.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--cell", "cells", type=click.Choice(["elman", "lstm", "gru"]), multiple=True,
              help="Per cell (repeatable): train chars/s, one update against its matrix products timed alone, "
                   "and one-stream sampling.")
@click.option("--kernels", type=click.Choice(["auto", "numpy", "numba"]), default=None,
              help="Training's gate maths, as train's --kernels [default: auto, or the config's].")
@threads_option
@friendly_errors
def bench(config_file, hidden_size, batch_size, seq_len, vocab_size, seconds, as_json, cells, kernels):
    """Measure training, sampling and evaluation speed on this machine."""
    from .bench import run
    from .config import resolve

    given = {"hidden_size": hidden_size, "batch_size": batch_size, "seq_len": seq_len}
    defaults = {} if config_file else {"hidden_size": 512, "batch_size": 64, "seq_len": 64}
    given["kernels"] = kernels
    overrides = {**defaults, **{k: v for k, v in given.items() if v is not None}, "dtype": "float32"}
    config = resolve(config_file, overrides)
    if cells:
        return bench_cells(config, cells, vocab_size, seconds, as_json)
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


def bench_cells(config, cells, vocab_size, seconds, as_json):
    from .bench import cell_bench
    from .config import Config

    say = lambda name: click.echo(f"measuring {name}...", err=True)  # noqa: E731
    found = [cell_bench(Config.from_dict({**config.to_dict(), "cell": c, "activation": "tanh"}), vocab_size, seconds, say)
             for c in cells]
    if as_json:
        click.echo(json.dumps({"cells": [r.to_dict() for r in found]}))
        return
    r = found[0]
    click.echo(f"H={r.hidden_size} B={r.batch_size} T={r.seq_len} V={r.vocab_size}, {r.kernels} kernels; "
               "threads: those training picked (or --threads; numba's kernels run them with BLAS on one), "
               "0 for BLAS's own count")
    click.echo(f"{'cell':<6} {'threads':>7} {'train chars/s':>13} {'update ms':>10} {'products ms':>12} {'ratio':>6} "
               f"{'sample chars/s':>15}")
    for r in found:
        click.echo(f"{r.cell:<6} {r.blas_threads or 0:>7} {r.train_chars_per_sec:>13,.0f} {r.update_ms:>10.1f} "
                   f"{r.products_ms:>12.1f} {r.update_over_products:>6.2f} {r.sample_chars_per_sec:>15,.0f}")


@main.command()
@click.argument("file")
@checkpoint_option
@click.option("--steps", type=click.IntRange(min=1), default=50, show_default=True, help="How many steps back (K).")
@click.option("--windows", type=click.IntRange(min=1), default=256, show_default=True, help="Windows of FILE averaged over.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, {\"flows\": [...]}, instead of the table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Draw the curves into this PNG (needs matplotlib).")
@click.option("--compare-activations", is_flag=True, help="Train small tanh, relu and sigmoid models on FILE and compare them.")
@click.option("--compare-inits", is_flag=True,
              help="Compare untrained models initialised uniform (the default), N(0,1) and orthogonal on FILE.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="With --compare-activations: training time per model.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="With --compare-activations or --compare-inits: H of each model.")
@threads_option
@friendly_errors
def gradflow(file, checkpoint, steps, windows, as_json, plot_path, compare_activations, compare_inits, seconds,
             hidden_size):
    """How far back in time the gradient of one step's loss reaches, on FILE (- for stdin).

    Prints the mean over windows of ||d loss_T / d h_(T-k)|| for k = 1..K, for a checkpoint's
    model, or with --compare-activations for three small models trained here, or with
    --compare-inits for three untrained models that differ only in their initial weights.
    """
    from . import gradflow as gf
    from .data import read_text

    if compare_activations and compare_inits:
        raise click.UsageError("--compare-activations and --compare-inits are two different pictures; give one")
    if plot_path:
        gf.require_matplotlib()  # fail before any work, not after it
    text = read_text(file)
    if compare_activations:
        flows = gf.compare_activations(text, seconds, hidden_size, steps, windows,
                                       progress=lambda msg: click.echo(msg, err=True))
    elif compare_inits:
        flows = gf.compare_inits(text, hidden_size, steps, windows)
    else:
        flows = [gf.flow_of(load_checkpoint(checkpoint, task="lm"), text, steps, windows)]
    if plot_path:
        gf.plot(flows, plot_path, f"gradient flow on {os.path.basename(file) if file != '-' else 'stdin'}")
    click.echo(json.dumps({"flows": [f.to_dict() for f in flows]}) if as_json else gf.format_table(flows))


@main.command()
@click.argument("target", default=DEFAULT_DIR, required=False, metavar="[CHECKPOINT|DIR]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of rows for a directory, one object for a checkpoint.")
@friendly_errors
def info(target, as_json):
    """List a run directory's checkpoints (step, epoch, losses, time), or describe one checkpoint
    (model, vocabulary, corpus, config, how it was trained). [default: checkpoints]"""
    from .info import describe, format_description, format_listing, list_dir

    if os.path.isdir(target):
        entries = list_dir(target)
        click.echo(json.dumps([e.to_dict() for e in entries]) if as_json else format_listing(target.rstrip("/"), entries))
    else:
        d = describe(target)
        click.echo(json.dumps(d, ensure_ascii=False) if as_json else format_description(d))


@main.command()
@click.option("--word", default="hello", show_default=True, help="The text to learn.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training updates [default: 300, as configs/hello.yaml].")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the initial weights.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@threads_option
@friendly_errors
def hello(word, steps, seed, as_json):
    """The textbook example of a character-level model: an RNN learns "hello".

    Vocabulary h e l o, inputs h e l l, targets e l l o: the output scores and probabilities
    for each input, before and after training.
    """
    from .walkthrough import format_walkthrough
    from .walkthrough import hello as run

    result = run(word, steps, seed)
    click.echo(json.dumps(result.to_dict()) if as_json else format_walkthrough(result))



@main.command()
@click.argument("directory", default=None, required=False, metavar="[DIR]")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Serve this checkpoint file instead of DIR's best.npz (else latest.npz); DIR defaults to its directory.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 opens the server to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port; 0 picks a free one.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Also answer requests addressed to NAME (this machine's name on the network); repeatable.")
@threads_option
@friendly_errors
def serve(directory, checkpoint, host, port, allow_hosts):
    """A local page and JSON API for the model in DIR: generate, inspect, watch it train.

    DIR defaults to the directory of CHARRNN_CHECKPOINT's file when that is set, else
    checkpoints/, else (when there is no checkpoints/) make train's runs/make-train/.
    Reloads DIR/best.npz and latest.npz when training replaces them. Runs until Ctrl-C.
    """
    from .serve import run

    directory, checkpoint = serve_source(directory, checkpoint)
    run(directory, checkpoint, host, port, echo=click.echo, allow_hosts=allow_hosts)


MAKE_TRAIN_DIR = "runs/make-train"  # the Makefile's MODEL_DIR (a test holds them equal)


def serve_source(directory, checkpoint) -> tuple:
    """(DIR, checkpoint file or None) for `serve [DIR] [--checkpoint P]`, defaults filled in."""
    if directory is None and checkpoint is None:
        env = os.environ.get("CHARRNN_CHECKPOINT")
        if env and os.path.basename(env) in ("best.npz", "latest.npz"):
            return os.path.dirname(env) or ".", None  # its run directory: both files, reloaded
        if env:
            checkpoint = env
        elif not os.path.isdir(DEFAULT_DIR) and os.path.isdir(MAKE_TRAIN_DIR):
            return MAKE_TRAIN_DIR, None
    if directory is None:
        directory = (os.path.dirname(checkpoint) or ".") if checkpoint else DEFAULT_DIR
    return directory, checkpoint


@main.command("inspect")
@click.argument("file")
@checkpoint_option
@encoding_options
@click.option("--color", "colour", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Tint each character by its surprise: auto does on a terminal (unless NO_COLOR is set).")
@threads_option
@friendly_errors
def inspect_(file, checkpoint, encoding, colour, **flags):
    """Print FILE (- for stdin) tinted by how surprised the model is by each character.

    The tint is the character's loss in nats (legend on stderr); the mean is `charrnn eval`'s.
    Not on a terminal, the text is printed as it is.
    """
    from .surprise import LEGEND, char_scores, tinted

    ck = load_checkpoint(checkpoint, task="lm")
    text = read_for(ck, file, encoding, flags["bytes"])
    if len(text) < 2:
        raise CharRNNError(f"need at least 2 characters to score, got {len(text)}")
    scores = char_scores(ck.model(), ck.vocab, text)
    use = colour == "always" or (colour == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    with StreamWriter(sys.stdout) as out:
        out.write(tinted(scores) if use else text)
        if not text.endswith("\n"):
            out.write("\n")
    click.echo(f"{LEGEND if use else ''}loss {scores.loss:.4f} nats/char  {scores.bits_per_char:.4f} bits/char  "
               f"({scores.predictions} predictions)", err=True)

class StreamWriter:
    """Writes text as it comes, flushing at line ends and at least every 0.1 s.

    A closed pipe (`| head`) ends the output quietly with status 0.
    """

    def __init__(self, stream, encoding=None, interval: float = 0.1):
        import time

        self.stream, self.interval, self._clock = stream, interval, time.monotonic
        self.encoding = encoding  # text is encoded with it first, for a binary stream
        self._last = self._clock()
        self.last = ""  # the last non-empty text written

    def write(self, text: str) -> None:
        self.stream.write(text.encode(self.encoding) if self.encoding else text)
        if text:
            self.last = text
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
            _stdout_to_devnull()
            sys.exit(0)
        return False


def _stdout_to_devnull() -> None:
    # Point stdout at /dev/null so the interpreter's final flush does not fail too.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    main()
