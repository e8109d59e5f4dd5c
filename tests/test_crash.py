"""kill -9 at random moments, some of them in the middle of a save: nothing is lost.

A real `charrnn train` process writes a checkpoint every update; the test SIGKILLs it, then
checks that latest.npz loads, best.npz holds the best model seen, and `--resume` carries
on. After all the kills, the resumed run finishes with bitwise the weights of a run that
was never interrupted.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from charrnn import checkpoint as ckpt
from charrnn.data import split
from charrnn.training import train, validation_loss

from conftest import TINY_FLAGS, TINY_TEXT, tiny_config

KILLS = 12
FOREVER = 10**9  # the killed processes never reach their limit; the last resume sets the real one
FLAGS = [*TINY_FLAGS, "--lr", "0.01", "--seed", "0", "--eval-every", "3", "-q"]


def _wait_for_tmp(out: str, proc, timeout: float, old=()) -> bool:
    """Busy-wait until a new save's temporary file exists (a save is under way)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            if any(n.startswith(ckpt.TMP_PREFIX) and n not in old for n in os.listdir(out)):
                return True
        except FileNotFoundError:
            pass
    return False


def test_kill_9_at_random_moments_loses_nothing(tmp_path, tiny_corpus):
    exe = os.path.join(os.path.dirname(sys.executable), "charrnn")
    out = str(tmp_path / "run")
    rng = random.Random(5)
    args = [exe, "train", tiny_corpus, "--out", out, "--max-steps", str(FOREVER), "--save-every", "1", *FLAGS]
    steps_seen, during_save, stale_left = [], 0, 0
    for trial in range(KILLS):
        resume = trial > 0
        # The previous kill may have left a temporary file; the resumed run cleans it up.
        stale_before = [n for n in os.listdir(out) if n.startswith(ckpt.TMP_PREFIX)] if resume else []
        proc = subprocess.Popen(args + (["--resume"] if resume else []), stderr=subprocess.PIPE)
        try:
            # Wait for this process's first save: it started, cleaned up and is training.
            assert _wait_for_tmp(out, proc, timeout=60, old=stale_before), proc.stderr.read().decode()
            time.sleep(rng.uniform(0.05, 0.4))
            if trial % 2:  # odd trials: kill as soon as a save is seen in progress
                during_save += _wait_for_tmp(out, proc, timeout=5.0)
            assert proc.poll() is None, proc.stderr.read().decode()  # still training: --resume worked
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        stale_left += any(n.startswith(ckpt.TMP_PREFIX) for n in os.listdir(out))
        if resume:
            assert not set(stale_before) & set(os.listdir(out))  # cleaned, not piled up

        latest = ckpt.load(os.path.join(out, "latest.npz"))  # raises if damaged
        step = latest.meta["step"]
        assert len(latest.history["train_loss"]) == step
        steps_seen.append(step)
        best = ckpt.load(os.path.join(out, "best.npz"))
        vals = latest.history["val_loss"][:, 1]
        # best.npz may be one validation newer than latest.npz (killed between the two
        # saves), never older: it holds the lowest validation loss seen so far.
        assert best.meta["val_loss"] <= vals.min() + 0.0
        assert best.meta["step"] >= latest.history["val_loss"][vals.argmin(), 0]

    assert steps_seen == sorted(steps_seen) and steps_seen[-1] > steps_seen[0], steps_seen
    assert during_save >= KILLS // 4, f"only {during_save} kills landed during a save"

    # Finish the run 50 updates on (limits and checkpoint cadence may change on resume; the
    # trajectory does not), and train the same number of updates without a break.
    total = steps_seen[-1] + 50
    done = subprocess.run(args[:-1] + ["--max-steps", str(total), "--save-every", "1000", "--resume"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not [n for n in os.listdir(out) if n.startswith(ckpt.TMP_PREFIX)]
    ref_dir = str(tmp_path / "ref")
    config = tiny_config(max_steps=total, eval_every=3, save_every=1000)
    train(config, text=TINY_TEXT, out=ref_dir)
    got, want = ckpt.load(os.path.join(out, "latest.npz")), ckpt.load(os.path.join(ref_dir, "latest.npz"))
    for k in want.params:
        assert np.array_equal(got.params[k], want.params[k]), k
    for k in want.optim:
        assert np.array_equal(got.optim[k], want.optim[k]), k
    assert np.array_equal(got.history["train_loss"], want.history["train_loss"])

    # The metrics file kept its rows up to each resume point and appended after them:
    # the same rows, step for step, as the uninterrupted run's, none twice.
    from charrnn.metrics import read

    rows, ref_rows = read(out), read(ref_dir)
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    assert [r["val_loss"] for r in rows] == [r["val_loss"] for r in ref_rows]

    # best.npz is the best model of the whole run, and it really is that model.
    best = ckpt.load(os.path.join(out, "best.npz"))
    assert best.meta["val_loss"] == want.history["val_loss"][:, 1].min()
    val_ids = split(best.vocab.encode(TINY_TEXT), config.val_fraction, config.batch_size, config.seq_len).val
    assert validation_loss(best.model(), val_ids) == best.meta["val_loss"]
    print(f"{KILLS} kills, {during_save} during a save, {stale_left} left a temporary file, "
          f"steps at the kills: {steps_seen}")


def test_a_failed_write_is_one_error_and_keeps_the_previous_file(tmp_path, monkeypatch):
    """A full disk mid-save: CheckpointError naming the file, the old checkpoint intact, no temp file."""
    from charrnn.errors import CheckpointError

    out = str(tmp_path / "run")
    train(tiny_config(max_steps=4, save_every=2), text=TINY_TEXT, out=out)
    latest = os.path.join(out, "latest.npz")
    before = open(latest, "rb").read()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(CheckpointError, match=r"cannot write .*latest.npz: No space left on device; the previous file is kept"):
        train(tiny_config(max_steps=8, save_every=2), text=TINY_TEXT, out=out, resume=True)
    assert open(latest, "rb").read() == before
    assert not [n for n in os.listdir(out) if n.startswith(ckpt.TMP_PREFIX)]


def test_a_second_ctrl_c_during_a_save_keeps_the_previous_file(tmp_path, monkeypatch):
    """The first Ctrl-C asks for a clean stop; a second one aborts at once, even mid-save."""
    out = str(tmp_path / "run")
    train(tiny_config(max_steps=4, save_every=2), text=TINY_TEXT, out=out)
    latest = os.path.join(out, "latest.npz")
    before = open(latest, "rb").read()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(max_steps=8, save_every=2), text=TINY_TEXT, out=out, resume=True)
    assert open(latest, "rb").read() == before
    assert not [n for n in os.listdir(out) if n.startswith(ckpt.TMP_PREFIX)]


def test_the_cli_turns_an_abort_into_exit_130_without_a_traceback(tiny_corpus, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from charrnn import training
    from charrnn.cli import main

    def abort(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training.Run, "train", abort)
    result = CliRunner().invoke(main, ["train", tiny_corpus, "--out", str(tmp_path / "run")])
    assert result.exit_code == 130
    assert result.stderr.strip() == "charrnn: interrupted"


def test_metrics_rows_reach_the_disk_before_their_checkpoint(tmp_path, monkeypatch):
    """So a kill between the two can leave rows past latest.npz (a resume drops them), never a
    latest.npz past its rows (their loss would be missing from metrics.jsonl for good)."""
    from charrnn.metrics import read

    out = str(tmp_path / "run")
    real_save, seen = ckpt.save, []

    def checking_save(path, params, vocab, meta, *args, **kwargs):
        if path.endswith("latest.npz"):
            seen.append(meta["step"])
            assert read(out)[-1]["step"] == meta["step"]
        return real_save(path, params, vocab, meta, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save", checking_save)
    train(tiny_config(max_steps=9, save_every=3, eval_every=2, log_every=1), text=TINY_TEXT, out=out)
    assert seen == [3, 6, 9]
