"""Corpora in other encodings (--encoding) and byte-level models (--bytes)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import charrnn
from charrnn.data import load_corpus, read_text
from charrnn.errors import CharRNNError

from conftest import TINY_FLAGS, invoke

TEXT = "Café au lait, naïve façade, ½ price © 2026. Größe!\n" * 60
SMALL = [*TINY_FLAGS, "--max-steps", "20", "-q"]




@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16", "utf-8"])
def test_a_corpus_in_any_encoding_reads_as_the_same_characters(tmp_path, encoding):
    text = TEXT.replace("½", "") if encoding == "cp1252" else TEXT  # cp1252 has ½, latin-1 too; keep one path
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode(encoding))  # utf-16 writes a byte-order mark
    corpus = load_corpus([str(path)], encoding)
    assert corpus.vocab.chars == "".join(sorted(set(text)))
    assert corpus.vocab.decode(corpus.ids) == text
    assert read_text(str(path), encoding) == text


def test_latin1_training_then_sample_eval_and_encode_use_the_model_encoding(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "l1.txt").write_bytes(TEXT.encode("latin-1"))
    assert invoke("train", "l1.txt", *SMALL).exit_code == 1  # not UTF-8
    result = invoke("train", "l1.txt", "--encoding", "latin-1", *SMALL)
    assert result.exit_code == 0, result.output
    ck = charrnn.load("checkpoints/latest.npz")
    assert ck.config.encoding == "latin-1" and "é" in ck.vocab
    sample = invoke("sample", "--prime", "Caf", "--length", "30", "--seed", "1")
    assert sample.exit_code == 0 and sample.stdout.startswith("Caf")
    assert set(sample.stdout[:-1]) <= set(ck.vocab.chars)
    score = invoke("eval", "l1.txt", "--json")  # read as latin-1, as the model was trained
    assert score.exit_code == 0, score.output
    assert json.loads(score.stdout)["predictions"] == len(TEXT) - 1
    (tmp_path / "u8.txt").write_text(TEXT, encoding="utf-8")
    assert json.loads(invoke("eval", "u8.txt", "--encoding", "utf-8", "--json").stdout) == json.loads(score.stdout)
    assert invoke("encode", "l1.txt").exit_code == 0


def test_bytes_model_on_a_binary_file_samples_raw_bytes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    blob = bytes(rng.choice([0, 1, 2, 0xFF, 0x80, 0x0A, 0xC3], size=3000).astype(np.uint8))
    (tmp_path / "blob.bin").write_bytes(blob)
    result = invoke("train", "blob.bin", "--bytes", *SMALL)
    assert result.exit_code == 0, result.output
    ck = charrnn.load("checkpoints/latest.npz")
    assert ck.config.encoding == "bytes" and sorted(ck.vocab.codepoints.tolist()) == sorted(set(blob))
    out = invoke("sample", "--length", "200", "--seed", "2")
    assert out.exit_code == 0
    assert len(out.stdout_bytes) == 200 and set(out.stdout_bytes) <= set(blob)  # raw bytes, no newline added
    assert json.loads(invoke("eval", "blob.bin", "--json").stdout)["predictions"] == len(blob) - 1
    info = invoke("info", "checkpoints/latest.npz", "--json")
    assert json.loads(info.stdout)["vocabulary"]["kind"] == "bytes"


def test_a_bytes_prime_is_the_utf8_bytes_of_what_was_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "u8.txt").write_text(TEXT, encoding="utf-8")
    assert invoke("train", "u8.txt", "--bytes", *SMALL).exit_code == 0
    out = invoke("sample", "--prime", "Café", "--length", "10", "--seed", "0")
    assert out.exit_code == 0, out.output
    assert out.stdout_bytes.startswith("Café".encode("utf-8")) and len(out.stdout_bytes) == 5 + 10
    unseen = invoke("sample", "--prime", "a €")
    assert unseen.exit_code == 1 and "the prime has bytes the model never saw: 0x82, 0xac, 0xe2" in unseen.output
    beam = invoke("sample", "--prime", "Caf", "--beam", "2", "--length", "8", "--json")
    assert all(len(json.loads(line)["text"]) == 8 for line in beam.stdout.splitlines())


def test_bytes_and_characters_do_not_mix(tmp_path, monkeypatch, trained_ckpt, tiny_corpus):
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", tiny_corpus, "--checkpoint", trained_ckpt, "--bytes")
    assert result.exit_code == 1 and "reads characters (utf-8), not bytes; drop --bytes" in result.output
    result = invoke("train", tiny_corpus, "--bytes", "--init-from", trained_ckpt, "--out", "ft", *SMALL)
    assert result.exit_code == 1 and "cannot fine-tune" in result.output and "drop --bytes" in result.output
    assert not os.path.exists("ft")
    assert invoke("train", tiny_corpus, "--bytes", "--out", "b", *SMALL).exit_code == 0
    result = invoke("train", tiny_corpus, "--resume", "b", "--encoding", "utf-8", *SMALL)
    assert result.exit_code == 1 and "encoding is 'bytes' there but 'utf-8' here" in result.output.replace('"', "'")


def test_encoding_from_yaml_and_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "l1.txt").write_bytes(TEXT.encode("latin-1"))
    (tmp_path / "c.yaml").write_text("encoding: latin-1\n")
    assert invoke("train", "l1.txt", "--config", "c.yaml", "--out", "a", *SMALL).exit_code == 0
    assert charrnn.load("a/latest.npz").config.encoding == "latin-1"
    assert invoke("train", "l1.txt", "--out", "b", *SMALL, env={"CHARRNN_TRAIN_ENCODING": "cp1252"}).exit_code == 0
    assert charrnn.load("b/latest.npz").config.encoding == "cp1252"
    assert invoke("train", "l1.txt", "--out", "c", *SMALL, env={"CHARRNN_TRAIN_BYTES": "1"}).exit_code == 0
    assert charrnn.load("c/latest.npz").config.encoding == "bytes"


def test_an_undefined_byte_is_named_with_its_offset(tmp_path):
    (tmp_path / "c.txt").write_bytes(b"abc\x81def")
    with pytest.raises(CharRNNError, match=r"is not valid cp1252: byte 0x81 at offset 3"):
        load_corpus([str(tmp_path / "c.txt")], "cp1252")
