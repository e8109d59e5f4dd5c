"""Training reports the global gradient norm and how often clipping fired."""
from __future__ import annotations

import io

import pytest

from charrnn.progress import Progress
from charrnn.training import train

from conftest import tiny_config


@pytest.mark.parametrize("clip", [0.05, 1e9])
def test_step_events_carry_grad_norm_and_clip_fraction(tiny_text, tmp_path, clip):
    events = []
    train(tiny_config(max_steps=12, clip=clip), text=tiny_text, out=str(tmp_path / "c"), callback=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    assert len(steps) == 12
    clipped = 0
    for i, e in enumerate(steps, 1):
        assert e["grad_norm"] > 0
        assert e["clipped"] == (e["grad_norm"] > clip)
        clipped += e["clipped"]
        assert e["clip_fraction"] == pytest.approx(clipped / i)
    assert steps[-1]["clip_fraction"] == (1.0 if clip < 1 else 0.0)


def test_log_lines_off_a_terminal_say_how_often_clipping_fired(tiny_text, tmp_path):
    stream = io.StringIO()  # not a tty: one line per validation instead of a bar
    train(tiny_config(max_steps=20, eval_every=10, clip=0.05), text=tiny_text, out=str(tmp_path / "c"),
          callback=Progress(stream=stream))
    lines = [l for l in stream.getvalue().splitlines() if l.startswith("step")]
    assert lines and all("100% of updates clipped" in l for l in lines)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_shows_gradient_norm_and_clip_rate(tiny_text, tmp_path):
    stream = _Terminal()
    progress = Progress(stream=stream)
    train(tiny_config(max_steps=5, clip=0.05), text=tiny_text, out=str(tmp_path / "c"), callback=progress)
    progress.close()
    last = stream.getvalue().split("\r")[-1]
    assert "clipped=100%" in last and "|g|=" in last
