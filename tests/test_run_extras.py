"""--keep-every (a checkpoint history), --sample-every (samples while training), --val FILE."""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.errors import CharRNNError
from charrnn.scoring import evaluate
from charrnn.training import Run, train

from conftest import TINY_TEXT, tiny_config


def same_params(a, b):
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_keep_every_writes_whole_checkpoints_of_those_steps(tmp_path):
    train(tiny_config(max_steps=60, keep_every=20), text=TINY_TEXT, out=str(tmp_path / "a"))
    assert sorted(n for n in os.listdir(tmp_path / "a") if n.startswith("step-")) == \
        ["step-000020.npz", "step-000040.npz", "step-000060.npz"]
    kept = charrnn.load(str(tmp_path / "a" / "step-000040.npz"))
    assert kept.meta["step"] == 40 and kept.meta["val_loss"] is not None  # written after step 40's validation
    train(tiny_config(max_steps=40), text=TINY_TEXT, out=str(tmp_path / "b"))
    assert same_params(kept.params, charrnn.load(str(tmp_path / "b" / "latest.npz")).params)
    assert same_params(charrnn.load(str(tmp_path / "a" / "step-000060.npz")).params,
                       charrnn.load(str(tmp_path / "a" / "latest.npz")).params)


def test_a_new_run_over_a_history_needs_force_and_then_replaces_it(tmp_path):
    out = str(tmp_path / "a")
    train(tiny_config(max_steps=40, keep_every=20), text=TINY_TEXT, out=out)
    os.remove(os.path.join(out, "latest.npz"))
    os.remove(os.path.join(out, "best.npz"))
    with pytest.raises(CharRNNError, match="already holds checkpoints .*step-000020.npz"):
        train(tiny_config(max_steps=20), text=TINY_TEXT, out=out)
    train(tiny_config(max_steps=20), text=TINY_TEXT, out=out, force=True)
    assert not [n for n in os.listdir(out) if n.startswith("step-")]


def test_info_lists_the_history(tmp_path):
    train(tiny_config(max_steps=60, keep_every=20), text=TINY_TEXT, out=str(tmp_path / "a"))
    rows = json.loads(CliRunner().invoke(main, ["info", str(tmp_path / "a"), "--json"]).stdout)
    assert [(r["file"], r["step"]) for r in rows] == [("step-000020.npz", 20), ("step-000040.npz", 40),
                                                       ("best.npz", 60), ("latest.npz", 60), ("step-000060.npz", 60)]
    assert all(r["train_loss"] is not None and r["error"] is None for r in rows)


def run_with(tmp_path, name, events=None, **changes):
    callback = events.append if events is not None else None
    return train(tiny_config(**changes), text=TINY_TEXT, out=str(tmp_path / name), callback=callback)


def test_samples_while_training_do_not_change_the_run(tmp_path):
    events = []
    plain = run_with(tmp_path, "plain", max_steps=60, dropout=0.2, layers=2)
    sampled = run_with(tmp_path, "sampled", events, max_steps=60, dropout=0.2, layers=2, sample_every=20,
                       sample_length=30)
    assert same_params(plain.model.params, sampled.model.params)
    assert plain.losses == sampled.losses and plain.val_history == sampled.val_history
    samples = [e for e in events if e["kind"] == "sample"]
    assert [s["step"] for s in samples] == [20, 40, 60] and all(len(s["text"]) == 30 for s in samples)
    rows = [json.loads(line) for line in open(tmp_path / "sampled" / "metrics.jsonl")]
    assert [r["step"] for r in rows if "sample" in r] == [20, 40, 60]
    assert len({r["step"] for r in rows}) == len(rows)  # a sample joins its step's row, it adds none


def test_resume_is_exact_with_samples(tmp_path):
    whole = run_with(tmp_path, "whole", max_steps=60, dropout=0.2)
    run_with(tmp_path, "split", max_steps=30, dropout=0.2, sample_every=7)
    resumed = train(tiny_config(max_steps=60, dropout=0.2, sample_every=7), text=TINY_TEXT,
                    out=str(tmp_path / "split"), resume=True)
    assert same_params(whole.model.params, resumed.model.params) and whole.losses == resumed.losses


def test_the_same_weights_give_the_same_sample(tmp_path):
    from charrnn.previews import preview

    result = run_with(tmp_path, "a", max_steps=20)
    config = tiny_config(sample_length=50)
    assert preview(result.model, result.vocab, config) == preview(result.model, result.vocab, config)


def test_val_files_replace_the_tail(tmp_path):
    held = tmp_path / "held.txt"
    held.write_text("ROMEO.\nO soft, what light?\n" * 5)
    other = tmp_path / "other.txt"
    other.write_text("JULIET.\nwherefore art thou?\n" * 3)
    result = run_with(tmp_path, "a", max_steps=40, val=[str(held)])
    ck = charrnn.load(str(tmp_path / "a" / "latest.npz"))
    assert ck.meta["train_chars"] == len(TINY_TEXT) and ck.meta["val_chars"] == len(held.read_text())
    assert result.val_loss == pytest.approx(evaluate(ck, held.read_text()).loss, rel=1e-6)
    both = run_with(tmp_path, "b", max_steps=40, val=[str(held), str(other)])
    a, b = evaluate(ck, held.read_text()), evaluate(ck, other.read_text())
    assert both.val_loss == pytest.approx((a.loss * a.predictions + b.loss * b.predictions)
                                          / (a.predictions + b.predictions), rel=1e-6)


@pytest.mark.parametrize("content, message", [
    ("Quixote xylophone\n", "the validation file {path} has characters the training text lacks: 'Q', 'p', 'x'"),
    ("", "the validation file {path} is empty"),
])
def test_a_val_file_the_model_cannot_be_scored_on_is_named(tmp_path, content, message):
    path = tmp_path / "v.txt"
    path.write_text(content)
    with pytest.raises(CharRNNError, match=re.escape(message.format(path=path))):
        Run(tiny_config(val=[str(path)]), text=TINY_TEXT, out=str(tmp_path / "a"))
    assert not os.path.exists(tmp_path / "a")


def test_val_from_the_command_line_yaml_and_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text(TINY_TEXT)
    (tmp_path / "v1.txt").write_text("ROMEO.\n" * 10)
    (tmp_path / "v2.txt").write_text("JULIET.\n" * 10)
    small = ["--hidden-size", "8", "--batch-size", "4", "--seq-len", "16", "--max-steps", "5", "-q"]
    assert CliRunner().invoke(main, ["train", "c.txt", "--out", "a", "--val", "v1.txt", "--val", "v2.txt", *small]).exit_code == 0
    assert charrnn.load("a/latest.npz").config.val == ["v1.txt", "v2.txt"]
    (tmp_path / "c.yaml").write_text("val: v1.txt\nkeep_every: 5\nsample_every: 5\n")
    assert CliRunner().invoke(main, ["train", "c.txt", "--out", "b", "--config", "c.yaml", *small]).exit_code == 0
    config = charrnn.load("b/latest.npz").config
    assert config.val == ["v1.txt"] and config.keep_every == 5 and os.path.exists("b/step-000005.npz")
    env = {"CHARRNN_TRAIN_VAL": "v1.txt v2.txt", "CHARRNN_TRAIN_SAMPLE_EVERY": "5", "CHARRNN_TRAIN_SAMPLE_LENGTH": "9"}
    result = CliRunner().invoke(main, ["train", "c.txt", "--out", "c", *small[:-1]], env=env)
    assert result.exit_code == 0, result.output
    assert charrnn.load("c/latest.npz").config.val == ["v1.txt", "v2.txt"]
    assert "--- sample at step 5 ---" in result.stderr
