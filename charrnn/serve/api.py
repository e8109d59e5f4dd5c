"""The JSON API, apart from HTTP: validate a request's fields, compute the answer.

Every bad request becomes an ApiError with its HTTP status and a one-line message:
400 the body is not a JSON object, 413 the request carries more than the caps below,
422 a field has a wrong type or an out-of-range value (named), 503 no model yet.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Iterator, Optional

from ..errors import CharRNNError

# Caps (documented in the README): they bound one request's memory and time.
MAX_BODY = 1 << 20  # bytes of a request body
MAX_TEXT = 20_000  # characters scored or inspected per request
MAX_PRIME = 10_000  # characters of a sample's prime
MAX_LENGTH = 10_000  # characters generated per sample
MAX_TEMPERATURE = 10.0
MAX_TOP = 10  # predictions listed per character by /api/score
MAX_UNITS = 64  # hidden units returned per /api/activations request
MAX_RATE = 100_000  # characters per second a sample may be paced at (0: as fast as it is drawn)
MAX_GENERATIONS = 32  # samples being generated at once, server-wide; more get 503


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_body(raw: bytes) -> dict:
    """A request body -> its JSON object, or ApiError 400."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8: byte {raw[exc.start]:#04x} at offset {exc.start}") from None
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(body).__name__}")
    return body


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


class Fields:
    """Typed, range-checked access to a request's fields; unknown fields are refused by name."""

    def __init__(self, body: dict, known: tuple):
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise ApiError(422, f"unknown field {unknown[0]!r} (known: {', '.join(known)})")
        self.body = body

    def text(self, name: str, cap: int, default: Optional[str] = None) -> str:
        value = self.body.get(name, default)
        if not isinstance(value, str):
            raise ApiError(422, f"{name} must be a string" + ("" if name in self.body else " and is required"))
        if len(value) > cap:
            raise ApiError(413, f"{name} is {len(value)} characters, over the limit of {cap}")
        return value

    def integer(self, name: str, default, low: int, high: int):
        value = self.body.get(name, default)
        if value is None and default is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ApiError(422, f"{name} must be an integer, got {json.dumps(value)}")
        if not low <= value <= (high if high is not None else value):
            raise ApiError(422, f"{name} must be " + (f"in [{low}, {high}]" if high is not None else f"{low} or more")
                           + f", got {value}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.body.get(name, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ApiError(422, f"{name} must be a number, got {json.dumps(value)}")
        if not low <= value <= high:
            raise ApiError(422, f"{name} must be in [{low:g}, {high:g}], got {value:g}")
        return float(value)

    def choice(self, name: str, choices) -> Optional[str]:
        value = self.body.get(name)
        if value is not None and value not in choices:
            raise ApiError(422, f"{name} must be one of {', '.join(map(repr, choices))}, got {json.dumps(value)}")
        return value


def model_for(store, fields: Fields) -> tuple:
    """(name, Checkpoint) a request asks for with its `model` field."""
    from .store import NoModel

    name = fields.choice("model", tuple(store.entries))
    try:
        return store.get(name)
    except NoModel as exc:
        raise ApiError(503, str(exc)) from None


def model_text(checkpoint, text: str) -> str:
    """What a user typed, as the model's characters (a byte-level model's are UTF-8 bytes)."""
    from ..data import model_text as convert

    return convert(text, checkpoint.config.encoding)


def known_text(vocab, text: str, what: str) -> None:
    try:
        vocab.require(text, what)
    except CharRNNError as exc:
        raise ApiError(422, str(exc)) from None


# -- the endpoints --------------------------------------------------------------------------

SAMPLE_FIELDS = ("prime", "length", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop_at",
                 "rate", "model")


def sample_request(store, body: dict) -> dict:
    """Validate a /api/sample body and set up its generation: the arguments of generate()."""
    from ..checkpoint import model_and_vocab
    from ..sampling import Generation

    f = Fields(body, SAMPLE_FIELDS)
    name, checkpoint = model_for(store, f)
    prime, length = model_text(checkpoint, f.text("prime", MAX_PRIME, "")), f.integer("length", 500, 0, MAX_LENGTH)
    temperature = f.number("temperature", 0.8, 0.0, MAX_TEMPERATURE)
    top_k, seed = f.integer("top_k", None, 1, None), f.integer("seed", None, 0, 2**32 - 1)
    stop_at, rate = model_text(checkpoint, f.text("stop_at", 100, "")) or None, f.number("rate", 0, 0, MAX_RATE)
    top_p = f.number("top_p", 1.0, 0.0, 1.0) if "top_p" in body else None
    penalty = f.number("repetition_penalty", 1.0, 1.0, 100.0)
    if 0 < rate < 1:  # a pace slower than that would hold a thread for hours
        raise ApiError(422, f"rate must be 0 (as fast as drawn) or from 1 to {MAX_RATE:,} characters per second, "
                            f"got {rate:g}")
    known_text(checkpoint.vocab, prime, "the prime")
    if stop_at:
        known_text(checkpoint.vocab, stop_at, "stop_at")
    try:
        # A model of its own (Checkpoint.model() shares the weights): models reuse buffers.
        gen = Generation(*model_and_vocab(checkpoint, "charrnn serve"), 1, length, temperature, prime, seed, top_k,
                         stop_at=stop_at, logprobs=True, top_p=top_p, repetition_penalty=penalty)
    except CharRNNError as exc:
        raise ApiError(422, str(exc)) from None
    return dict(name=name, step=checkpoint.meta.get("step"), gen=gen, rate=rate)


def generate(name, step, gen, rate) -> Iterator[dict]:
    """The events of one streamed sample: start, one per character, end.

    Each character comes with p, its probability under the model (temperature 1, no top-k).
    rate > 0 paces the characters (a page that wants to watch them arrive).
    """
    yield {"event": "start", "model": name, "step": step, "seed": gen.seed, "prime": gen.prime,
           "temperature": gen.temperature, "top_k": gen.top_k, "top_p": gen.top_p, "repetition_penalty": gen.penalty}
    chars, count, began = gen.vocab.chars, 0, time.monotonic()
    for ids, live, logp in gen.steps():
        if not live[0]:
            break
        count += 1
        if rate:
            wait = began + count / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        yield {"c": chars[ids[0]], "p": round(math.exp(float(logp[0])), 4)}
    yield {"event": "end", "reason": "stop_at" if gen.stopped[0] else "length", "chars": count}


SCORE_FIELDS = ("text", "top", "model")


def score(store, body: dict) -> dict:
    """Per-character losses of a text and the top predictions after each character."""
    from .. import surprise

    f = Fields(body, SCORE_FIELDS)
    name, checkpoint = model_for(store, f)
    text, top = model_text(checkpoint, f.text("text", MAX_TEXT)), f.integer("top", 5, 1, MAX_TOP)
    if len(text) < 2:
        raise ApiError(422, f"need at least 2 characters to score, got {len(text)}")
    known_text(checkpoint.vocab, text, "the text")
    s = surprise.char_scores(checkpoint.model(), checkpoint.vocab, text, top)
    chars = checkpoint.vocab.chars
    top_pairs = [[[chars[i], round(float(p), 4)] for i, p in zip(ids, ps)]
                 for ids, ps in zip(s.top_ids.tolist(), s.top_probs.tolist())]
    return {"model": name, "step": checkpoint.meta.get("step"), "loss": s.loss, "bits_per_char": s.bits_per_char,
            "predictions": s.predictions, "chars": list(text),
            "losses": [None] + [round(float(x), 4) for x in s.losses[1:]], "top": top_pairs}


ACTIVATION_FIELDS = ("text", "units", "count", "layer", "state", "model")


def activations(store, body: dict) -> dict:
    """A layer's hidden units (h, or an LSTM's c) over a text: the most varying ones, and some values."""
    from .. import surprise

    f = Fields(body, ACTIVATION_FIELDS)
    name, checkpoint = model_for(store, f)
    text, count = model_text(checkpoint, f.text("text", MAX_TEXT)), f.integer("count", 20, 1, MAX_UNITS)
    config = checkpoint.config
    H, layers = config.hidden_size, config.layers
    layer = f.integer("layer", layers - 1, 0, layers - 1)
    kind = f.choice("state", ("h", "c")) or "h"
    if kind == "c" and config.cell != "lstm":
        raise ApiError(422, f"state 'c' is an LSTM's cell state; this model's cell is {config.cell}")
    units = body.get("units")
    if units is not None:
        if not isinstance(units, list) or not all(isinstance(u, int) and not isinstance(u, bool) for u in units):
            raise ApiError(422, "units must be a list of integers")
        if len(units) > MAX_UNITS:
            raise ApiError(413, f"units lists {len(units)} units, over the limit of {MAX_UNITS}")
        bad = [u for u in units if not 0 <= u < H]
        if bad:
            raise ApiError(422, f"unit {bad[0]} does not exist: the model has units 0..{H - 1}")
    if not text:
        raise ApiError(422, "the text is empty")
    known_text(checkpoint.vocab, text, "the text")
    states = surprise.hidden_states(checkpoint.model(), checkpoint.vocab, text, layer, kind == "c")  # (N, H)
    varying = surprise.most_varying(states, count)
    chosen = units if units is not None else [u for u, _ in varying]
    return {"model": name, "step": checkpoint.meta.get("step"), "hidden_size": H, "layer": layer, "state": kind,
            "chars": list(text),
            "varying": [{"unit": u, "std": round(s, 4)} for u, s in varying],
            "units": chosen, "values": [[round(v, 3) for v in states[:, u].tolist()] for u in chosen]}


def metrics(directory: str, since: int = 0) -> dict:
    """Rows of DIR/metrics.jsonl from row `since` on; a half-written last line waits.

    A file with fewer rows than `since` was started afresh by a new run: all its rows come
    back with reset true.
    """
    from .store import inside

    path = os.path.join(directory, "metrics.jsonl")
    if not os.path.isfile(path):
        return {"rows": [], "next": 0, "reset": since > 0, "exists": False}
    if not inside(path, directory):
        raise ApiError(404, "not found")
    with open(path, "rb") as fh:
        data = fh.read(64 << 20)
    lines = data.split(b"\n")[:-1]  # the piece after the last newline may be half written
    reset = since > len(lines)
    start = 0 if reset else since
    rows = []
    for line in lines[start:]:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a damaged row is skipped, not fatal
        if isinstance(row, dict):
            rows.append(row)
    return {"rows": rows, "next": len(lines), "reset": reset, "exists": True}
