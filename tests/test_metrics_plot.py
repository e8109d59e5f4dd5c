"""metrics.jsonl from training events, `charrnn plot`, and the library's top-level functions."""
from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.metrics import MetricsRecorder, read

from conftest import TINY_TEXT, tiny_config

KEYS = {"step", "epoch", "train_loss", "val_loss", "lr", "grad_norm", "clipped", "chars_per_sec", "elapsed"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("metrics") / "ck"
    charrnn.train(tiny_config(max_steps=45, log_every=10, eval_every=20), text=TINY_TEXT, out=str(out))
    return str(out)


def test_training_writes_a_row_per_logged_step(run_dir):
    rows = read(run_dir)
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 45]  # every 10, and the last step
    assert all(set(r) == KEYS for r in rows)
    assert [r["step"] for r in rows if r["val_loss"] is not None] == [20, 40, 45]
    assert rows[-1]["epoch"] > rows[0]["epoch"] > 0
    assert all(r["lr"] == 1e-2 and r["grad_norm"] > 0 and r["chars_per_sec"] > 0 for r in rows)
    assert rows[-1]["elapsed"] >= rows[0]["elapsed"]
    # The checkpoint's own numbers agree with the file's last row.
    meta = charrnn.load(os.path.join(run_dir, "latest.npz")).meta
    assert rows[-1]["val_loss"] == pytest.approx(meta["val_loss"], abs=1e-6)


def test_train_loss_is_the_mean_since_the_previous_row(tmp_path):
    path = str(tmp_path / "m.jsonl")
    rec = MetricsRecorder(path, log_every=2)
    rec({"kind": "start"})
    for step, loss in enumerate([4.0, 2.0, 3.0, 1.0, 5.0], 1):
        rec({"kind": "step", "step": step, "epoch": step / 10, "loss": loss, "grad_norm": 1.0,
             "clipped": step == 2, "lr": 0.1, "chars_per_sec": 100.0, "elapsed": step * 0.5})
    rec({"kind": "eval", "step": 5, "val_loss": 2.5, "best": True})
    rec({"kind": "done", "result": None})
    rows = read(path)
    assert [(r["step"], r["train_loss"], r["clipped"], r["val_loss"]) for r in rows] == [
        (2, 3.0, 0.5, None), (4, 2.0, 0.0, None), (5, 5.0, 0.0, 2.5)]


def test_a_resumed_run_keeps_rows_up_to_its_start_and_a_fresh_run_starts_over(tmp_path):
    path = str(tmp_path / "m.jsonl")
    with open(path, "w") as fh:
        for step in (10, 20, 30):
            fh.write(json.dumps({"step": step, "train_loss": 1.0}) + "\n")
        fh.write('{"step": 40, "tra')  # torn by a crash
    assert [r["step"] for r in read(path)] == [10, 20, 30]
    rec = MetricsRecorder(path, log_every=10)
    rec({"kind": "start", "step": 20})  # resumed from a checkpoint at step 20
    rec({"kind": "step", "step": 30, "epoch": 1.0, "loss": 0.5, "chars_per_sec": 1.0, "elapsed": 1.0})
    rec({"kind": "done", "result": None})
    assert [(r["step"], r["train_loss"]) for r in read(path)] == [(10, 1.0), (20, 1.0), (30, 0.5)]
    failed = MetricsRecorder(path, log_every=1)  # a new run that fails before it saves anything...
    failed({"kind": "start"})
    failed({"kind": "step", "step": 1, "epoch": 0.1, "loss": 9.0, "chars_per_sec": 1.0, "elapsed": 1.0})
    failed({"kind": "step", "step": 2, "epoch": 0.2, "loss": 9.0, "chars_per_sec": 1.0, "elapsed": 1.0})
    failed.close()
    assert [r["step"] for r in read(path)] == [10, 20, 30]  # ...leaves the metrics as they were
    fresh = MetricsRecorder(path, log_every=1)
    fresh({"kind": "start"})
    fresh({"kind": "step", "step": 1, "epoch": 0.1, "loss": 9.0, "chars_per_sec": 1.0, "elapsed": 1.0})
    fresh({"kind": "save", "path": "latest.npz", "step": 1})
    assert [r["step"] for r in read(path)] == [1]  # a new run that saved starts the file afresh
    fresh.close()


def test_log_every_is_a_train_flag(tmp_path, tiny_corpus):
    r = CliRunner().invoke(main, ["train", tiny_corpus, "--out", str(tmp_path / "o"), "--hidden-size", "8",
                                  "--batch-size", "2", "--seq-len", "8", "--max-steps", "9", "--log-every", "3", "-q"])
    assert r.exit_code == 0, r.output
    assert [row["step"] for row in read(str(tmp_path / "o"))] == [3, 6, 9]


def test_plot_without_matplotlib_says_how_to_install(run_dir, monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    r = CliRunner().invoke(main, ["plot", run_dir, "--output", str(tmp_path / "x.png")])
    assert r.exit_code == 1
    assert r.stderr == "Error: plotting needs matplotlib: pip install 'charrnn[plot]'\n"
    assert not (tmp_path / "x.png").exists()


def test_plot_draws_a_png(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    r = CliRunner().invoke(main, ["plot", run_dir, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    assert r.stderr == f"wrote {out}\n"


def test_plot_without_metrics_is_a_one_line_error(tmp_path):
    r = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert r.exit_code == 1 and "no metrics file" in r.stderr and "Traceback" not in r.output


def test_import_charrnn_is_cheap_and_its_functions_stay_functions():
    code = ("import sys, charrnn; assert 'numpy' not in sys.modules, 'numpy imported'; "
            "import charrnn.training, charrnn.sampling, charrnn.scoring, charrnn.vectors, charrnn.plotting; "
            "fs = [charrnn.load, charrnn.train, charrnn.sample, charrnn.evaluate, charrnn.encode, charrnn.plot]; "
            "assert all(callable(f) and type(f).__name__ == 'function' for f in fs), fs; "
            "from charrnn import train; assert train.__module__ == 'charrnn.training'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_library_round_trip(tmp_path):
    result = charrnn.train(tiny_config(max_steps=20), text=TINY_TEXT, out=str(tmp_path))
    model = charrnn.load(result.latest)
    text = "".join(charrnn.sample(model, length=30, seed=1))
    assert len(text) == 30
    assert charrnn.evaluate(model, TINY_TEXT[:200]).loss > 0
    assert charrnn.encode(model, ["Romeo", "Romeo"]).shape == (2, 16)
    assert len(charrnn.score_lines(model, "Romeo\nJULIET.\n")) == 2
    assert charrnn.plot.__module__ == "charrnn.plotting"
    assert [s.seed for s in charrnn.samples(model, 2, length=5, seed=3)] == [3, 4]  # sample i uses seed + i
