"""The vocabulary (characters <-> ids) and the one-hot encoding that the row gather replaces."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.cells import Elman
from charrnn.errors import CharRNNError
from charrnn.model import Model
from charrnn.onehot import from_one_hot, one_hot
from charrnn.vocab import Vocab, id_dtype

UNICODE_TEXT = "Crème brûlée, naïve café.\n日本語のテキスト 😀🎉\r\n\ttab\u00a0nbsp — ok?\n"


# -- one-hot ------------------------------------------------------------------------------

def test_one_hot_rows_are_unit_vectors():
    ids = np.array([[0, 3], [2, 2]])
    x = one_hot(ids, 4)
    assert x.shape == (2, 2, 4) and x.dtype == np.float32
    assert np.array_equal(x.sum(axis=-1), np.ones((2, 2)))
    assert x[0, 1, 3] == 1 and x[1, 0, 2] == 1
    np.testing.assert_array_equal(from_one_hot(x), ids)


def test_one_hot_product_is_the_row_gather():
    rng = np.random.default_rng(0)
    V, H = 7, 5
    W_xh = rng.normal(size=(V, H))
    ids = rng.integers(0, V, (6, 3))  # (T, B)
    np.testing.assert_array_equal(one_hot(ids, V, dtype=np.float64) @ W_xh, W_xh[ids])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_first_layer_forward_equals_the_one_hot_formulation(dtype):
    """The model's gather-based layer computes h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), x_t one-hot."""
    rng = np.random.default_rng(1)
    V, H, T, B = 6, 4, 5, 3
    layer = Elman(V, H, "tanh", embed=True)
    p = layer.init(rng, dtype)
    p["b_h"][...] = rng.normal(size=H)
    ids = rng.integers(0, V, (T, B))
    h0 = rng.normal(0, 0.5, (B, H)).astype(dtype)
    hs = layer.forward(p, ids, h0).copy()  # (T, B, H)

    X = one_hot(ids, V, dtype=np.float64)  # (T, B, V)
    W_xh, W_hh, b_h = (p[k].astype(np.float64) for k in ("W_xh", "W_hh", "b_h"))
    h = h0.astype(np.float64)
    expected = []
    for t in range(T):
        h = np.tanh(X[t] @ W_xh + h @ W_hh + b_h)
        expected.append(h)
    tol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(hs, np.array(expected), rtol=tol, atol=tol)


def test_model_step_matches_model_forward():
    """Generation's one-step path and training's chunk path are the same function."""
    rng = np.random.default_rng(2)
    model = Model(6, 4, "tanh", layers=2, dtype="float64").init(0)
    ids = rng.integers(0, 6, (5, 2))
    state = [rng.normal(0, 0.3, (2, 4)) for _ in range(2)]
    _, final = model.forward(ids, ids, [h.copy() for h in state])
    s = [h.copy() for h in state]
    for t in range(5):
        _, s = model.step(ids[t], s)
    for a, b in zip(final, s):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("bad", [[0, 4], [-1, 2], [[1], [9]]])
def test_one_hot_rejects_out_of_range_ids(bad):
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        one_hot(np.array(bad), 4)


# -- vocabulary ---------------------------------------------------------------------------

def test_unicode_round_trip():
    vocab = Vocab.from_text(UNICODE_TEXT)
    ids = vocab.encode(UNICODE_TEXT)
    assert len(ids) == len(UNICODE_TEXT)  # one id per code point, emoji included
    assert vocab.decode(ids) == UNICODE_TEXT
    for ch in "😀日\n\r\t\u00a0é":
        assert ch in vocab


def test_vocabulary_is_the_sorted_code_points():
    vocab = Vocab.from_text(UNICODE_TEXT)
    expected = sorted(set(UNICODE_TEXT))
    assert list(vocab.chars) == expected
    assert vocab.codepoints.tolist() == [ord(c) for c in expected]
    assert len(vocab) == len(expected)
    # id i is the i-th smallest code point
    assert vocab.index(expected[0]) == 0 and vocab.index("😀") == len(vocab) - 1


def test_ids_use_the_smallest_dtype():
    assert Vocab.from_text("abc").encode("cab").dtype == np.uint8
    wide = "".join(chr(0x4E00 + i) for i in range(300))
    vocab = Vocab.from_text(wide)
    assert vocab.encode(wide).dtype == np.uint16
    assert vocab.decode(vocab.encode(wide)) == wide
    assert id_dtype(256) == np.uint8 and id_dtype(257) == np.uint16 and id_dtype(70000) == np.uint32


def test_missing_lists_unknown_characters_sorted():
    vocab = Vocab.from_text("hello")
    assert vocab.missing("hello") == []
    assert vocab.missing("yellow 😀!") == [" ", "!", "w", "y", "😀"]


def test_encode_names_the_unknown_characters():
    vocab = Vocab.from_text("hello")
    with pytest.raises(CharRNNError) as info:
        vocab.encode("help😀")
    message = str(info.value)
    assert "'p'" in message and "'😀'" in message and "'h'" not in message
    assert "\n" not in message


def test_empty_text_has_no_vocabulary():
    with pytest.raises(CharRNNError):
        Vocab.from_text("")


def test_vocab_from_codepoints_must_be_sorted():
    assert Vocab([101, 104]) == Vocab.from_text("heh")
    with pytest.raises(CharRNNError):
        Vocab([104, 101])


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_round_trip_property(text):
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert len(vocab) == len(set(text))
    assert np.all(np.diff(vocab.codepoints) > 0)
    assert ids.max() < len(vocab)


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1), st.text())
def test_missing_property(known, other):
    vocab = Vocab.from_text(known)
    assert vocab.missing(other) == sorted(set(other) - set(known))


# -- corpus files -> ids, read in pieces ----------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(text=st.text(min_size=1, max_size=60), chunk=st.integers(1, 9))
def test_corpus_read_in_pieces_matches_the_text(tmp_path_factory, text, chunk):
    """Multi-byte characters cut by a read boundary are put back together."""
    from unittest import mock

    import charrnn.data as data

    path = tmp_path_factory.getbasetemp() / "pieces.txt"
    path.write_bytes(text.encode("utf-8"))
    with mock.patch.object(data, "CHUNK_BYTES", chunk):
        corpus = data.load_corpus(str(path))
    vocab = Vocab.from_text(text)
    assert corpus.vocab == vocab
    np.testing.assert_array_equal(corpus.ids, vocab.encode(text))
    assert corpus.ids.dtype == vocab.encode(text).dtype
