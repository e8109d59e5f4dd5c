"""Corrupted checkpoints, over a thousand of them: each is loaded correctly or refused with
CheckpointError, never another exception, never unpickled.

Four kinds of damage to a small but complete checkpoint (H=4, optimizer state, carried
state, history): truncation, flipped bytes, edited arrays (swapped, dropped, renamed,
recast, reshaped, NaN-poisoned) and edited metadata (any JSON value at any key). A file
that loads must then also work: build the model, sample, score, and restore a resumed run
(which may refuse with the package's own error, and nothing else).
"""
from __future__ import annotations

import io
import json
import os
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn import checkpoint as ckpt
from charrnn import optim
from charrnn.config import Config
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.model import Model
from charrnn.resume import RunState
from charrnn.sampling import sample
from charrnn.scoring import evaluate
from charrnn.training import train

TEXT = "the cat sat on the mat.\n" * 12
KINDS = {"truncate": 250, "flip": 300, "arrays": 300, "meta": 300}  # examples of each kind


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz")
    config = Config(hidden_size=4, batch_size=2, seq_len=8, max_steps=3, eval_every=2, save_every=2, seed=1)
    train(config, text=TEXT, out=str(out))
    path = os.path.join(str(out), "latest.npz")
    with open(path, "rb") as fh:
        data = fh.read()
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    headers = [m.start() for m in re.finditer(rb"PK\x03\x04|PK\x01\x02|PK\x05\x06|\x93NUMPY", data)]
    return Original(bytes=data, arrays=arrays, ck=ckpt.load(path), headers=headers)


class Original(dict):
    """The valid checkpoint every case starts from (short repr: hypothesis prints it)."""

    def __repr__(self):
        return "<original checkpoint>"


def npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def corruptions(draw, original, kind):
    data, arrays = original["bytes"], original["arrays"]
    names = sorted(arrays)
    if kind == "truncate":
        return kind, data[: draw(st.integers(0, len(data) - 1))]
    if kind == "flip":
        # Half the flips land in the zip's and the .npy's own headers (sizes, offsets,
        # compression method, dtype, shape), where a parser is most easily surprised.
        out = bytearray(data)
        anywhere = st.integers(0, len(out) - 1)
        in_a_header = st.sampled_from(original["headers"]).flatmap(
            lambda start: st.integers(start, min(start + 127, len(out) - 1)))
        for _ in range(draw(st.integers(1, 4))):
            out[draw(anywhere | in_a_header)] ^= draw(st.integers(1, 255))
        return kind, bytes(out)
    if kind == "arrays":
        edited = dict(arrays)
        op = draw(st.sampled_from(["swap", "drop", "rename", "extra", "dtype", "reshape", "poison", "vocab"]))
        a = draw(st.sampled_from(names))
        if op == "swap":
            b = draw(st.sampled_from(names))
            edited[a], edited[b] = arrays[b], arrays[a]
        elif op == "drop":
            del edited[a]
        elif op == "rename":
            edited[draw(st.sampled_from(names + ["param/W_xx", "optim/m/nope", "state/h.7", "history/x"]))] = edited.pop(a)
        elif op == "extra":
            edited[draw(st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s[:1] and "\x00" not in s))] = arrays[a]
        elif op == "dtype":
            try:
                dtype = draw(st.sampled_from(["float64", "float16", "int32", "int64", "uint8", "bool", "U3"]))
                edited[a] = arrays[a].astype(dtype)
            except ValueError:  # the JSON string as a number
                edited[a] = np.zeros(3, dtype=np.float32)
        elif op == "reshape":
            if arrays[a].ndim:
                edited[a] = arrays[a].reshape(-1)[: draw(st.integers(0, max(0, arrays[a].size)))]
            else:
                edited[a] = arrays[a].reshape(1)
        elif op == "poison":
            x = np.array(arrays[a], copy=True)
            if x.dtype.kind == "f" and x.size:
                x.reshape(-1)[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            edited[a] = x
        else:
            edited["vocab"] = np.array(draw(st.lists(st.integers(-5, 0x11_0000), max_size=12)), dtype=np.int64)
        return f"arrays:{op}", npz_bytes(edited)
    # kind == "meta"
    meta = json.loads(str(arrays["meta"]))
    op = draw(st.sampled_from(["set", "delete", "config", "nested", "text", "not-a-string"]))
    edited = dict(arrays)
    if op == "set":
        meta[draw(st.sampled_from(sorted(meta) + ["extra"]))] = draw(json_values)
    elif op == "delete":
        del meta[draw(st.sampled_from(sorted(meta)))]
    elif op == "nested":  # a value inside optim {"t": ...} or rng {...}
        key = draw(st.sampled_from(["optim", "rng"]))
        meta[key] = dict(meta[key]) if isinstance(meta.get(key), dict) else {}
        meta[key][draw(st.sampled_from(sorted(meta[key]) + ["t", "dropout"]))] = draw(
            json_values | st.sampled_from([-1, 0, 2**70, 1.5, float("inf"), float("nan")]))
    elif op == "config":
        key = draw(st.sampled_from(sorted(meta["config"]) + ["bogus"]))
        meta["config"][key] = draw(json_values | st.sampled_from(["relu", "float64", "adagrad", 1, 2, 3, 0, -1, 1e308]))
    if op == "text":
        edited["meta"] = np.array(draw(st.text(max_size=40)))
    elif op == "not-a-string":
        edited["meta"] = np.array(draw(st.lists(st.integers(-5, 5), max_size=3)), dtype=np.int64)
    else:
        edited["meta"] = np.array(json.dumps(meta))
    return f"meta:{op}", npz_bytes(edited)


def use(ck) -> None:
    """A checkpoint that loaded must work everywhere it is used (or refuse as a CharRNNError)."""
    model = ck.model()
    text = "".join(sample(ck, length=5, temperature=1.0, seed=0))
    assert len(text) == 5
    if len(ck.vocab) >= 1:
        evaluate(ck, (ck.vocab.chars * 2)[:40] or "aa")
    config = ck.config
    fresh = Model.from_config(config, len(ck.vocab)).init(0)
    try:
        RunState().restore(ck, config, fresh, optim.make(config.optimizer, fresh.params, config.lr), 10**6)
    except CharRNNError:
        pass
    assert model.params.keys() == fresh.params.keys()


def test_every_corruption_is_loaded_or_refused_with_checkpoint_error(original, tmp_path_factory):
    path = os.path.join(str(tmp_path_factory.mktemp("bad")), "latest.npz")
    tally = Counter()

    def check(case):
        kind, data = case
        with open(path, "wb") as fh:
            fh.write(data)
        tally[kind.split(":")[0]] += 1
        try:
            ck = ckpt.load(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            tally["refused"] += 1
            return
        tally["loaded"] += 1
        if kind in ("truncate", "flip"):
            # Damage to the bytes never yields a different model: CRCs and checks catch it.
            for k, v in original["ck"].params.items():
                assert np.array_equal(ck.params[k], v)
        try:
            use(ck)
        except CharRNNError:
            tally["refused on use"] += 1

    for kind, examples in KINDS.items():
        settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                 suppress_health_check=list(HealthCheck))(given(corruptions(original, kind))(check))()
    print(dict(tally))
    assert sum(tally[k] for k in KINDS) >= 1000
    assert all(tally[k] >= KINDS[k] * 0.9 for k in KINDS), tally
    assert tally["refused"] > 500 and tally["loaded"] > 20  # both outcomes are exercised
