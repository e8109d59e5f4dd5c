"""Exact resume: a run stopped after k updates and resumed ends bitwise where an unbroken run ends."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import checkpoint as ckpt
from charrnn.cli import main
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.optim import OPTIMIZERS
from charrnn.resume import RunState
from charrnn.training import Interrupted, train

from conftest import TINY_FLAGS, TINY_TEXT, sha, tiny_config

N = 40  # the tiny corpus has 32 chunks per epoch, so N crosses an epoch boundary
CHUNKS_PER_EPOCH = 32
STOPS = (5, 31, CHUNKS_PER_EPOCH, 33)  # inside the first epoch, at its boundary, just after


def cfg(**changes):
    base = dict(max_steps=N, eval_every=7, save_every=5)
    base.update(changes)
    return tiny_config(**base)


def arrays_of(path):
    ck = ckpt.load(path)
    out = {f"param/{k}": v for k, v in ck.params.items()}
    out.update({f"optim/{k}": np.asarray(v) for k, v in ck.optim.items()})
    for i, s in enumerate(ck.state):  # h, or (h, c) for an LSTM
        out.update({f"state/{i}.{j}": a for j, a in enumerate(s if isinstance(s, tuple) else (s,))})
    return out, ck


def assert_same_run(dir_a, dir_b):
    a, ck_a = arrays_of(os.path.join(dir_a, "latest.npz"))
    b, ck_b = arrays_of(os.path.join(dir_b, "latest.npz"))
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), f"{k} differs"
    assert np.array_equal(ck_a.history["train_loss"], ck_b.history["train_loss"])
    assert ck_a.meta["step"] == ck_b.meta["step"] and ck_a.meta["chunk"] == ck_b.meta["chunk"]




@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One unbroken N-step run per optimizer."""
    runs = {}
    for name in OPTIMIZERS:
        out = str(tmp_path_factory.mktemp(f"straight-{name}"))
        runs[name] = (out, train(cfg(optimizer=name), text=TINY_TEXT, out=out))
    return runs


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_stop_at_k_and_resume_is_bitwise_identical(tmp_path, straight, optimizer):
    ref_dir, ref = straight[optimizer]
    assert ref.steps == N and len(ref.losses) == N
    for k in STOPS:
        out = str(tmp_path / f"k{k}")
        first = train(cfg(optimizer=optimizer, max_steps=k), text=TINY_TEXT, out=out)
        assert first.steps == k
        result = train(cfg(optimizer=optimizer), text=TINY_TEXT, out=out, resume=True)
        assert result.steps == N
        assert result.losses == ref.losses, f"loss history differs after a stop at {k}"
        # The stop adds a validation at k; every validation both runs made agrees.
        ref_val = dict(ref.val_history)
        common = [s for s, _ in result.val_history if s in ref_val]
        assert len(common) >= len(ref_val) and all(dict(result.val_history)[s] == ref_val[s] for s in common)
        assert_same_run(ref_dir, out)


@pytest.mark.parametrize("model", [
    dict(cell="lstm", layers=2, dropout=0.3),
    dict(cell="gru", layers=2, dropout=0.3, lr_schedule="cosine", warmup_steps=5),
    dict(cell="elman", layers=2, dropout=0.2, optimizer="sgd", lr_schedule="step", lr_decay_every=9,
         weight_decay=0.01, clip_mode="value", clip=0.5),
    dict(cell="lstm", tbptt_stride=5),
], ids=["lstm-dropout", "gru-dropout-cosine", "elman-dropout-sgd-step-decay-clipvalue", "lstm-tbptt-k1-5-k2-16"])
def test_resume_is_exact_for_every_cell_with_dropout_and_schedules(tmp_path, model):
    """Dropout draws masks from a generator whose state the checkpoint carries; the LSTM
    carries (h, c); schedules follow the restored step. The stop is a Ctrl-C, so the
    interrupted command is the same (a cosine schedule depends on --max-steps)."""
    ref_dir = str(tmp_path / "straight")
    ref = train(cfg(**model), text=TINY_TEXT, out=ref_dir)
    for k in (7, CHUNKS_PER_EPOCH):
        out = str(tmp_path / f"k{k}")
        with pytest.raises(Interrupted):
            train(cfg(**model), text=TINY_TEXT, out=out, callback=ctrl_c_at(k))
        result = train(cfg(**model), text=TINY_TEXT, out=out, resume=True)
        assert result.losses == ref.losses, f"loss history differs after a stop at {k}"
        assert_same_run(ref_dir, out)


def test_early_stopping_is_the_same_with_a_stop_and_resume(tmp_path, monkeypatch):
    """The validation a stop adds must not count towards --patience."""
    from charrnn import training

    # A validation loss that depends only on the weights, and goes up and down.
    monkeypatch.setattr(training, "validation_loss", lambda model, ids: float(np.sin(1e3 * model.params["b_y"].sum())))
    config = cfg(max_steps=200, eval_every=3, patience=2)
    ref_dir = str(tmp_path / "straight")
    ref = train(config, text=TINY_TEXT, out=ref_dir)
    assert 6 <= ref.steps < 200  # it did stop early
    for k in (4, ref.steps - 1):
        out = str(tmp_path / f"k{k}")
        train(config.replace(max_steps=k), text=TINY_TEXT, out=out)
        result = train(config, text=TINY_TEXT, out=out, resume=True)
        assert result.steps == ref.steps and result.losses == ref.losses
        assert_same_run(ref_dir, out)


def test_a_fine_tuned_run_resumes_exactly(tmp_path):
    """--init-from widens the vocabulary; a resume continues in the run's vocabulary."""
    base = str(tmp_path / "base")
    train(cfg(max_steps=5), text=TINY_TEXT.replace("R", "r"), out=base)  # knows no 'R'
    config = cfg(init_from=os.path.join(base, "latest.npz"))
    ref_dir = str(tmp_path / "straight")
    ref = train(config, text=TINY_TEXT, out=ref_dir)
    out = str(tmp_path / "k")
    train(config.replace(max_steps=11), text=TINY_TEXT, out=out)
    result = train(config, text=TINY_TEXT, out=out, resume=True)
    assert result.losses == ref.losses
    assert_same_run(ref_dir, out)


def test_resume_twice_in_a_row_is_still_exact(tmp_path, straight):
    ref_dir, ref = straight["adam"]
    out = str(tmp_path / "r")
    for k in (3, 17, 32):
        train(cfg(max_steps=k), text=TINY_TEXT, out=out, resume=k != 3)
    result = train(cfg(), text=TINY_TEXT, out=out, resume=True)
    assert result.losses == ref.losses
    assert_same_run(ref_dir, out)


def ctrl_c_at(k):
    def callback(event):
        if event["kind"] == "step" and event["step"] == k:
            os.kill(os.getpid(), signal.SIGINT)
    return callback


def test_sigint_stops_saves_and_resumes_exactly(tmp_path, straight):
    """The stop is a real SIGINT in the middle of the run, as a Ctrl-C would be."""
    ref_dir, ref = straight["adam"]
    out = str(tmp_path / "r")

    def ctrl_c_at_12(event):
        if event["kind"] == "step" and event["step"] == 12:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as info:
        train(cfg(), text=TINY_TEXT, out=out, callback=ctrl_c_at_12)
    assert info.value.exit_code == 130 and info.value.path == os.path.join(out, "latest.npz")
    assert ckpt.load(info.value.path).meta["step"] == 12
    result = train(cfg(), text=TINY_TEXT, out=out, resume=True)
    assert result.losses == ref.losses
    assert_same_run(ref_dir, out)


def test_validation_and_checkpoint_cadence_do_not_change_the_trajectory(tmp_path):
    runs = []
    for eval_every, save_every in ((1, 1), (7, 3), (1000, 1000)):
        out = str(tmp_path / f"e{eval_every}s{save_every}")
        runs.append((out, train(cfg(eval_every=eval_every, save_every=save_every), text=TINY_TEXT, out=out)))
    assert len(runs[0][1].val_history) == N and len(runs[2][1].val_history) == 1
    for out, result in runs[1:]:
        assert result.losses == runs[0][1].losses
        assert_same_run(runs[0][0], out)


def test_resume_refuses_another_corpus_naming_it(tmp_path):
    out = str(tmp_path / "r")
    train(cfg(max_steps=5), text=TINY_TEXT, out=out)
    before = sha(os.path.join(out, "latest.npz"))
    with pytest.raises(CharRNNError, match="the corpus differs"):
        train(cfg(), text=TINY_TEXT.replace("Romeo", "Tybalt"), out=out, resume=True)
    assert sha(os.path.join(out, "latest.npz")) == before


@pytest.mark.parametrize("change, named", [
    (dict(hidden_size=8), "hidden_size is 16 there but 8 here"),
    (dict(batch_size=2), "batch_size is 4 there but 2 here"),
    (dict(optimizer="adagrad"), "optimizer is 'adam' there but 'adagrad' here"),
    (dict(activation="relu"), "activation is 'tanh' there but 'relu' here"),
    (dict(dtype="float64"), "dtype is 'float32' there but 'float64' here"),
])
def test_resume_refuses_another_model_or_setup_naming_the_field(tmp_path, change, named):
    out = str(tmp_path / "r")
    train(cfg(max_steps=5), text=TINY_TEXT, out=out)
    with pytest.raises(CharRNNError, match=named):
        train(cfg(**change), text=TINY_TEXT, out=out, resume=True)


def test_resume_may_change_limits_and_learning_rate(tmp_path):
    out = str(tmp_path / "r")
    train(cfg(max_steps=5), text=TINY_TEXT, out=out)
    result = train(cfg(max_steps=8, lr=1e-3, eval_every=2, save_every=1), text=TINY_TEXT, out=out, resume=True)
    assert result.steps == 8 and len(result.losses) == 8
    assert ckpt.load(result.latest).config.lr == 1e-3


def test_resume_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume: no latest.npz"):
        train(cfg(), text=TINY_TEXT, out=str(tmp_path / "empty"), resume=True)


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    out = str(tmp_path / "r")
    train(cfg(max_steps=6), text=TINY_TEXT, out=out)
    before = {n: sha(os.path.join(out, n)) for n in ("latest.npz", "best.npz")}
    events = []
    result = train(cfg(max_steps=6), text=TINY_TEXT, out=out, resume=True, callback=events.append)
    assert result.steps == 6 and not [e for e in events if e["kind"] == "step"]
    assert any("already finished at step 6" in e.get("message", "") for e in events)
    assert {n: sha(os.path.join(out, n)) for n in before} == before


def test_max_time_counts_the_whole_run(tmp_path):
    out = str(tmp_path / "r")
    train(cfg(max_steps=4), text=TINY_TEXT, out=out)
    elapsed = ckpt.load(os.path.join(out, "latest.npz")).meta["elapsed"]
    assert elapsed > 0
    # A time budget the run has already spent: the resumed run does no update.
    result = train(cfg(max_steps=None, max_time=elapsed / 2), text=TINY_TEXT, out=out, resume=True)
    assert result.steps == 4 and result.seconds == elapsed


def test_a_best_checkpoint_newer_than_latest_is_not_replaced(tmp_path):
    """A crash between saving best.npz and latest.npz leaves best newer than latest."""
    out = str(tmp_path / "r")
    saved = str(tmp_path / "latest-at-10.npz")

    def keep_step_10(event):
        if event["kind"] == "save" and event["path"].endswith("latest.npz") and event["step"] == 10:
            shutil.copy(event["path"], saved)

    train(cfg(max_steps=15, eval_every=5, save_every=10), text=TINY_TEXT, out=out, callback=keep_step_10)
    best = os.path.join(out, "best.npz")
    assert ckpt.load(best).meta["step"] == 15
    before = sha(best)
    shutil.copy(saved, os.path.join(out, "latest.npz"))  # as if killed before latest.npz at 15
    train(cfg(max_steps=15, eval_every=5, save_every=10), text=TINY_TEXT, out=out, resume=True)
    assert sha(best) == before


def test_random_generators_are_restored(trained_dir):
    """Every generator training registers (dropout masks, ...) continues its exact stream."""
    ck = ckpt.load(os.path.join(trained_dir, "latest.npz"))
    from charrnn.model import Model

    gen = np.random.default_rng(123)
    gen.random(17)
    expected = np.random.default_rng(123)
    expected.random(17)
    saved_meta, _ = RunState(rngs={"dropout": gen}).export()
    ck.meta = {**ck.meta, "rng": json.loads(json.dumps(saved_meta["rng"]))}  # as stored
    config = ck.config
    model = Model.from_config(config, len(ck.vocab)).init(0)
    from charrnn import optim

    fresh = RunState(rngs={"dropout": np.random.default_rng(999)})
    fresh.restore(ck, config, model, optim.make(config.optimizer, model.params, config.lr), 32)
    assert np.array_equal(fresh.rngs["dropout"].random(5), expected.random(5))
    other = RunState(rngs={"shuffle": np.random.default_rng(0)})
    with pytest.raises(CheckpointError, match="random generators"):
        other.restore(ck, config, model, optim.make(config.optimizer, model.params, config.lr), 32)


# -- the command line ---------------------------------------------------------------------

FLAGS = [*TINY_FLAGS, "--lr", "0.01", "--eval-every", "7", "--save-every", "5", "--seed", "0", "-q"]


def test_cli_resume_repeats_the_interrupted_command(tmp_path, tiny_corpus, straight):
    ref_dir, _ = straight["adam"]
    runner = CliRunner()
    out = str(tmp_path / "run")
    r = runner.invoke(main, ["train", tiny_corpus, "--out", out, "--max-steps", "9", *FLAGS])
    assert r.exit_code == 0, r.output
    # Same command plus --resume, with a larger limit; the config comes from the checkpoint.
    r = runner.invoke(main, ["train", tiny_corpus, "--max-steps", str(N), "-q", "--resume", out])
    assert r.exit_code == 0, r.output
    assert_same_run(ref_dir, out)


def test_cli_sigterm_then_resume_subprocess(tmp_path, tiny_corpus):
    """A real process, stopped by SIGTERM while training, resumed by the installed command."""
    exe = os.path.join(os.path.dirname(sys.executable), "charrnn")
    out = str(tmp_path / "run")
    args = [exe, "train", tiny_corpus, "--out", out, *FLAGS[:-1]]
    # Not quiet: validation lines on stderr tell us training is under way.
    proc = subprocess.Popen(args + ["--eval-every", "1", "--max-steps", "1000000"],
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("step 3:"):
            break
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 143
    assert f"interrupted by SIGTERM; saved {out}/latest.npz" in err and "Traceback" not in err
    step = ckpt.load(os.path.join(out, "latest.npz")).meta["step"]
    assert step >= 3
    total = step + 9
    done = subprocess.run([exe, "train", tiny_corpus, "--resume", out, "--max-steps", str(total), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ref = str(tmp_path / "ref")
    train(cfg(max_steps=total), text=TINY_TEXT, out=ref)
    assert_same_run(ref, out)


def test_a_checkpoint_from_before_exact_resume_loads_but_is_not_resumed(tmp_path):
    """The first 0.1.0 layout (optim_t in meta, no history) still samples; resuming it says why not."""
    out = tmp_path / "old"
    train(cfg(max_steps=5), text=TINY_TEXT, out=str(out))
    path = str(out / "latest.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("history/")}
    meta = json.loads(str(arrays["meta"]))
    meta["optim_t"] = meta.pop("optim")["t"]
    for key in ("chunk", "elapsed", "rng"):
        meta.pop(key)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    old = ckpt.load(path)
    assert old.optim["t"] == 5
    with pytest.raises(CheckpointError, match="written by an earlier charrnn"):
        train(cfg(), text=TINY_TEXT, out=str(out), resume=True)
