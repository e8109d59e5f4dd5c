"""charrnn in shell pipelines: real subprocesses, real pipes, stdin, exit statuses."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys

from conftest import sigint_default

CHARRNN = os.path.join(os.path.dirname(sys.executable), "charrnn")


def sh(script: str, cwd=None, env=None, input=None, timeout=60) -> subprocess.CompletedProcess:
    """Run a bash pipeline; `$C` is the installed charrnn script."""
    full_env = {**os.environ, "C": CHARRNN, **(env or {})}
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=full_env, input=input,
                          capture_output=True, text=True, timeout=timeout)


def test_sample_into_head_ends_at_once_with_status_0(trained_ckpt):
    # 100000 characters would take seconds; head closes the pipe after 100 bytes.
    r = sh(f'"$C" sample --checkpoint {shlex.quote(trained_ckpt)} --length 100000 --seed 1 | head -c 100; '
           'echo "status ${PIPESTATUS[0]}" >&2')
    assert len(r.stdout.encode()) == 100
    assert r.stderr.strip() == "status 0"  # and nothing else: no traceback, no 'Broken pipe'


def test_eval_per_line_into_head_exits_0(trained_ckpt, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("O Romeo, Romeo\n" * 3000)  # far more output than a pipe buffers
    r = sh(f'"$C" eval --per-line {big} --checkpoint {shlex.quote(trained_ckpt)} | head -n 2; '
           'echo "status ${PIPESTATUS[0]}" >&2')
    assert len(r.stdout.splitlines()) == 2
    assert r.stderr.strip() == "status 0"


def test_sample_streams_before_it_ends(trained_ckpt):
    # Like `charrnn sample | tee out.txt`: the first line arrives while generation goes on.
    proc = subprocess.Popen([CHARRNN, "sample", "--checkpoint", trained_ckpt, "--length", "100000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_default)
    try:
        first = os.read(proc.stdout.fileno(), 100)  # whatever has been flushed, line or not
        assert first  # text came through the pipe...
        assert proc.poll() is None  # ...while 10^8 characters were still to come
    finally:
        proc.kill()
        proc.wait()


def test_sample_sigint_exits_130(trained_ckpt):
    proc = subprocess.Popen([CHARRNN, "sample", "--checkpoint", trained_ckpt, "--length", "100000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_default)
    try:
        os.read(proc.stdout.fileno(), 1)  # running, past start-up
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in err
    assert err.strip() == b"charrnn: interrupted"


def test_train_reads_stdin_and_several_files(tmp_path, tiny_text):
    (tmp_path / "a.txt").write_text(tiny_text[:1000])
    (tmp_path / "b.txt").write_text(tiny_text[1000:])
    flags = "--hidden-size 8 --batch-size 2 --seq-len 8 --max-steps 3 --seed 0"
    r1 = sh(f'cat a.txt b.txt | "$C" train - --out s {flags}', cwd=tmp_path)
    r2 = sh(f'"$C" train a.txt b.txt --out f {flags}', cwd=tmp_path)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert r1.stdout == "" and r2.stdout == ""  # training prints no data
    # The same text either way: same corpus hash, same weights.
    from charrnn.checkpoint import load

    a, b = load(str(tmp_path / "s/latest.npz")), load(str(tmp_path / "f/latest.npz"))
    assert a.meta["corpus_sha256"] == b.meta["corpus_sha256"]
    assert all((a.params[k] == b.params[k]).all() for k in a.params)


def test_no_progress_bar_off_a_terminal_and_quiet_is_silent(tmp_path, tiny_corpus):
    flags = "--hidden-size 8 --batch-size 2 --seq-len 8 --max-steps 40 --eval-every 20"
    r = sh(f'"$C" train {tiny_corpus} --out a {flags}', cwd=tmp_path)
    assert r.returncode == 0
    assert "\r" not in r.stderr and "step/s" not in r.stderr and "it/s" not in r.stderr  # no tqdm bar
    assert "step 20: val loss" in r.stderr and r.stderr.rstrip().splitlines()[-1].startswith("done:")
    q = sh(f'"$C" train {tiny_corpus} --out b --quiet {flags}', cwd=tmp_path)
    assert q.returncode == 0 and q.stderr == "" and q.stdout == ""


def test_prime_and_eval_from_stdin(trained_ckpt):
    r = sh(f'printf "ROMEO." | "$C" sample --prime - --length 20 --seed 3 --checkpoint {shlex.quote(trained_ckpt)}')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ROMEO.") and len(r.stdout) == len("ROMEO.") + 20 + 1
    e = sh(f'printf "JULIET.\\nO Romeo\\n" | "$C" eval - --json --checkpoint {shlex.quote(trained_ckpt)}')
    assert e.returncode == 0, e.stderr
    assert json.loads(e.stdout)["predictions"] == len("JULIET.\nO Romeo\n") - 1


def test_options_from_the_environment(trained_ckpt, tmp_path):
    env = {"CHARRNN_CHECKPOINT": trained_ckpt, "CHARRNN_SAMPLE_LENGTH": "7", "CHARRNN_SAMPLE_SEED": "4"}
    r = sh('"$C" sample', cwd=tmp_path, env=env)  # no checkpoints/ here: the path came from the env
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == 8
    assert sh('"$C" sample --seed 4', cwd=tmp_path, env=env).stdout == r.stdout
    assert len(sh('"$C" sample --length 3', cwd=tmp_path, env=env).stdout) == 4  # a flag beats the env


def test_version_and_exit_statuses(tmp_path):
    from charrnn import __version__

    v = sh('"$C" --version')
    assert v.returncode == 0 and __version__ in v.stdout
    usage = sh('"$C" sample --length -3', cwd=tmp_path)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    error = sh('"$C" sample', cwd=tmp_path)  # no checkpoint anywhere
    assert error.returncode == 1
    assert error.stderr.count("\n") == 1 and "no checkpoint" in error.stderr


def test_progress_bar_on_a_terminal(tmp_path, tiny_corpus):
    from conftest import run_on_terminal

    proc, err = run_on_terminal([CHARRNN, "train", tiny_corpus, "--out", str(tmp_path / "t"), "--hidden-size", "8",
                                 "--batch-size", "2", "--seq-len", "8", "--max-steps", "30"],
                                stream="stderr", columns=100, stdout=subprocess.PIPE)  # a 100-column terminal
    assert proc.returncode == 0 and proc.stdout == b""
    assert b"30/30" in err and b"\r" in err  # tqdm's bar, redrawn in place
