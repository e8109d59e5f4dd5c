"""Per-line scores (`eval --per-line`) and sentence vectors (`encode`)."""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import main
from charrnn.scoring import score_ids, score_lines

CHARRNN = os.path.join(os.path.dirname(sys.executable), "charrnn")
LINES = "JULIET.\nO Romeo, Romeo\n\nwherefore art thou Romeo?\nO Romeo, Romeo\nROMEO."  # no final newline


@pytest.fixture(scope="module")
def ck(trained_ckpt):
    return charrnn.load(trained_ckpt)


def test_per_line_scores_add_up_to_the_whole_text(ck):
    scores = score_lines(ck, LINES)
    assert [s.line for s in scores] == [1, 2, 3, 4, 5, 6]
    assert [s.text for s in scores] == LINES.split("\n")
    assert [s.predictions for s in scores] == [8, 15, 1, 26, 15, 6]  # each line's newline, but the last has none
    # One stream over the text after a newline: the per-line totals partition its loss.
    whole = score_ids(ck.model(), ck.vocab.encode("\n" + LINES))
    assert sum(s.nats for s in scores) == pytest.approx(whole.loss * whole.predictions, rel=1e-5)
    # Each line is scored in context: the repeated line scores differently the second time.
    assert scores[1].nats != pytest.approx(scores[4].nats, rel=1e-6)


def test_reset_per_line_scores_each_line_alone(ck):
    scores = score_lines(ck, LINES, reset=True)
    for s, line, nl in zip(scores, LINES.split("\n"), [True] * 5 + [False]):
        alone = score_ids(ck.model(), ck.vocab.encode("\n" + line + ("\n" if nl else "")))
        assert s.nats == pytest.approx(alone.loss * alone.predictions, rel=1e-5)
    assert scores[1].nats == pytest.approx(scores[4].nats, rel=1e-5)  # same line, same score
    assert score_lines(ck, LINES)[0].nats == pytest.approx(scores[0].nats, rel=1e-6)  # the first line agrees


def test_per_line_json_and_tsv_from_the_cli(trained_ckpt, tmp_path):
    f = tmp_path / "lines.txt"
    f.write_text(LINES)
    runner = CliRunner()
    r = runner.invoke(main, ["eval", "--per-line", str(f), "--checkpoint", trained_ckpt])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert len(rows) == 6
    row = rows[3]
    assert row["text"] == "wherefore art thou Romeo?" and row["chars"] == 25 and row["predictions"] == 26
    assert row["nats_per_prediction"] == pytest.approx(row["nats"] / 26, abs=1e-5)
    assert row["bits"] == pytest.approx(row["nats"] / math.log(2), abs=1e-5)
    t = runner.invoke(main, ["eval", "--tsv", str(f), "--checkpoint", trained_ckpt])
    cols = t.output.splitlines()[3].split("\t")
    assert cols[0] == "4" and cols[1] == "25" and cols[-1] == "wherefore art thou Romeo?"
    assert float(cols[3]) == row["nats_per_prediction"]


def test_per_line_ranking_pipeline(trained_ckpt, tmp_path):
    # The README's pipeline: the line least like the training text comes first.
    f = tmp_path / "mixed.txt"
    f.write_text("O Romeo, Romeo\n?,T.B?,wU.?E\nJULIET.\n")
    r = subprocess.run(["bash", "-c", f'cat {f} | "{CHARRNN}" eval --tsv --reset-per-line - --checkpoint {trained_ckpt} '
                                      "| sort -t$'\\t' -k4,4gr | head -n 1 | cut -f7"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "?,T.B?,wU.?E\n"


def test_unknown_character_names_the_line(ck):
    with pytest.raises(charrnn.CharRNNError, match="^line 2 has characters the model never saw: '\u20ac'$"):
        score_lines(ck, "Romeo\nRom€o\nok\n")


def test_equal_lines_give_equal_vectors(ck):
    lines = ["O Romeo, Romeo", "JULIET.", "O Romeo, Romeo", "", "wherefore art thou Romeo?" * 3]
    v = charrnn.encode(ck, lines)
    assert v.shape == (5, ck.config.hidden_size) and v.dtype == np.float32
    assert np.array_equal(v[0], v[2])
    assert not np.allclose(v[0], v[1])
    assert not v[3].any()  # an empty line is the zero state


def test_vector_is_the_last_hidden_state_of_a_forward_pass(ck):
    lines = ["O Romeo, Romeo", "JULIET.", "Rome", "wherefore art thou Romeo? " * 50]  # one longer than a batch cell limit
    v = charrnn.encode(ck, lines)
    model = ck.model()
    for line, vec in zip(lines, v):
        ids = ck.vocab.encode(line).astype(np.intp)[:, None]  # (T, 1)
        _, state = model.forward(ids, ids, model.zero_state(1))
        assert np.allclose(vec, state[-1][0], rtol=1e-5, atol=1e-6)


def test_encode_batches_long_inputs_in_time_chunks(ck, monkeypatch):
    from charrnn import batching, vectors

    lines = ["O Romeo, Romeo " * k for k in (1, 3, 7)] + ["JULIET."]
    whole = charrnn.encode(ck, lines)
    monkeypatch.setattr(vectors, "TIME_CHUNK", 5)  # many chunks, a state carried between them
    monkeypatch.setattr(batching, "MAX_ROWS", 2)
    assert np.allclose(charrnn.encode(ck, lines), whole, atol=1e-6)


def test_encode_cli_jsonl_npy_and_skip_unknown(trained_ckpt, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("O Romeo\nRom\u20aco\nJULIET.\n")
    runner = CliRunner()
    bad = runner.invoke(main, ["encode", str(f), "--checkpoint", trained_ckpt])
    assert bad.exit_code == 1 and "line 2 has characters the model never saw" in bad.stderr
    ok = runner.invoke(main, ["encode", str(f), "--checkpoint", trained_ckpt, "--skip-unknown"])
    assert ok.exit_code == 0
    rows = [json.loads(line) for line in ok.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 3]
    expected = charrnn.encode(charrnn.load(trained_ckpt), ["O Romeo", "JULIET."])
    assert np.array_equal(np.array([r["vector"] for r in rows], dtype=np.float32), expected)  # %.9g round-trips
    assert "skipped 1 of 3 lines" in ok.stderr
    out = tmp_path / "v.bin"
    n = runner.invoke(main, ["encode", str(f), "--checkpoint", trained_ckpt, "--skip-unknown", "-q",
                             "--format", "npy", "--output", str(out)])
    assert n.exit_code == 0 and n.stderr == "" and n.stdout == ""
    assert np.array_equal(np.load(str(out)), expected)  # written where asked, no .npy appended
    usage = runner.invoke(main, ["encode", str(f), "--checkpoint", trained_ckpt, "--format", "npy"])
    assert usage.exit_code == 2


def test_encode_reads_stdin_through_a_pipe(trained_ckpt):
    r = subprocess.run(["bash", "-c", f'printf "JULIET.\\nJULIET.\\n" | "{CHARRNN}" encode - --checkpoint {trained_ckpt} '
                                      "--format npy --output -"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    v = np.load(io.BytesIO(r.stdout))
    assert v.shape[0] == 2 and np.array_equal(v[0], v[1])
