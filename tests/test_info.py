"""`charrnn info`: a run directory listed, a checkpoint described, damaged files named."""
from __future__ import annotations

import json
import shutil

import numpy as np
from click.testing import CliRunner

from charrnn.cli import main
from charrnn.info import describe, list_dir


def test_describe_says_what_the_checkpoint_is(trained_ckpt):
    d = describe(trained_ckpt)
    assert d["model"]["cell"] == "elman" and d["model"]["hidden_size"] == 16
    assert d["model"]["parameters"] == sum(int(np.prod(s)) for s in d["model"]["shapes"].values())
    assert d["vocabulary"]["kind"] == "characters" and d["vocabulary"]["size"] == len(d["vocabulary"]["characters"])
    assert len(d["corpus"]["sha256"]) == 64
    assert d["run"]["step"] > 0 and d["run"]["resumable"] is True
    assert d["config"]["hidden_size"] == 16 and d["task"] == "lm"


def test_info_lists_a_directory_by_step_and_names_damaged_files(trained_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_dir, run)
    data = (run / "latest.npz").read_bytes()
    (run / "broken.npz").write_bytes(data[: len(data) // 2])
    entries = list_dir(str(run))
    assert [e.file for e in entries] == ["best.npz", "latest.npz", "broken.npz"]
    assert entries[1].step == 60 and entries[1].train_loss is not None and entries[1].error is None
    assert "damaged" in entries[2].error
    result = CliRunner().invoke(main, ["info", str(run)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{run}/: 3 checkpoints"
    assert lines[1].split() == ["file", "step", "epoch", "train", "val", "time", "saved"]
    assert lines[3].split()[:2] == ["latest.npz", "60"]
    assert lines[-1].startswith("broken.npz: ") and "damaged" in lines[-1]
    rows = json.loads(CliRunner().invoke(main, ["info", str(run), "--json"]).stdout)
    assert [r["file"] for r in rows] == ["best.npz", "latest.npz", "broken.npz"]


def test_info_describes_a_file_as_text_and_json(trained_ckpt):
    text = CliRunner().invoke(main, ["info", trained_ckpt]).stdout
    assert "model:      elman tanh, 1 layer x 16 hidden" in text
    assert "trained:    adam lr 0.01" in text
    d = json.loads(CliRunner().invoke(main, ["info", trained_ckpt, "--json"]).stdout)
    assert d == json.loads(json.dumps(describe(trained_ckpt)))
