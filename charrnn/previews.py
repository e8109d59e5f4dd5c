"""Samples while training: `--sample-every N` draws a short sample from the current weights.

The sample comes from a model of its own over the run's parameters (read, never written),
from a zero state, with a generator seeded by the run's seed: the run's carried state,
random generators and parameters are untouched, so a run is bitwise the same with or
without samples, and the samples of one run differ only by its weights.
"""
from __future__ import annotations


def attach(run) -> None:
    """Emit {"kind": "sample", "step", "text"} every run.config.sample_every updates."""
    every = run.config.sample_every
    if not every:
        return

    def show(r):
        if r.state.step % every == 0:
            r.emit({"kind": "sample", "step": r.state.step, "text": preview(r.model, r.vocab, r.config)})

    run.after_step.append(show)


def preview(model, vocab, config) -> str:
    """config.sample_length characters at config.sample_temp, seeded with config.seed."""
    from .checkpoint import Checkpoint
    from .sampling import samples

    view = Checkpoint(params=model.params, vocab=vocab, meta={"config": config.to_dict()})
    return samples(view, 1, config.sample_length, config.sample_temp, seed=config.seed, logprobs=False)[0].text
