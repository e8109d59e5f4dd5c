"""--threads: the default from the CPU affinity, the worker thread, BLAS threads, bad values."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from charrnn import threads
from charrnn.cli import main


@pytest.fixture
def restore_threads():
    before = threads.threads()
    yield
    threads.set_threads(before)


def test_default_is_the_cpus_this_process_may_use():
    assert threads.available() == len(os.sched_getaffinity(0))


def test_one_thread_is_serial_and_two_have_a_worker(restore_threads):
    threads.set_threads(1)
    assert threads.worker() is None
    threads.set_threads(2)
    assert threads.worker() is not None
    assert threads.worker() is threads.worker()  # one worker, made once
    with pytest.raises(ValueError):
        threads.set_threads(0)


def test_without_threadpoolctl_blas_threads_go_through_the_environment():
    code = ("import sys; sys.modules['threadpoolctl'] = None\n"  # as if it were not installed
            "from charrnn import threads; threads.set_threads(5)\n"
            "import os; print(os.environ['OPENBLAS_NUM_THREADS'], 'numpy' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.endswith("NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["2", "False"]  # half of 5, set before numpy was imported


def test_set_before_numpy_loads_with_threadpoolctl_too():
    pytest.importorskip("threadpoolctl")
    code = ("from charrnn import threads; threads.set_threads(3)\n"  # threadpoolctl sees no BLAS yet
            "import numpy, threadpoolctl\n"
            "print(sorted({lib['num_threads'] for lib in threadpoolctl.threadpool_info() if lib['user_api'] == 'blas'}))")
    env = {k: v for k, v in os.environ.items() if not k.endswith("NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "[1]", out.stderr


def test_with_threadpoolctl_blas_threads_are_set_at_once(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401  (loaded: the environment would be too late)

    threads.set_threads(4)
    blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 2 for lib in blas)


def test_threads_below_one_is_refused_in_one_line(tmp_path):
    r = CliRunner().invoke(main, ["hello", "--steps", "3", "--json", "--threads", "0"])
    assert r.exit_code == 2 and "--threads" in r.output  # a usage error, as other ranges
    r = CliRunner().invoke(main, ["train", "-", "--threads", "0", "--out", str(tmp_path / "o")], input="abc")
    assert r.exit_code == 1 and r.stderr.strip().count("\n") == 0 and "threads" in r.stderr  # as other config values
    yaml = tmp_path / "c.yaml"
    yaml.write_text("threads: two\n")
    r = CliRunner().invoke(main, ["train", "-", "--config", str(yaml), "--out", str(tmp_path / "o")], input="abc")
    assert r.exit_code == 1 and "threads" in r.stderr and "Traceback" not in r.output


def test_threads_from_the_environment(restore_threads):
    r = CliRunner().invoke(main, ["hello", "--steps", "3", "--json"], env={"CHARRNN_THREADS": "1"})
    assert r.exit_code == 0, r.output
    assert threads.threads() == 1 and threads.worker() is None


def test_bench_cell_prints_each_cell_against_its_products():
    r = CliRunner().invoke(main, ["bench", "--cell", "lstm", "--cell", "gru", "--hidden-size", "16", "--batch-size", "4",
                                  "--seq-len", "8", "--seconds", "0.1", "--json", "--threads", "1"])
    assert r.exit_code == 0, r.output
    import json

    rows = json.loads(r.stdout)["cells"]
    assert [row["cell"] for row in rows] == ["lstm", "gru"] and all(row["threads"] == 1 for row in rows)
    for row in rows:
        assert row["update_ms"] > 0 and row["products_ms"] > 0 and row["sample_chars_per_sec"] > 0
        assert abs(row["update_over_products"] - row["update_ms"] / row["products_ms"]) < 1e-9
        assert abs(row["train_chars_per_sec"] - 4 * 8 / (row["update_ms"] / 1e3)) < 1e-6 * row["train_chars_per_sec"]
