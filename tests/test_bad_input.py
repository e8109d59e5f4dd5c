"""The bad inputs that need more than a row of tests/test_bad_input_table.py (a file the
user cannot read, a run that diverges, damaged checkpoints of every kind, invalid UTF-8 cut
across reads): each is one line on stderr, exit 1 (2 for usage errors), no traceback, and no
existing checkpoint is touched."""
from __future__ import annotations

import os
import shutil
import warnings
import zipfile

import numpy as np
import pytest

import charrnn.compressed
import charrnn.data

from conftest import TINY_FLAGS, TINY_TEXT, digests, invoke

FLAGS = [*TINY_FLAGS, "--max-steps", "5", "--quiet"]




@pytest.fixture
def guarded(tmp_path, trained_dir):
    """A copy of a trained checkpoint directory; the test fails if any file in it changes."""
    directory = tmp_path / "guarded"
    shutil.copytree(trained_dir, directory)
    before = digests(directory)
    yield str(directory)
    assert digests(directory) == before, "a failed command touched the checkpoints"




def assert_error(result, *needles, code=1):
    """One 'Error: ...' line on stderr naming the needles; nothing on stdout; no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.rstrip("\n").split("\n")
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], result.stderr
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def write_bytes(tmp_path, name, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# -- train --------------------------------------------------------------------------------

def train_into(guarded, corpus, *extra):
    # --force: even when overwriting is allowed, a failed run must not touch the checkpoints.
    return invoke("train", corpus, *FLAGS, "--out", guarded, "--force", *extra)


def test_train_unreadable_file(tmp_path, guarded, monkeypatch):
    path = write_bytes(tmp_path, "secret.txt", TINY_TEXT.encode())
    real_open = open

    def deny(file, *args, **kwargs):
        if str(file) == path:
            raise PermissionError(13, "Permission denied", file)
        return real_open(file, *args, **kwargs)

    # Root reads any file whatever its mode, so the refusal is simulated where the file is opened.
    monkeypatch.setattr(charrnn.compressed, "open", deny, raising=False)
    assert_error(train_into(guarded, path), "permission denied", "secret.txt")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file of mode 000")
def test_train_unreadable_file_mode_000(tmp_path, guarded):
    path = write_bytes(tmp_path, "secret.txt", TINY_TEXT.encode())
    os.chmod(path, 0)
    assert_error(train_into(guarded, path), "permission denied", "secret.txt")


def test_train_divergence_keeps_the_checkpoints(tiny_corpus, guarded):
    # Adam moves each weight by about lr per step: float32 overflows within a few steps.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # a numpy warning would be more lines on a user's stderr
        result = train_into(guarded, tiny_corpus, "--lr", "1e38", "--clip", "0", "--max-steps", "10")
    assert_error(result, "diverged", "--lr")
    assert [str(w.message) for w in caught] == []


def test_huge_but_finite_loss_is_not_a_traceback(tiny_corpus, tmp_path):
    result = invoke("train", tiny_corpus, *FLAGS, "--lr", "1e30", "--clip", "0", "--eval-every", "5",
                    "--out", tmp_path / "o")
    # Whether float32 sums of squares this large overflow depends on numpy's summation (numpy
    # 1.22's gradient norm does, 2.x's does not): either training goes on, or it stops in one line.
    if result.exit_code:
        assert_error(result, "diverged", "--lr")


# -- sample -------------------------------------------------------------------------------

def best(guarded):
    return os.path.join(guarded, "best.npz")


def test_sample_no_checkpoint_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_error(invoke("sample"), "no checkpoint", "--checkpoint")


def corrupt_files(tmp_path, guarded) -> dict:
    good = open(best(guarded), "rb").read()
    rng = np.random.default_rng(0)
    files = {
        "random bytes": write_bytes(tmp_path, "random.npz", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        "truncated": write_bytes(tmp_path, "truncated.npz", good[: len(good) // 2]),
        "empty": write_bytes(tmp_path, "empty.npz", b""),
        "text": write_bytes(tmp_path, "notes.npz", b"these are my notes\n"),
    }
    npy = tmp_path / "array.npy"
    np.save(npy, np.arange(5.0))
    files["a .npy array"] = str(npy)
    z = tmp_path / "other.npz"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "not numpy")
    files["a zip of something else"] = str(z)
    other = tmp_path / "arrays.npz"
    np.savez(other, weights=np.ones(3))
    files["an npz of other arrays"] = str(other)
    return files


CORRUPT = ["random bytes", "truncated", "empty", "text", "a .npy array", "a zip of something else",
           "an npz of other arrays"]


@pytest.mark.parametrize("kind", CORRUPT)
def test_sample_corrupt_checkpoint(tmp_path, guarded, kind):
    path = corrupt_files(tmp_path, guarded)[kind]
    message = assert_error(invoke("sample", "--checkpoint", path), os.path.basename(path))
    assert "pickle" not in message  # never advise unpickling a file of unknown origin


@pytest.mark.parametrize("kind", ["random bytes", "truncated", "a .npy array"])
def test_eval_corrupt_checkpoint(tmp_path, guarded, tiny_corpus, kind):
    path = corrupt_files(tmp_path, guarded)[kind]
    assert_error(invoke("eval", "--checkpoint", path, tiny_corpus), os.path.basename(path))


# -- reading ------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("data", [
    "日本".encode() + b"\xe6\x97" + "語".encode(),  # a cut-short character in the middle
    "añ".encode() + b"\x80" + "😀".encode(),  # a stray continuation byte
    "😀".encode()[:3],  # cut short at the very end
    b"abc\xff\xfe",
    "€".encode() + b"\xf8\x88\x80\x80\x80",  # a 5-byte form, never valid
])
def test_invalid_utf8_offset_across_read_boundaries(tmp_path, monkeypatch, data, chunk):
    """The offset is the byte's position in the file, wherever the file was cut into reads."""
    monkeypatch.setattr(charrnn.data, "CHUNK_BYTES", chunk)
    path = write_bytes(tmp_path, "bad.txt", data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset, byte = exc.start, data[exc.start]
    with pytest.raises(charrnn.data.CharRNNError) as info:
        charrnn.data.load_corpus(path)
    assert str(info.value).startswith(f"{path} is not valid UTF-8: byte 0x{byte:02x} at offset {offset};")
