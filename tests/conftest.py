"""Shared fixtures and helpers: small texts, a small trained checkpoint and the "hello" model
(each made once per session), the CLI runner, file digests, and the small-model flags."""
from __future__ import annotations

import hashlib
import os
import signal

import pytest
from click.testing import CliRunner

from charrnn.cli import main
from charrnn.config import Config, resolve
from charrnn.training import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "data")
CONFIGS = os.path.join(REPO, "configs")

TINY_TEXT = (
    "ROMEO.\nBut soft, what light through yonder window breaks?\n"
    "JULIET.\nO Romeo, Romeo, wherefore art thou Romeo?\n"
) * 20


@pytest.fixture(autouse=True)
def _no_charrnn_environment(monkeypatch):
    """Each test starts without the user's CHARRNN_* variables: the README has a user export
    CHARRNN_CHECKPOINT before `make test`, and every CLI option reads CHARRNN_<COMMAND>_<OPTION>;
    tests that want one set it themselves."""
    for name in [n for n in os.environ if n.startswith("CHARRNN_")]:
        monkeypatch.delenv(name)


# The command-line twin of tiny_config's model size; tests add their own limits and cadences.
TINY_FLAGS = ["--hidden-size", "16", "--batch-size", "4", "--seq-len", "16"]


def run_on_terminal(cmd, stream="stdout", columns=None, **kwargs):
    """Run cmd with its `stream` ("stdout" or "stderr") on a pseudo-terminal, optionally `columns`
    wide; returns the finished process and every byte the terminal received."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        proc = subprocess.run(cmd, **{stream: slave}, timeout=60, **kwargs)
        os.set_blocking(master, False)
        received = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(master)
        os.close(slave)
    return proc, received


def invoke(*args, input=None, env=None):
    """`charrnn ARGS...` in-process (click's runner); arguments may be paths or numbers."""
    return CliRunner().invoke(main, [str(a) for a in args], input=input, env=env)


def sha(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def digests(directory) -> dict:
    """name -> sha256 of every file in a directory."""
    return {name: sha(os.path.join(directory, name)) for name in sorted(os.listdir(directory))}


def run(tmp_path, name="out", text=TINY_TEXT, **changes):
    """Train tiny_config(**changes) on `text` into tmp_path/name: (result, every event)."""
    events = []
    result = train(tiny_config(**changes), text=text, out=str(tmp_path / name), callback=events.append)
    return result, events


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


@pytest.fixture(scope="session")
def hello_dir(tmp_path_factory) -> str:
    """The textbook "hello" model: configs/hello.yaml trained on data/hello.txt, in latest.npz."""
    out = tmp_path_factory.mktemp("hello") / "hello"
    train(resolve(os.path.join(CONFIGS, "hello.yaml")), os.path.join(DATA, "hello.txt"), out=str(out))
    return str(out)


def sigint_default() -> None:
    """preexec_fn for a child that must get a Ctrl-C even when this test run ignores SIGINT (a
    non-interactive shell's background job starts so, and a child inherits it; Python then keeps
    SIGINT ignored, and `sample` and `serve` would never see the test's SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
