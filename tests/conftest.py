"""Shared fixtures: small texts and a small trained checkpoint, made once per session."""
from __future__ import annotations

import os

import pytest

from charrnn.config import Config
from charrnn.training import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "data")
CONFIGS = os.path.join(REPO, "configs")

TINY_TEXT = (
    "ROMEO.\nBut soft, what light through yonder window breaks?\n"
    "JULIET.\nO Romeo, Romeo, wherefore art thou Romeo?\n"
) * 20


def tiny_config(**changes) -> Config:
    base = dict(hidden_size=16, batch_size=4, seq_len=16, lr=1e-2, max_steps=60,
                eval_every=20, save_every=20, seed=0)
    base.update(changes)
    return Config(**base)


@pytest.fixture(scope="session")
def tiny_text() -> str:
    return TINY_TEXT


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory, tiny_corpus) -> str:
    """A checkpoint directory with latest.npz and best.npz from a short run on tiny text."""
    out = tmp_path_factory.mktemp("ckpt") / "checkpoints"
    train(tiny_config(), tiny_corpus, out=str(out))
    return str(out)


@pytest.fixture(scope="session")
def trained_ckpt(trained_dir) -> str:
    return os.path.join(trained_dir, "best.npz")
