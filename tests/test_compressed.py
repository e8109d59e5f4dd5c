"""gzip, bzip2 and xz corpora: told by their first bytes, streamed, and read as the plain text."""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn import data
from charrnn.cli import main
from charrnn.compressed import read_chunks, sniff
from charrnn.errors import CharRNNError

from conftest import DATA, TINY_TEXT, tiny_config

COMPRESS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}
UNICODE_TEXT = "Grüße, señor — naïve café. 東京 ✓\n" * 40


def write(tmp_path, name: str, payload: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(payload)
    return str(path)


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_sniff_names_each_format_and_not_plain_text(ext):
    assert sniff(COMPRESS[ext](b"some text\n")[:10]) == {"gz": "gzip", "bz2": "bzip2", "xz": "xz"}[ext]
    assert sniff(COMPRESS[ext](b"")[:10]) is not None  # an empty stream is still that format


def test_text_that_starts_like_a_magic_number_is_plain():
    for head in (b"BZh9 is a text", b"BZh", b"\x1f\x8b", b"", b"plain"):
        assert sniff(head[:10]) is None


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_read_text_and_load_corpus_see_the_plain_text(tmp_path, ext):
    plain = write(tmp_path, "plain.txt", UNICODE_TEXT.encode())
    packed = write(tmp_path, f"packed.txt.{ext}", COMPRESS[ext](UNICODE_TEXT.encode()))
    assert data.read_text(packed) == UNICODE_TEXT
    a, b = data.load_corpus(plain), data.load_corpus(packed)
    assert np.array_equal(a.ids, b.ids) and a.sha256 == b.sha256 and a.vocab.chars == b.vocab.chars


def test_the_content_decides_not_the_name(tmp_path):
    disguised = write(tmp_path, "corpus.txt", gzip.compress(b"hello there\n"))
    honest = write(tmp_path, "notes.gz", b"plain text in a .gz name\n")
    assert data.read_text(disguised) == "hello there\n"
    assert data.read_text(honest) == "plain text in a .gz name\n"


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_streamed_in_pieces_with_characters_cut_across_them(tmp_path, ext, monkeypatch):
    # Pieces of 7 bytes cut most multi-byte characters; the reader must put them together
    # and never hold more than one piece of decompressed bytes at a time.
    packed = write(tmp_path, f"u.{ext}", COMPRESS[ext](UNICODE_TEXT.encode()))
    sizes = [len(c) for c in read_chunks(packed, 7)]
    assert max(sizes) <= 7 and sum(sizes) == len(UNICODE_TEXT.encode())
    monkeypatch.setattr(data, "CHUNK_BYTES", 7)
    plain = data.load_corpus(write(tmp_path, "u.txt", UNICODE_TEXT.encode()))
    assert np.array_equal(data.load_corpus(packed).ids, plain.ids)


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_invalid_utf8_inside_is_named_at_the_same_offset(tmp_path, ext, monkeypatch):
    raw = ("x" * 1000).encode() + b"\xe9" + b"tail"
    monkeypatch.setattr(data, "CHUNK_BYTES", 64)  # the bad byte is many pieces in
    plain = write(tmp_path, "bad.txt", raw)
    packed = write(tmp_path, f"bad.txt.{ext}", COMPRESS[ext](raw))
    for path in (plain, packed):
        with pytest.raises(CharRNNError, match=rf"^{path} is not valid UTF-8: byte 0xe9 at offset 1000;"):
            data.load_corpus(path)


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_damaged_file_is_one_line_naming_it(tmp_path, ext):
    whole = COMPRESS[ext](UNICODE_TEXT.encode() * 20)
    cut = write(tmp_path, f"cut.{ext}", whole[: len(whole) // 2])
    result = CliRunner().invoke(main, ["train", cut, "--out", str(tmp_path / "run")])
    fmt = {"gz": "gzip", "bz2": "bzip2", "xz": "xz"}[ext]
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {cut} is not a readable {fmt} file: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run" / "latest.npz")


def test_compressed_stdin(tmp_path):
    runner = CliRunner()
    flags = ["--hidden-size", "8", "--batch-size", "2", "--seq-len", "8", "--max-steps", "5", "--quiet"]
    runner.invoke(main, ["train", "-", "--out", str(tmp_path / "a"), *flags], input=lzma.compress(TINY_TEXT.encode()))
    result = runner.invoke(main, ["eval", "-", "--checkpoint", str(tmp_path / "a" / "latest.npz")],
                           input=gzip.compress(TINY_TEXT.encode()))
    plain = runner.invoke(main, ["eval", "-", "--checkpoint", str(tmp_path / "a" / "latest.npz")], input=TINY_TEXT)
    assert result.exit_code == 0 and result.stdout == plain.stdout
    damaged = runner.invoke(main, ["eval", "-", "--checkpoint", str(tmp_path / "a" / "latest.npz")],
                            input=gzip.compress(TINY_TEXT.encode())[:40])
    assert damaged.exit_code == 1 and damaged.stderr.startswith("Error: <stdin> is not a readable gzip stream: ")


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_compressed_and_plain_corpus_train_bitwise_the_same(tmp_path, ext):
    plain = write(tmp_path, "c.txt", TINY_TEXT.encode())
    packed = write(tmp_path, f"c.txt.{ext}", COMPRESS[ext](TINY_TEXT.encode()))
    config = tiny_config(max_steps=30, dropout=0.1, cell="gru")
    charrnn.train(config, plain, out=str(tmp_path / "plain"))
    charrnn.train(config, packed, out=str(tmp_path / "packed"))
    a, b = (np.load(tmp_path / d / "latest.npz") for d in ("plain", "packed"))
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        if name != "meta":
            assert np.array_equal(a[name], b[name]), name
    meta_a, meta_b = (json.loads(str(z["meta"])) for z in (a, b))
    clock = {"elapsed"}  # the only thing allowed to differ: how long it took
    assert {k: v for k, v in meta_a.items() if k not in clock} == {k: v for k, v in meta_b.items() if k not in clock}
    # ... and either form resumes the other's run: the corpus hash is of the text, not the file.
    charrnn.train(config.replace(max_steps=40), plain, out=str(tmp_path / "packed"), resume=True)


def test_eval_and_gradflow_read_compressed_files(tmp_path, trained_ckpt, tiny_corpus):
    packed = write(tmp_path, "t.xz", lzma.compress(TINY_TEXT.encode()))
    runner = CliRunner()
    for args in (["eval", "--json"], ["eval", "--tsv"], ["gradflow", "--steps", "3", "--windows", "4", "--json"],
                 ["encode"]):
        outs = [runner.invoke(main, [*args, path, "--checkpoint", trained_ckpt]) for path in (tiny_corpus, packed)]
        assert outs[0].exit_code == 0 and outs[1].exit_code == 0, (outs[1].output, args)
        assert outs[0].stdout == outs[1].stdout, args


def test_the_shipped_full_corpus():
    text = data.read_text(os.path.join(DATA, "shakespeare-full.txt.xz"))
    assert len(text) == 4_681_504 and len(set(text)) == 84
    with open(os.path.join(DATA, "shakespeare.txt"), encoding="utf-8") as fh:
        assert text.startswith(fh.read())  # the default corpus is its first ~1 MB
