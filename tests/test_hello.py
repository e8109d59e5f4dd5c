"""charrnn hello: the textbook "hello" example, before and after training."""
from __future__ import annotations

import json
import os

from click.testing import CliRunner

from charrnn import checkpoint as ckpt
from charrnn.cli import main
from charrnn.config import load_yaml
from charrnn.walkthrough import HELLO, hello, outputs

from conftest import CONFIGS, DATA


def test_settings_are_those_of_configs_hello_yaml_and_the_word_is_data_hello_txt():
    assert HELLO == load_yaml(os.path.join(CONFIGS, "hello.yaml"))
    with open(os.path.join(DATA, "hello.txt"), encoding="utf-8") as fh:
        assert fh.read().strip() == "hello"


def test_every_target_probability_rises_above_0_9(hello_dir):
    w = hello()
    # The walk-through trains, in memory, the very model `charrnn train data/hello.txt --config
    # configs/hello.yaml` writes: its outputs after training are that checkpoint's.
    trained = ckpt.load(os.path.join(hello_dir, "latest.npz"))
    assert [r.probs for r in outputs(trained.model(), trained.vocab, "hello")] == [r.probs for r in w.after]
    assert sorted(w.chars) == list("ehlo") and w.steps == 300
    assert [(r.input, r.target) for r in w.after] == [("h", "e"), ("e", "l"), ("l", "l"), ("l", "o")]
    for before, after in zip(w.before, w.after):
        assert before.target_prob < 0.5  # an untrained network is close to uniform over 4
        assert after.target_prob > before.target_prob and after.target_prob > 0.9
        assert after.scores[after.target_id] == max(after.scores)  # the target's score is the highest
        assert abs(sum(after.probs) - 1) < 1e-9
    assert w.loss(w.after) < w.loss(w.before)


def test_cli_prints_the_tables_with_the_target_marked():
    r = CliRunner().invoke(main, ["hello"])
    assert r.exit_code == 0, r.output
    out = r.output
    assert "vocabulary h e l o" in out and "before training" in out and "after 300 updates" in out
    rows = [l for l in out.splitlines() if l.count("|") == 2 and l.split()[0] in "hel"]
    assert len(rows) == 8  # h, e, l, l before and after
    for line in rows:
        assert line.count("[") == 2  # the target's score and its probability
    after_h = rows[4]  # h -> e after training: columns h e l o, target e
    probs = after_h.split("|")[2].split()
    assert probs[1].startswith("[") and float(probs[1].strip("[]")) > 0.9
    assert "h->e" in out.splitlines()[-1]


def test_cli_json_and_another_word():
    r = CliRunner().invoke(main, ["hello", "--word", "abcab", "--steps", "50", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["vocabulary"] == ["a", "b", "c"] and data["steps"] == 50
    assert [row["input"] for row in data["after"]] == list("abca")
    assert data["loss_after"] < data["loss_before"]
    r = CliRunner().invoke(main, ["hello", "--word", "a"])
    assert r.exit_code == 1 and "at least 2 characters" in r.output
