"""Bad input, as a table: every row is one thing a user can get wrong.

Each row runs one `charrnn` command in a workspace holding a trained run, a corpus and a
collection of broken files, and asserts: the exit status (1 for a bad input, 2 for a
usage error), exactly one line on stderr, `Error: ...`, that says what is wrong, no traceback,
and that no file in the workspace was changed, added or removed. docs/bad-input.md
lists the same rows.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import main

from conftest import TINY_TEXT

TRAIN = ["train", "corpus.txt", "--hidden-size", "16", "--batch-size", "4", "--seq-len", "16",
         "--max-steps", "3", "-q"]

# (id, argv, stdin bytes or None, exit status, text the one error line must contain)
CASES = [
    # -- train: files -------------------------------------------------------------------
    ("train-missing-file", ["train", "missing.txt", "--out", "new"], None, 1, "file not found: missing.txt"),
    ("train-directory", ["train", "adir", "--out", "new"], None, 1, "adir is a directory, not a text file"),
    ("train-not-utf8", ["train", "latin1.txt", "--out", "new"], None, 1,
     "latin1.txt is not valid UTF-8: byte 0xe9 at offset 3"),
    ("train-empty-file", ["train", "empty.txt", "--out", "new"], None, 1, "the corpus is empty: empty.txt"),
    ("train-too-short", ["train", "short.txt", "--out", "new"], None, 1, "corpus too short: 2 characters"),
    ("train-empty-stdin", ["train", "-", "--out", "new"], b"", 1, "the corpus is empty: -"),
    ("train-stdin-not-utf8", ["train", "-", "--out", "new"], b"abc\xff\xfe", 1,
     "<stdin> is not valid UTF-8: byte 0xff at offset 3"),
    # -- train: flags -------------------------------------------------------------------
    ("train-zero-hidden", ["train", "corpus.txt", "--out", "new", "--hidden-size", "0"], None, 1,
     "hidden_size: must be at least 1, got 0"),
    ("train-hidden-not-int", ["train", "corpus.txt", "--hidden-size", "abc"], None, 2,
     "Invalid value for '--hidden-size': 'abc' is not a valid integer"),
    ("train-unknown-activation", ["train", "corpus.txt", "--activation", "softmax"], None, 2,
     "Invalid value for '--activation': 'softmax' is not one of"),
    ("train-unknown-optimizer", ["train", "corpus.txt", "--optimizer", "adamw"], None, 2,
     "Invalid value for '--optimizer': 'adamw' is not one of"),
    ("train-negative-lr", ["train", "corpus.txt", "--out", "new", "--lr", "-1"], None, 1,
     "lr: must be positive, got -1.0"),
    ("train-val-fraction-1.5", ["train", "corpus.txt", "--out", "new", "--val-fraction", "1.5"], None, 1,
     "val_fraction: must be in [0, 1), got 1.5"),
    ("train-zero-max-steps", ["train", "corpus.txt", "--out", "new", "--max-steps", "0"], None, 1,
     "max_steps: must be positive, got 0"),
    ("train-unknown-encoding", ["train", "corpus.txt", "--out", "new", "--encoding", "foo"], None, 1,
     "encoding: unknown encoding 'foo' (try utf-8, latin-1, cp1252, utf-16, or bytes)"),
    ("train-not-a-text-encoding", ["train", "corpus.txt", "--out", "new", "--encoding", "hex"], None, 1,
     "encoding: 'hex' is not a text encoding"),
    ("train-bytes-and-encoding", ["train", "corpus.txt", "--out", "new", "--bytes", "--encoding", "utf-8"], None, 2,
     "--bytes and --encoding utf-8 contradict each other; give one"),
    ("train-undefined-cp1252-byte", ["train", "cp1252.txt", "--out", "new", "--encoding", "cp1252"], None, 1,
     "cp1252.txt is not valid cp1252: byte 0x81 at offset 3"),
    # Python 3.10-3.12 say "UTF-16 stream does not start with BOM", 3.13 "byte 0x52 at offset 0".
    ("train-utf16-without-bom", ["train", "corpus.txt", "--out", "new", "--encoding", "utf-16"], None, 1,
     "corpus.txt is not valid utf-16: "),
    ("train-keep-every-0", ["train", "corpus.txt", "--out", "new", "--keep-every", "0"], None, 1,
     "keep_every: must be at least 1, got 0"),
    ("train-sample-every-negative", ["train", "corpus.txt", "--out", "new", "--sample-every", "-5"], None, 1,
     "sample_every: must be at least 1, got -5"),
    ("train-sample-length-0", ["train", "corpus.txt", "--out", "new", "--sample-length", "0"], None, 1,
     "sample_length: must be at least 1, got 0"),
    ("train-sample-temp-negative", ["train", "corpus.txt", "--out", "new", "--sample-temp", "-1"], None, 1,
     "sample_temp: must be 0 or more, got -1.0"),
    ("train-val-missing", ["train", "corpus.txt", "--out", "new", "--val", "missing.txt"], None, 1,
     "file not found: missing.txt"),
    ("train-val-empty", ["train", "corpus.txt", "--out", "new", "--val", "empty.txt"], None, 1,
     "the validation file empty.txt is empty"),
    ("train-val-stdin", ["train", "corpus.txt", "--out", "new", "--val", "-"], None, 1,
     "val: takes files; '-' (stdin) is for the corpus"),
    ("train-val-unknown-chars", ["train", "corpus.txt", "--out", "new", "--val", "other.txt"], None, 1,
     "the validation file other.txt has characters the training text lacks: 'Q', 'x'"),
    ("train-val-directory", ["train", "corpus.txt", "--out", "new", "--val", "adir"], None, 1,
     "adir is a directory, not a text file"),
    ("train-unknown-init", ["train", "corpus.txt", "--out", "new", "--init", "xavier"], None, 2,
     "Invalid value for '--init': 'xavier' is not one of 'uniform', 'normal', 'orthogonal'"),
    ("train-init-scale-0", ["train", "corpus.txt", "--out", "new", "--init-scale", "0"], None, 1,
     "init_scale: must be positive, got 0.0"),
    ("train-init-scale-negative", ["train", "corpus.txt", "--out", "new", "--init-scale", "-2"], None, 1,
     "init_scale: must be positive, got -2.0"),
    # click 8.4+ says "No such option '--hiden-size'. (Did you mean one of: ...)"; 8.2 and 8.3
    # "No such option: --hiden-size (Possible options: ...)": both name the flag and the fix.
    ("train-unknown-flag", ["train", "corpus.txt", "--hiden-size", "8"], None, 2, "--hidden-size"),
    ("train-no-corpus", ["train", "--out", "new"], None, 2, "Missing argument 'CORPUS...'"),
    # -- train: configs -----------------------------------------------------------------
    ("config-missing", ["train", "corpus.txt", "--out", "new", "--config", "nope.yaml"], None, 1,
     "config file not found: nope.yaml"),
    ("config-bad-yaml", ["train", "corpus.txt", "--out", "new", "--config", "bad.yaml"], None, 1,
     "config bad.yaml is not valid YAML at line 2"),
    ("config-unknown-key", ["train", "corpus.txt", "--out", "new", "--config", "typo.yaml"], None, 1,
     "unknown config key 'hiden_size'"),
    ("config-wrong-type", ["train", "corpus.txt", "--out", "new", "--config", "type.yaml"], None, 1,
     "hidden_size: expected an integer, got 'big'"),
    ("config-nan-clip", ["train", "corpus.txt", "--out", "new", "--config", "nan.yaml"], None, 1,
     "clip: must be a number, got nan"),
    ("config-not-a-mapping", ["train", "corpus.txt", "--out", "new", "--config", "list.yaml"], None, 1,
     "config list.yaml must be a mapping of keys to values"),
    # -- train: output directory and resume ---------------------------------------------
    ("train-out-is-a-file", [*TRAIN, "--out", "corpus.txt"], None, 1, "--out corpus.txt exists and is not a directory"),
    ("train-out-under-a-file", [*TRAIN, "--out", "corpus.txt/run"], None, 1,
     "cannot create --out corpus.txt/run: Not a directory"),
    ("train-would-overwrite", [*TRAIN], None, 1,
     "checkpoints/ already holds checkpoints (latest.npz, best.npz); use --force"),
    ("resume-nothing", [*TRAIN, "--resume", "adir"], None, 1, "nothing to resume: no latest.npz in adir/"),
    ("resume-other-corpus", ["train", "other.txt", "--resume"], None, 1, "the corpus differs from the one it was trained on"),
    ("resume-other-shape", ["train", "corpus.txt", "--resume", "--hidden-size", "32"], None, 1,
     "hidden_size is 16 there but 32 here"),
    ("resume-damaged", ["train", "corpus.txt", "--resume", "damaged"], None, 1,
     "damaged/latest.npz is damaged and cannot be read"),
    ("resume-a-file", ["train", "--resume", "corpus.txt"], None, 2,
     "--resume takes a run directory, and corpus.txt is a file"),
    ("resume-two-dirs", ["train", "corpus.txt", "--resume", "checkpoints", "--out", "other"], None, 2,
     "--resume checkpoints and --out other name different directories"),
    # -- sample -------------------------------------------------------------------------
    ("sample-missing-checkpoint", ["sample", "--checkpoint", "missing.npz"], None, 1, "checkpoint not found: missing.npz"),
    ("sample-truncated", ["sample", "--checkpoint", "truncated.npz"], None, 1, "truncated.npz is damaged and cannot be read"),
    ("sample-text-as-checkpoint", ["sample", "--checkpoint", "corpus.txt"], None, 1,
     "corpus.txt is not a charrnn checkpoint: not an .npz (zip) archive"),
    ("sample-plain-npz", ["sample", "--checkpoint", "plain.npz"], None, 1, "missing array 'meta'"),
    ("sample-future-format", ["sample", "--checkpoint", "future.npz"], None, 1,
     "has checkpoint format 99, newer than this charrnn"),
    ("sample-nan-weights", ["sample", "--checkpoint", "nan.npz"], None, 1, "parameter 'W_hh' holds NaN or infinite values"),
    ("sample-vocab-mismatch", ["sample", "--checkpoint", "vocab.npz"], None, 1,
     "parameter 'W_xh' has shape (34, 16), expected (35, 16) for vocabulary 35"),
    ("sample-bad-json", ["sample", "--checkpoint", "json.npz"], None, 1, "'meta' is not valid JSON"),
    ("sample-checkpoint-dir", ["sample", "--checkpoint", "adir"], None, 1, "checkpoint path is a directory: adir"),
    ("sample-unknown-prime", ["sample", "--prime", "Zß"], None, 1, "the prime has characters the model never saw: 'Z', 'ß'"),
    ("sample-negative-temp", ["sample", "--temp", "-1"], None, 2, "Invalid value for '--temp'"),
    ("sample-negative-length", ["sample", "--length", "-5"], None, 2, "Invalid value for '--length'"),
    ("sample-top-k-0", ["sample", "--top-k", "0"], None, 2, "Invalid value for '--top-k'"),
    ("sample-seed-not-int", ["sample", "--seed", "x"], None, 2, "Invalid value for '--seed'"),
    ("sample-top-p-0", ["sample", "--top-p", "0"], None, 2, "Invalid value for '--top-p': 0.0 is not in the range 0<x<=1"),
    ("sample-top-p-1.5", ["sample", "--top-p", "1.5"], None, 2, "Invalid value for '--top-p': 1.5 is not in the range 0<x<=1"),
    ("sample-repetition-penalty-below-1", ["sample", "--repetition-penalty", "0.5"], None, 2,
     "Invalid value for '--repetition-penalty': 0.5 is not in the range x>=1"),
    ("sample-beam-0", ["sample", "--beam", "0"], None, 2, "Invalid value for '--beam': 0 is not in the range x>=1"),
    ("sample-beam-with-top-k", ["sample", "--beam", "2", "--top-k", "3"], None, 2,
     "--beam searches for the likeliest text instead of drawing: --top-k does not apply"),
    # -- eval ---------------------------------------------------------------------------
    ("eval-missing-file", ["eval", "missing.txt"], None, 1, "file not found: missing.txt"),
    ("eval-not-utf8", ["eval", "latin1.txt"], None, 1, "latin1.txt is not valid UTF-8: byte 0xe9 at offset 3"),
    ("eval-missing-checkpoint", ["eval", "corpus.txt", "--checkpoint", "missing.npz"], None, 1,
     "checkpoint not found: missing.npz"),
    ("eval-unknown-chars", ["eval", "other.txt"], None, 1, "the text has characters the model never saw: 'Q', 'x'"),
    ("eval-stdin-not-utf8", ["eval", "-"], b"\xc3(", 1, "<stdin> is not valid UTF-8: byte 0xc3 at offset 0"),
    ("eval-one-char", ["eval", "one.txt"], None, 1, "need at least 2 characters to score, got 1"),
    ("eval-empty-stdin", ["eval", "-"], b"", 1, "need at least 2 characters to score, got 0"),
    ("eval-directory", ["eval", "adir"], None, 1, "adir is a directory, not a text file"),
    ("eval-no-file", ["eval"], None, 2, "Missing argument 'FILE'"),
    ("eval-bytes-on-a-character-model", ["eval", "corpus.txt", "--bytes"], None, 1,
     "this model reads characters (utf-8), not bytes; drop --bytes"),
    ("eval-unknown-encoding", ["eval", "corpus.txt", "--encoding", "foo"], None, 1, "unknown encoding 'foo'"),
    ("eval-damaged-checkpoint", ["eval", "corpus.txt", "--checkpoint", "truncated.npz"], None, 1,
     "truncated.npz is damaged and cannot be read"),
    ("gradflow-two-comparisons", ["gradflow", "corpus.txt", "--compare-inits", "--compare-activations"], None, 2,
     "--compare-activations and --compare-inits are two different pictures; give one"),
    ("no-such-command", ["no-such-command"], None, 2, "No such command 'no-such-command'"),
    # -- info ---------------------------------------------------------------------------
    ("info-missing", ["info", "missing.npz"], None, 1, "checkpoint not found: missing.npz"),
    ("info-empty-dir", ["info", "adir"], None, 1, "no checkpoints in adir/"),
    ("info-damaged", ["info", "truncated.npz"], None, 1, "truncated.npz is damaged and cannot be read"),
    ("info-not-a-checkpoint", ["info", "corpus.txt"], None, 1, "corpus.txt is not a charrnn checkpoint"),
]


def _resave(src, dst, edit):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    np.savez(dst, **arrays)


def _edit_meta(change):
    def edit(arrays):
        meta = json.loads(str(arrays["meta"]))
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))
    return edit


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, trained_dir):
    ws = tmp_path_factory.mktemp("workspace")
    shutil.copytree(trained_dir, ws / "checkpoints")
    good = str(ws / "checkpoints" / "best.npz")
    (ws / "corpus.txt").write_text(TINY_TEXT, encoding="utf-8")
    (ws / "other.txt").write_text(TINY_TEXT.replace("R", "Q") + "xx", encoding="utf-8")
    (ws / "latin1.txt").write_bytes("caf\u00e9 ol\u00e9\n".encode("latin-1"))
    (ws / "cp1252.txt").write_bytes(b"abc\x81def\n")
    (ws / "empty.txt").write_bytes(b"")
    (ws / "short.txt").write_text("hi")
    (ws / "one.txt").write_text("h")
    (ws / "adir").mkdir()
    (ws / "bad.yaml").write_text("hidden_size: 8\n  lr: [\n")
    (ws / "typo.yaml").write_text("hiden_size: 8\n")
    (ws / "type.yaml").write_text("hidden_size: big\n")
    (ws / "nan.yaml").write_text("clip: .nan\n")
    (ws / "list.yaml").write_text("- hidden_size\n- 8\n")
    (ws / "damaged").mkdir()
    data = open(good, "rb").read()
    (ws / "damaged" / "latest.npz").write_bytes(data[: len(data) // 2])
    (ws / "truncated.npz").write_bytes(data[: len(data) // 3])
    np.savez(ws / "plain.npz", x=np.zeros(3))
    _resave(good, ws / "future.npz", _edit_meta(lambda m: m.update(format=99)))
    _resave(good, ws / "nan.npz", lambda a: a["param/W_hh"].__setitem__((0, 0), np.nan))
    _resave(good, ws / "vocab.npz", lambda a: a.update(vocab=np.append(a["vocab"], 0x2603).astype(np.int32)))
    _resave(good, ws / "json.npz", lambda a: a.update(meta=np.array('{"format": 1, "config": {')))
    return ws


def snapshot(root) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
        if not filenames and not dirnames:
            out[os.path.relpath(dirpath, root) + "/"] = "empty dir"
    return out


def check_error(stderr: str, status: int, expected: str) -> None:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    assert expected in errors[0], stderr
    assert stderr.strip() == errors[0]  # the one line is all there is
    if status == 2:  # a usage error says where the help is
        assert errors[0].endswith("--help')"), stderr


def test_the_table_names_each_case_once_and_covers_the_commands():
    ids = [case_id for case_id, *_ in CASES]
    assert len(set(ids)) == len(ids), "a repeated id hides a case in pytest's report"
    commands = {argv[0] for _, argv, *_ in CASES}
    assert {"train", "sample", "eval"} <= commands


@pytest.mark.parametrize("case_id, argv, stdin, status, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(workspace, monkeypatch, case_id, argv, stdin, status, expected):
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    result = CliRunner().invoke(main, argv, input=stdin, prog_name="charrnn")
    assert result.exit_code == status, (result.stdout, result.stderr)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    check_error(result.stderr, status, expected)
    assert snapshot(workspace) == before  # nothing changed, added or removed


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path):
    """PyYAML reads `lr: 1e-3` as a string; the config takes the number the user meant."""
    from charrnn.config import resolve

    (tmp_path / "c.yaml").write_text("lr: 1e-3\nclip: 1E1\n")
    config = resolve(str(tmp_path / "c.yaml"))
    assert config.lr == 0.001 and config.clip == 10.0


def test_sample_without_any_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sample"], prog_name="charrnn")
    assert result.exit_code == 1
    check_error(result.stderr, 1, "no checkpoint in checkpoints/ (train first, or pass --checkpoint PATH)")
    assert os.listdir(tmp_path) == []


SUBPROCESS_CASES = [c for c in CASES if c[0] in (
    "train-stdin-not-utf8", "resume-other-shape", "sample-truncated", "sample-negative-temp", "eval-stdin-not-utf8")]


@pytest.mark.parametrize("case_id, argv, stdin, status, expected", SUBPROCESS_CASES,
                         ids=[c[0] for c in SUBPROCESS_CASES])
def test_bad_input_through_the_installed_command(workspace, case_id, argv, stdin, status, expected):
    """The same rows through a real process and real pipes, as a shell runs them."""
    exe = os.path.join(os.path.dirname(sys.executable), "charrnn")
    before = snapshot(workspace)
    proc = subprocess.run([exe, *argv], input=stdin or b"", capture_output=True, cwd=workspace, timeout=60)
    assert proc.returncode == status
    assert proc.stdout == b""
    check_error(proc.stderr.decode(), status, expected)
    assert snapshot(workspace) == before
