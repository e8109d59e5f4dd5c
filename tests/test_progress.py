"""The progress bar measures the run against whichever limit ends it first, with the time left."""
from __future__ import annotations

import io

import pytest

from charrnn.progress import Limits, Progress


def test_steps_bound_the_run_when_they_end_first():
    limits = Limits(max_steps=1000, max_time=100.0)
    limits.left(0, 0.0)  # the speed's origin
    # 10 s for 500 steps: 500 more take 10 s, well before the 100 s limit.
    assert limits.fraction(500, 10.0) == 0.5
    assert limits.left(500, 10.0) == pytest.approx(10.0)
    assert limits.describe(500, 10.0) == "step 500/1000 [00:10<00:10]"


def test_time_bounds_the_run_when_it_ends_first():
    limits = Limits(max_steps=100_000, max_time=25.0)
    limits.left(0, 0.0)
    assert limits.fraction(577, 11.0) == pytest.approx(0.44)
    assert limits.left(577, 11.0) == pytest.approx(14.0)
    assert Limits(max_time=25.0).describe(577, 11.0) == "step 577 [00:11<00:14]"


def test_a_resumed_session_measures_its_own_speed():
    limits = Limits(max_steps=200)
    limits.left(100, 50.0)  # resumed at step 100, 50 s into the run
    assert limits.fraction(150, 55.0) == 0.75
    assert limits.left(150, 55.0) == pytest.approx(5.0)  # 10 steps/s from the resume on, not the whole run's


def test_the_speed_is_unknown_before_the_second_update():
    assert Limits(max_steps=10).describe(1, 0.1) == "step 1/10 [00:00<?]"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def step(n, elapsed):
    return {"kind": "step", "step": n, "elapsed": elapsed, "loss": 2.0, "chars_per_sec": 1000.0,
            "grad_norm": 0.5, "clip_fraction": 0.0}


def test_the_bar_shows_percent_steps_and_time_left():
    term = Terminal()
    progress = Progress(stream=term, max_time=10.0)
    progress({"kind": "start", "params": 10, "vocab_size": 3, "train_chars": 100, "val_chars": 0, "max_steps": None})
    progress.bar.mininterval = 0
    for n in range(1, 5):
        progress(step(n, n * 2.0))
    progress.close()
    last = term.getvalue().split("\r")[-1]
    assert last.startswith(" 80%|") and "step 4 [00:08<00:02]" in last and "loss=2.000" in last


def test_off_a_terminal_each_validation_line_says_how_far_the_run_is():
    out = io.StringIO()
    progress = Progress(stream=out)
    progress({"kind": "start", "params": 10, "vocab_size": 3, "train_chars": 100, "val_chars": 10, "max_steps": 40})
    progress(step(1, 1.0))
    progress(step(20, 20.0))
    progress({"kind": "eval", "step": 20, "val_loss": 1.5, "best": True})
    assert progress.bar.disable
    assert "step 20: val loss 1.5000 (best), 0% of updates clipped; 50% done, 00:20 left" in out.getvalue()
