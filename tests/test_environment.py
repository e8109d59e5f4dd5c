"""CHARRNN_<COMMAND>_<FLAG> variables: their place in the order of precedence, and named in
any refusal they cause."""
from __future__ import annotations

from charrnn import checkpoint as ckpt

from conftest import invoke

SMALL = ["--batch-size", "2", "--seq-len", "8", "--max-steps", "3", "--quiet"]




def test_environment_beats_yaml_and_a_flag_beats_both(tmp_path, tiny_corpus):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("hidden_size: 8\n")
    env = {"CHARRNN_TRAIN_HIDDEN_SIZE": "12"}
    assert invoke("train", tiny_corpus, "--config", cfg, "--out", tmp_path / "a", *SMALL, env=env).exit_code == 0
    assert invoke("train", tiny_corpus, "--config", cfg, "--out", tmp_path / "b", *SMALL, "--hidden-size", "10",
                  env=env).exit_code == 0
    assert invoke("train", tiny_corpus, "--config", cfg, "--out", tmp_path / "c", *SMALL).exit_code == 0
    sizes = [ckpt.load(str(tmp_path / d / "latest.npz")).config.hidden_size for d in "abc"]
    assert sizes == [12, 10, 8]


def test_a_refused_resume_names_the_variable(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    assert invoke("train", tiny_corpus, "--hidden-size", "8", "--out", out, *SMALL).exit_code == 0
    result = invoke("train", tiny_corpus, "--resume", out, env={"CHARRNN_TRAIN_HIDDEN_SIZE": "16"})
    assert result.exit_code == 1
    assert "hidden_size is 8 there but 16 here" in result.stderr
    assert "CHARRNN_TRAIN_HIDDEN_SIZE=16 is set in the environment" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_values_from_the_environment_name_it(tmp_path, tiny_corpus, trained_ckpt):
    result = invoke("train", tiny_corpus, "--out", tmp_path / "x", env={"CHARRNN_TRAIN_HIDDEN_SIZE": "0"})
    assert result.exit_code == 1 and "CHARRNN_TRAIN_HIDDEN_SIZE=0 is set in the environment" in result.stderr
    # The variable follows the flag's name (--temp), not the Python parameter's (temperature).
    result = invoke("sample", "--checkpoint", trained_ckpt, env={"CHARRNN_SAMPLE_TEMP": "-1"})
    assert result.exit_code == 2 and "CHARRNN_SAMPLE_TEMP=-1 is set in the environment" in result.stderr
    result = invoke("sample", env={"CHARRNN_CHECKPOINT": str(tmp_path / "nope.npz")})
    assert result.exit_code == 1 and "CHARRNN_CHECKPOINT=" in result.stderr


def test_an_unrelated_variable_is_not_blamed(tmp_path, tiny_corpus):
    result = invoke("train", tiny_corpus, "--out", tmp_path / "x", "--hidden-size", "0", env={"CHARRNN_TRAIN_LR": "0.01"})
    assert result.exit_code == 1 and "environment" not in result.stderr
