"""The encoder-decoder end to end: train --pairs, translate, eval --pairs, encode, resume,
Ctrl-C, divergence, checkpoints, bad input; and that it learns a small task."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint as ckpt
from charrnn.cli import main
from charrnn.config import Config
from charrnn.errors import CharRNNError, DivergenceError
from charrnn.pairs import MAX_CHARS, Batcher, Encoded, padding_share, parse_pairs, vocabularies
from charrnn.seq2seq_training import train_pairs
from charrnn.training import Interrupted
from charrnn.translate import evaluate_pairs, translate_lines

WORDS = ["ab", "ba", "abc", "cab", "bca", "a", "cc", "bac", "acb", "cba", "aab", "bb", "ca", "c", "abca"]


def reverse_pairs(n: int = 300, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        w = "".join(rng.choice(list("abc"), rng.integers(1, 5)))
        lines.append(f"{w}\t{w[::-1]}")
    return "\n".join(lines) + "\n"


def small(**changes) -> Config:
    base = dict(cell="lstm", hidden_size=24, batch_size=16, lr=1e-2, max_steps=40, eval_every=20,
                save_every=20, seed=0, val_fraction=0.1)
    base.update(changes)
    return Config(**base)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("pairs") / "rev.tsv"
    path.write_text(reverse_pairs(), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, pairs_file) -> str:
    out = str(tmp_path_factory.mktemp("s2s") / "run")
    train_pairs(small(max_steps=400, eval_every=100, save_every=100), pairs_file, out=out)
    return out


def test_learns_to_reverse(trained, tmp_path):
    held = tmp_path / "held.tsv"
    held.write_text("".join(f"{w}\t{w[::-1]}\n" for w in WORDS), encoding="utf-8")
    score = evaluate_pairs(os.path.join(trained, "best.npz"), parse_pairs(held.read_text()))
    assert score.exact_match >= 0.8 and score.pairs == len(WORDS)
    assert score.loss < 0.5


def test_checkpoint_layout(trained):
    ck = ckpt.load(os.path.join(trained, "latest.npz"))
    assert ck.task == "seq2seq"
    assert all(k.startswith(("enc.", "dec.")) for k in ck.params)
    assert {"enc.W_x", "enc.W_h", "dec.W_x", "dec.W_hy", "dec.b_y"} <= set(ck.params)
    assert ck.src_vocab.chars == "abc" and ck.vocab.chars == "\x02\x03abc"
    with np.load(os.path.join(trained, "latest.npz")) as z:
        assert "src_vocab" in z.files and json.loads(str(z["meta"]))["task"] == "seq2seq"


def test_translate_cli_streams_and_reports_bad_lines(trained):
    ck = os.path.join(trained, "best.npz")
    r = CliRunner().invoke(main, ["translate", "--checkpoint", ck], input="abc\n\nabd\nca\n")
    assert r.exit_code == 1
    lines = r.stdout.split("\n")
    assert lines[:4] == ["cba", "", "", "ac"]
    assert "line 2: empty source" in r.stderr
    assert "line 3: the source has characters the model never saw: 'd'" in r.stderr
    assert "2 of 4 lines could not be translated" in r.stderr


def test_translate_json_beam_and_temp(trained):
    ck = os.path.join(trained, "best.npz")
    r = CliRunner().invoke(main, ["translate", "--checkpoint", ck, "--json", "--beam", "3"], input="cab\n")
    d = json.loads(r.stdout)
    assert r.exit_code == 0 and d["output"] == "bac" and d["logprob"] < 0 and d["finished"]
    greedy = list(translate_lines(ck, ["cab"]))[0]
    assert greedy.logprob <= d["logprob"] + 1e-5  # beam finds no worse an output (the JSON rounds to 5 decimals)
    hot = [t.output for t in translate_lines(ck, ["abca"] * 20, temperature=5.0, seed=1)]
    assert len(set(hot)) > 1  # a high temperature draws varied outputs
    same = [t.output for t in translate_lines(ck, ["abca"] * 20, temperature=5.0, seed=1)]
    assert hot == same


def test_translate_streams_line_by_line(trained):
    """A line is answered before the next is written: a pipeline citizen."""
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "translate", "--checkpoint",
                             os.path.join(trained, "best.npz")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("ab\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "ba\n"
        proc.stdin.write("abc\n")
        proc.stdin.close()
        assert proc.stdout.readline() == "cba\n"
    finally:
        proc.kill()
        proc.wait()


def test_eval_pairs_and_encode_cli(trained, pairs_file):
    ck = os.path.join(trained, "best.npz")
    r = CliRunner().invoke(main, ["eval", "--pairs", pairs_file, "--checkpoint", ck, "--json"])
    d = json.loads(r.stdout)
    assert r.exit_code == 0 and d["pairs"] == 300 and 0 <= d["exact_match"] <= 1
    r = CliRunner().invoke(main, ["encode", "-", "--checkpoint", ck], input="abc\nab\n")
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 0 and len(rows) == 2 and len(rows[0]["vector"]) == 24
    assert rows[0]["vector"] != rows[1]["vector"]


def test_refusals(trained, trained_ckpt, pairs_file):
    s2s = os.path.join(trained, "best.npz")
    r = CliRunner().invoke(main, ["sample", "--checkpoint", s2s])
    assert r.exit_code == 1 and "is an encoder-decoder" in r.stderr and len(r.stderr.splitlines()) == 1
    r = CliRunner().invoke(main, ["translate", "--checkpoint", trained_ckpt], input="x\n")
    assert r.exit_code == 1 and "is a language model" in r.stderr and len(r.stderr.splitlines()) == 1
    r = CliRunner().invoke(main, ["eval", pairs_file, "--checkpoint", s2s])
    assert r.exit_code == 1 and "is an encoder-decoder" in r.stderr


@pytest.mark.parametrize("line, message", [
    ("abc", "line 2 has no TAB; expected source TAB target"),
    ("a\tb\tc", "line 2 has 2 TABs"),
    ("\tabc", "line 2 has an empty source"),
    ("abc\t", "line 2 has an empty target"),
    ("a" * (MAX_CHARS + 1) + "\tb", f"the source has {MAX_CHARS + 1} characters, more than the cap of {MAX_CHARS}"),
    ("a\tb\x03", "reserved"),
])
def test_bad_pairs_are_one_line_errors(tmp_path, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text(f"ab\tba\n{line}\nc\tc\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["train", "--pairs", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written, nothing lost


def test_eval_pairs_names_unknown_source_char(trained, tmp_path):
    path = tmp_path / "held.tsv"
    path.write_text("ab\tba\nxb\tbx\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["eval", "--pairs", str(path), "--checkpoint", os.path.join(trained, "best.npz")])
    assert r.exit_code == 1 and "line 2: the source has characters the model never saw: 'x'" in r.stderr


def test_resume_is_exact(tmp_path, pairs_file):
    whole = str(tmp_path / "whole")
    train_pairs(small(max_steps=30, eval_every=10, save_every=10), pairs_file, out=whole, metrics=False)
    part = str(tmp_path / "part")
    train_pairs(small(max_steps=17, eval_every=10, save_every=10), pairs_file, out=part, metrics=False)
    res = train_pairs(small(max_steps=30, eval_every=10, save_every=10), pairs_file, out=part, resume=True,
                      metrics=False)
    a, b = ckpt.load(os.path.join(whole, "latest.npz")), ckpt.load(os.path.join(part, "latest.npz"))
    assert res.steps == 30
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    assert np.array_equal(a.history["train_loss"], b.history["train_loss"])


def test_resume_refuses_other_pairs(tmp_path, pairs_file):
    out = str(tmp_path / "run")
    train_pairs(small(max_steps=5), pairs_file, out=out, metrics=False)
    other = tmp_path / "other.tsv"
    other.write_text("a\tb\n" * 50, encoding="utf-8")
    with pytest.raises(CharRNNError, match="the corpus differs"):
        train_pairs(small(max_steps=10), str(other), out=out, resume=True, metrics=False)
    with pytest.raises(CharRNNError, match="already holds checkpoints"):
        train_pairs(small(max_steps=10), pairs_file, out=out, metrics=False)


def test_ctrl_c_saves_latest(tmp_path, pairs_file):
    out = str(tmp_path / "run")

    def on_event(e):
        if e["kind"] == "step" and e["step"] == 7:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as info:
        train_pairs(small(max_steps=100), pairs_file, out=out, callback=on_event, metrics=False)
    assert info.value.exit_code == 130
    assert ckpt.load(os.path.join(out, "latest.npz")).meta["step"] == 7


def test_divergence_keeps_checkpoints(tmp_path, pairs_file):
    out = str(tmp_path / "run")
    with pytest.raises(DivergenceError, match="training diverged at step"):
        train_pairs(small(lr=1e12, clip=0.0, cell="elman", activation="relu", max_steps=50), pairs_file,
                    out=out, metrics=False)


def test_metrics_and_progress_events(tmp_path, pairs_file):
    out = tmp_path / "run"
    events = []
    train_pairs(small(max_steps=20, eval_every=10, log_every=5), pairs_file, out=str(out), callback=events.append)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert rows[1]["val_loss"] is not None and 0 <= rows[1]["val_exact_match"] <= 1
    kinds = {e["kind"] for e in events}
    assert {"start", "step", "eval", "save", "done"} <= kinds


def test_bucketing_keeps_padding_small():
    rng = np.random.default_rng(0)
    text = "\n".join(f"{'x' * int(n)}\t{'y' * int(m)}" for n, m in
                     zip(rng.integers(1, 40, 3000), rng.integers(1, 30, 3000)))
    pairs = parse_pairs(text)
    data = Encoded(pairs, *vocabularies(pairs))
    share = padding_share(data, Batcher(data, 64, 0).epoch(0))
    assert share["encoder"] < 0.1 and share["all"] < 0.2  # lengths drawn independently: the hard case
    # Without sorting, the same batches would pad far more: the measure can tell them apart.
    unsorted = [list(range(i, min(i + 64, len(data)))) for i in range(0, len(data), 64)]
    assert padding_share(data, unsorted)["all"] > 0.3


def test_translate_file_argument_and_bad_utf8_line(trained, tmp_path):
    ck = os.path.join(trained, "best.npz")
    path = tmp_path / "in.txt"
    path.write_bytes(b"ab\n\xff\xfe\nabc")  # no newline at the end: the last line still counts
    r = CliRunner().invoke(main, ["translate", str(path), "--checkpoint", ck])
    assert r.exit_code == 1 and r.stdout == "ba\n\ncba\n"
    assert "line 2: not valid UTF-8: byte 0xff at offset 0" in r.stderr
    r = CliRunner().invoke(main, ["translate", str(tmp_path), "--checkpoint", ck])
    assert r.exit_code == 1 and "is a directory" in r.stderr
    r = CliRunner().invoke(main, ["translate", str(tmp_path / "nope.txt"), "--checkpoint", ck])
    assert r.exit_code == 1 and "file not found" in r.stderr


def test_train_pairs_cli_usage_errors(pairs_file, tiny_corpus, tmp_path):
    r = CliRunner().invoke(main, ["train", tiny_corpus, "--pairs", pairs_file, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "give a CORPUS or --pairs, not both" in r.stderr
    r = CliRunner().invoke(main, ["train", "--pairs", pairs_file, "--out", str(tmp_path / "o"), "--dropout", "0.2"])
    assert r.exit_code == 1 and "does not use dropout" in r.stderr


def test_inspect_refuses_an_encoder_decoder(trained, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcabc", encoding="utf-8")
    r = CliRunner().invoke(main, ["inspect", str(path), "--checkpoint", os.path.join(trained, "best.npz")])
    assert r.exit_code == 1 and "is an encoder-decoder" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("damage, message", [
    (lambda a: a.pop("src_vocab"), "missing array 'src_vocab'"),
    (lambda a: a.__setitem__("param/enc.W_h", a["param/enc.W_h"][:, :-1]), "parameter 'enc.W_h' has shape"),
    (lambda a: a.__setitem__("param/dec.b_y", a["param/dec.b_y"] * np.nan), "holds NaN or infinite values"),
    (lambda a: a.pop("param/dec.W_hy"), "missing parameter 'dec.W_hy'"),
    (lambda a: a.__setitem__("vocab", np.array([97, 98, 99], np.int32)), "lacks the START/END markers"),
    (lambda a: a.__setitem__("extra", np.zeros(2)), "unexpected array 'extra'"),
])
def test_damaged_seq2seq_checkpoint_is_one_clear_error(trained, tmp_path, damage, message):
    with np.load(os.path.join(trained, "latest.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    damage(arrays)
    path = str(tmp_path / "bad.npz")
    np.savez(path, **arrays)
    with pytest.raises(ckpt.CheckpointError, match="is not a valid charrnn checkpoint") as info:
        ckpt.load(path)
    assert message in str(info.value)


def test_info_names_both_vocabularies(trained):
    res = CliRunner().invoke(main, ["info", os.path.join(trained, "latest.npz"), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["task"] == "seq2seq" and d["vocabulary"]["characters"] == "\x02\x03abc"
    assert d["source_vocabulary"] == {"size": 3, "characters": "abc"}
    text = CliRunner().invoke(main, ["info", os.path.join(trained, "latest.npz")]).output
    assert "source:     3 characters: abc" in text
