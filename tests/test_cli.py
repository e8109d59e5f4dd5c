"""The `charrnn` command end to end: train -> sample -> eval, in a temporary directory."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint as ckpt
from charrnn.cli import main
from charrnn.sampling import _draw, sample
from charrnn.scoring import evaluate

from conftest import CONFIGS, DATA, TINY_FLAGS, TINY_TEXT, invoke

FLAGS = [*TINY_FLAGS, "--lr", "0.01", "--max-steps", "40", "--eval-every", "20", "--save-every", "20"]




def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def charrnn_command() -> list:
    """The installed console script, as a shell would run it; else `python -m charrnn`."""
    script = os.path.join(os.path.dirname(sys.executable), "charrnn")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "charrnn"]


def test_train_sample_eval_in_a_fresh_directory(tmp_path, tiny_corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default checkpoints/ directory, as a new user gets it
    runner = CliRunner()
    result = ok(runner.invoke(main, ["train", tiny_corpus, *FLAGS]))
    assert result.stdout == ""  # progress and summary go to stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("done: 40 steps") and "chars/s" in summary and "val loss" in summary
    assert re.search(r"chars/s with \d+ (BLAS threads?|threads? and numba kernels);", summary)  # what auto ran with
    assert sorted(os.listdir("checkpoints")) == ["best.npz", "latest.npz", "metrics.jsonl"]

    result = ok(runner.invoke(main, ["sample", "--length", "50", "--seed", "1"]))
    assert len(result.stdout) == 51 and result.stdout.endswith("\n")
    assert set(result.stdout[:-1]) <= set(TINY_TEXT)

    result = ok(runner.invoke(main, ["eval", tiny_corpus]))
    assert "nats/char" in result.stdout and "bits/char" in result.stdout and "perplexity" in result.stdout
    assert f"({len(TINY_TEXT) - 1} predictions)" in result.stdout

    result = ok(runner.invoke(main, ["eval", "--json", tiny_corpus]))
    score = json.loads(result.stdout)
    assert set(score) == {"loss", "bits_per_char", "perplexity", "predictions"}
    # A trained model beats the uniform guess over the vocabulary.
    assert 0 < score["loss"] < math.log(len(set(TINY_TEXT)))


def test_quiet_train_prints_nothing(tmp_path, tiny_corpus):
    result = ok(invoke("train", tiny_corpus, *FLAGS, "--max-steps", "5", "--quiet", "--out", tmp_path / "o"))
    assert result.stdout == "" and result.stderr == ""
    assert os.path.exists(tmp_path / "o" / "latest.npz")


def test_config_file_then_flags(tmp_path):
    out = tmp_path / "hello"
    ok(invoke("train", os.path.join(DATA, "hello.txt"), "--config", os.path.join(CONFIGS, "hello.yaml"),
              "--hidden-size", "6", "--max-steps", "10", "--quiet", "--out", out))
    config = ckpt.load(str(out / "latest.npz")).config
    assert config.hidden_size == 6 and config.max_steps == 10  # flags
    assert config.batch_size == 1 and config.seq_len == 4 and config.lr == 0.05  # the file


def test_hello_example_through_the_cli(hello_dir):
    latest = os.path.join(hello_dir, "latest.npz")
    result = ok(invoke("sample", "--checkpoint", latest, "--prime", "h", "--length", "4", "--temp", "0"))
    assert result.stdout == "hello\n"


def test_same_seed_same_text(trained_ckpt):
    a = ok(invoke("sample", "--checkpoint", trained_ckpt, "--length", "200", "--seed", "7")).stdout
    b = ok(invoke("sample", "--checkpoint", trained_ckpt, "--length", "200", "--seed", "7")).stdout
    c = ok(invoke("sample", "--checkpoint", trained_ckpt, "--length", "200", "--seed", "8")).stdout
    assert a == b and a != c
    assert a[:-1] == "".join(sample(trained_ckpt, 200, 0.8, seed=7))  # the CLI is the library


def test_temperature_zero_is_deterministic(trained_ckpt):
    outs = {ok(invoke("sample", "--checkpoint", trained_ckpt, "--length", "80", "--temp", "0", "--seed", s)).stdout
            for s in (1, 2, 3)}
    assert len(outs) == 1
    top1 = ok(invoke("sample", "--checkpoint", trained_ckpt, "--length", "80", "--top-k", "1", "--seed", "4")).stdout
    assert top1 == outs.pop()  # keeping only the likeliest character is argmax


def test_prime_is_printed_first(trained_ckpt):
    prime = "ROMEO.\nBut "
    out = ok(invoke("sample", "--checkpoint", trained_ckpt, "--prime", prime, "--length", "30", "--seed", "1")).stdout
    assert out.startswith(prime) and len(out) == len(prime) + 30 + 1
    out = ok(invoke("sample", "--checkpoint", trained_ckpt, "--prime", prime, "--length", "0")).stdout
    assert out == prime + "\n"


def test_prime_changes_what_follows(trained_ckpt):
    a = ok(invoke("sample", "--checkpoint", trained_ckpt, "--prime", "JULIET", "--length", "40", "--temp", "0")).stdout
    b = ok(invoke("sample", "--checkpoint", trained_ckpt, "--prime", "ROMEO", "--length", "40", "--temp", "0")).stdout
    assert a[len("JULIET"):] != b[len("ROMEO"):]


def test_top_k_draws_only_from_the_k_likeliest():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=12).astype(np.float32)
    top3 = set(np.argsort(logits)[-3:].tolist())
    rows = np.tile(logits, (300, 1))  # 300 streams drawing at once
    z, cdf = np.empty_like(rows), np.empty_like(rows)
    for tri in (None, np.triu(np.ones((12, 12), np.float32))):
        draws = set(_draw(rows, 2.0, 3, rng.random(300), tri, z, cdf).tolist())
        assert draws == top3  # all three appear, nothing else does
        assert len(set(_draw(rows, 2.0, None, rng.random(300), tri, z, cdf).tolist())) > 3


def test_eval_json_fields(trained_ckpt, tiny_corpus):
    score = json.loads(ok(invoke("eval", "--checkpoint", trained_ckpt, "--json", tiny_corpus)).stdout)
    assert score["predictions"] == len(TINY_TEXT) - 1
    assert score["bits_per_char"] == pytest.approx(score["loss"] / math.log(2), rel=1e-12)
    assert score["perplexity"] == pytest.approx(math.exp(score["loss"]), rel=1e-12)
    assert score["loss"] == pytest.approx(evaluate(trained_ckpt, TINY_TEXT).loss, rel=1e-12)


def test_eval_reads_stdin(trained_ckpt, tiny_corpus):
    from_file = ok(invoke("eval", "--checkpoint", trained_ckpt, "--json", tiny_corpus)).stdout
    from_stdin = ok(invoke("eval", "--checkpoint", trained_ckpt, "--json", "-", input=TINY_TEXT.encode())).stdout
    assert from_file == from_stdin


def test_eval_is_one_stream_from_a_zero_state(trained_ckpt):
    """Scoring by hand, one character at a time from h = 0, gives the same loss."""
    checkpoint = ckpt.load(trained_ckpt)
    model, vocab = checkpoint.model(), checkpoint.vocab
    text = TINY_TEXT[:300]
    state, total = model.zero_state(1), 0.0
    ids = vocab.encode(text).astype(np.intp)
    for i, j in zip(ids[:-1], ids[1:]):
        logits, state = model.step(np.array([i]), state)
        z = logits[0].astype(np.float64)
        total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[j]
    assert evaluate(checkpoint, text).loss == pytest.approx(total / (len(text) - 1), rel=1e-4)


def test_installed_console_script(tmp_path, trained_ckpt, tiny_corpus):
    cmd = charrnn_command()
    done = subprocess.run(cmd + ["sample", "--checkpoint", trained_ckpt, "--length", "60", "--seed", "3"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "".join(sample(trained_ckpt, 60, 0.8, seed=3)) + "\n"

    done = subprocess.run(cmd + ["eval", "--json", "--checkpoint", trained_ckpt, "-"], input=TINY_TEXT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["predictions"] == len(TINY_TEXT) - 1

    done = subprocess.run(cmd + ["sample", "--checkpoint", str(tmp_path / "missing.npz")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "missing.npz" in done.stderr and "Traceback" not in done.stderr


def test_python_dash_m(trained_ckpt):
    done = subprocess.run([sys.executable, "-m", "charrnn", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "charrnn" in done.stdout


def test_output_streams_and_a_closed_pipe_ends_quietly(trained_ckpt):
    # Ten million characters take minutes: the first ones must arrive long before that.
    proc = subprocess.Popen(charrnn_command() + ["sample", "--checkpoint", trained_ckpt, "--length", "10000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.read(10)  # like `| head -c 10`
    assert len(first) == 10 and proc.poll() is None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and stderr == ""


def test_ctrl_c_saves_latest_and_exits_130(tmp_path, tiny_corpus):
    import signal

    out = tmp_path / "run"
    proc = subprocess.Popen(charrnn_command() + ["train", tiny_corpus, *FLAGS, "--max-steps", "100000000",
                                                 "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # off a terminal, each validation prints "step N: val loss ..."
        if line.startswith("step "):
            break
    else:
        raise AssertionError(f"training ended early with status {proc.wait()}")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].endswith(f"saved {out / 'latest.npz'}")
    saved = ckpt.load(str(out / "latest.npz"))
    assert saved.meta["step"] >= 1


def test_train_from_stdin_and_from_several_files(tmp_path, tiny_corpus):
    import hashlib

    ok(invoke("train", "-", *FLAGS, "--max-steps", "3", "--quiet", "--out", tmp_path / "a",
              input=TINY_TEXT.encode()))
    meta = ckpt.load(str(tmp_path / "a" / "latest.npz")).meta
    assert meta["corpus_sha256"] == hashlib.sha256(TINY_TEXT.encode()).hexdigest()
    assert meta["corpus_chars"] == len(TINY_TEXT)

    extra = tmp_path / "extra.txt"
    extra.write_text("Ωmega 😀\n", encoding="utf-8")
    ok(invoke("train", tiny_corpus, extra, *FLAGS, "--max-steps", "3", "--quiet", "--out", tmp_path / "b"))
    saved = ckpt.load(str(tmp_path / "b" / "latest.npz"))
    both = TINY_TEXT + "Ωmega 😀\n"  # concatenated in order
    assert saved.meta["corpus_sha256"] == hashlib.sha256(both.encode()).hexdigest()
    assert saved.vocab.chars == "".join(sorted(set(both)))
