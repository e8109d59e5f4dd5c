"""Training LSTM and GRU stacks end to end: checkpoints with their state, schedules in the
step events, early stopping, and fine-tuning from a checkpoint on text with new characters."""
from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint as ckpt
from charrnn import finetune, training
from charrnn.cli import main
from charrnn.errors import CheckpointError
from charrnn.sampling import sample
from charrnn.scoring import evaluate, score_ids
from charrnn.training import train
from charrnn.vocab import Vocab

from conftest import TINY_TEXT, run, tiny_config

NEW_TEXT = "ZORRO. Qué? Zebra & jam!\n" * 40  # 'Z', 'Q', 'é', '&', 'j', 'z'... are new


@pytest.fixture(scope="module")
def lstm_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lstm") / "ck"
    train(tiny_config(cell="lstm", layers=2, dropout=0.1, max_steps=40), text=TINY_TEXT, out=str(out))
    return str(out)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_learn_and_round_trip(tmp_path, cell):
    result, events = run(tmp_path, cell=cell, layers=2, dropout=0.1, max_steps=60, lr=2e-2)
    losses = [e["loss"] for e in events if e["kind"] == "step"]
    assert np.mean(losses[-10:]) < 0.7 * losses[0]
    model = ckpt.load(result.latest)
    assert model.config.cell == cell and model.config.layers == 2
    text = "".join(sample(model, 40, seed=1))
    assert len(text) == 40 and set(text) <= set(TINY_TEXT)
    assert evaluate(model, TINY_TEXT[:300]).loss < np.log(len(set(TINY_TEXT)))


def test_lstm_checkpoint_holds_h_and_c(lstm_dir):
    c = ckpt.load(os.path.join(lstm_dir, "latest.npz"))
    assert len(c.state) == 2 and all(isinstance(s, tuple) and len(s) == 2 for s in c.state)
    h, cc = c.state[1]
    assert h.shape == cc.shape == (4, 16) and not np.array_equal(h, cc)
    with np.load(c.path) as z:
        assert {"state/h.0", "state/c.0", "state/h.1", "state/c.1"} <= set(z.files)
        assert {"param/W_x", "param/W_h", "param/b", "param/W_x.1", "param/W_h.1", "param/b.1"} <= set(z.files)


def test_lstm_checkpoint_without_cell_state_is_refused(lstm_dir, tmp_path):
    with np.load(os.path.join(lstm_dir, "latest.npz")) as z:
        arrays = {k: z[k] for k in z.files if k != "state/c.1"}
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(CheckpointError, match="state/c.1"):
        ckpt.load(str(bad))


def test_schedule_is_what_the_step_events_report(tmp_path):
    _, events = run(tmp_path, max_steps=20, lr=1e-2, lr_schedule="cosine", warmup_steps=5, eval_every=100,
                    save_every=100)
    lrs = [e["lr"] for e in events if e["kind"] == "step"]
    assert lrs[:5] == pytest.approx([2e-3, 4e-3, 6e-3, 8e-3, 1e-2])
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:]))  # then falling
    assert lrs[-1] < 1e-3


def test_patience_stops_after_that_many_validations_without_improvement(tmp_path, monkeypatch):
    losses = iter([2.0, 1.5, 1.6, 1.7, 1.8, 1.0])
    monkeypatch.setattr(training, "validation_loss", lambda model, ids: next(losses))
    result, events = run(tmp_path, max_steps=200, eval_every=10, patience=3)
    assert result.steps == 50 and result.best_val_loss == 1.5
    assert any("early stop" in e.get("message", "") for e in events if e["kind"] == "info")
    assert ckpt.load(result.best).meta["step"] == 20


def test_dropout_runs_are_reproducible_and_differ_from_no_dropout(tmp_path):
    a, _ = run(tmp_path, "a", dropout=0.3, max_steps=15)
    b, _ = run(tmp_path, "b", dropout=0.3, max_steps=15)
    c, _ = run(tmp_path, "c", dropout=0.0, max_steps=15)
    pa, pb, pc = (ckpt.load(r.latest).params["W_hh"] for r in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, pc)


@pytest.mark.parametrize("which", ["elman", "lstm"])
def test_fine_tuning_keeps_old_weights_and_old_loss(which, trained_ckpt, lstm_dir):
    old = ckpt.load(trained_ckpt if which == "elman" else os.path.join(lstm_dir, "latest.npz"))
    model, union, added = finetune.extend(old, Vocab.from_text(NEW_TEXT))
    assert sorted(added) == sorted(set(NEW_TEXT) - set(TINY_TEXT)) and "é" in added
    assert set(union.chars) == set(TINY_TEXT) | set(NEW_TEXT)
    where = np.array([union.index(ch) for ch in old.vocab.chars])
    first_in = "W_xh" if which == "elman" else "W_x"
    for name, a in old.params.items():
        b = model.params[name]
        if name == first_in:
            np.testing.assert_array_equal(b[where], a)
        elif name == "W_hy":
            np.testing.assert_array_equal(b[:, where], a)
        elif name == "b_y":
            np.testing.assert_array_equal(b[where], a)
        else:
            np.testing.assert_array_equal(b, a)
    before = score_ids(old.model(), old.vocab.encode(TINY_TEXT)).loss
    after = score_ids(model, union.encode(TINY_TEXT)).loss
    assert after == pytest.approx(before, rel=1e-6, abs=1e-6)


def test_train_init_from_extends_the_vocabulary_and_says_so(tmp_path, trained_ckpt):
    result, events = run(tmp_path, text=NEW_TEXT, init_from=trained_ckpt, hidden_size=32, max_steps=10)
    info = [e for e in events if e["kind"] == "info" and "added" in e]
    assert len(info) == 1 and "é" in info[0]["added"] and "keeping its hidden_size" in info[0]["message"]
    c = ckpt.load(result.latest)
    assert set(c.vocab.chars) == set(TINY_TEXT) | set(NEW_TEXT)
    assert c.config.hidden_size == 16 and c.config.init_from == trained_ckpt
    # Ten updates on the new text lower its loss from where fine-tuning started.
    start, union, _ = finetune.extend(ckpt.load(trained_ckpt), c.vocab)
    assert evaluate(c, NEW_TEXT).loss < score_ids(start, union.encode(NEW_TEXT)).loss


def test_cli_takes_the_new_flags_and_fine_tunes(tmp_path, tiny_corpus, trained_ckpt):
    new = tmp_path / "new.txt"
    new.write_text(NEW_TEXT, encoding="utf-8")
    flags = ["--hidden-size", "16", "--batch-size", "4", "--seq-len", "16", "--max-steps", "12",
             "--eval-every", "6", "--save-every", "6"]
    r = CliRunner().invoke(main, ["train", tiny_corpus, *flags, "--out", str(tmp_path / "g"), "--cell", "gru",
                                  "--layers", "2", "--dropout", "0.2", "--optimizer", "sgd", "--momentum", "0.8",
                                  "--lr", "0.5", "--weight-decay", "0.01", "--lr-schedule", "step",
                                  "--lr-decay-every", "5", "--warmup-steps", "2", "--clip-mode", "value",
                                  "--clip", "1", "--patience", "4"])
    assert r.exit_code == 0, r.output
    c = ckpt.load(str(tmp_path / "g" / "latest.npz")).config
    assert (c.cell, c.layers, c.optimizer, c.lr_schedule, c.clip_mode, c.patience) == ("gru", 2, "sgd", "step", "value", 4)
    r = CliRunner().invoke(main, ["train", str(new), *flags, "--out", str(tmp_path / "f"), "--init-from", trained_ckpt])
    assert r.exit_code == 0, r.output
    assert "added" in r.output and "'é'" in r.output
    r = CliRunner().invoke(main, ["train", str(new), *flags, "--out", str(tmp_path / "x"),
                                  "--init-from", str(tmp_path / "missing.npz")])
    assert r.exit_code == 1 and "missing.npz" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["train", str(new), "--cell", "rnn"])
    assert r.exit_code == 2


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_five_minute_configs_name_their_cell_and_budget(cell):
    from charrnn.config import resolve

    from conftest import CONFIGS

    c = resolve(os.path.join(CONFIGS, f"shakespeare-{cell}.yaml"))
    assert c.cell == cell and c.max_time == 300 and c.val_fraction == 0.05 and c.lr_schedule == "cosine"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_batched_sampling_per_line_scores_and_encoding_work_for_gated_cells(cell, lstm_dir, tmp_path):
    from charrnn.sampling import samples
    from charrnn.scoring import score_lines
    from charrnn.vectors import encode

    if cell == "lstm":
        c = ckpt.load(os.path.join(lstm_dir, "latest.npz"))
    else:
        c = ckpt.load(run(tmp_path, cell="gru", layers=2, max_steps=10)[0].latest)
    out = samples(c, num_samples=3, length=20, prime="ROMEO", seed=2)
    assert len(out) == 3 and all(len(s.text) >= 20 for s in out)
    one = "".join(sample(c, 20, prime="ROMEO", seed=2))  # sample i of the batch uses seed + i
    assert out[0].text in one or one in out[0].text
    vectors = encode(c, ["ROMEO.", "But soft", ""])
    assert vectors.shape == (3, 16) and np.all(vectors[2] == 0) and not np.all(vectors[0] == 0)
    lines = score_lines(c, "ROMEO.\nJULIET.\n")
    assert len(lines) == 2
    # A line's vector is its top-layer h after its last character, batched or alone.
    model = c.model()
    h, state = model.run(c.vocab.encode("ROMEO.").astype(np.intp)[:, None], model.zero_state(1))
    np.testing.assert_allclose(vectors[0], h[-1, 0], rtol=1e-5, atol=1e-6)
    assert isinstance(state[-1], tuple) == (cell == "lstm")
