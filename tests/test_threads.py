"""--threads: the default from the CPU affinity, BLAS threads, the tuner that picks them, bad values."""
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


def test_a_given_count_is_fixed_and_auto_starts_at_one_blas_thread(restore_threads):
    threads.set_threads(3)
    assert threads.threads() == 3 and not threads.is_auto()
    assert threads.tuner().choices == (3,)  # --threads N: no measuring
    threads.set_threads(None)
    assert threads.is_auto() and threads.threads() == threads.available()
    with pytest.raises(ValueError):
        threads.set_threads(0)


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.endswith("NUM_THREADS")}


def test_without_threadpoolctl_blas_threads_go_through_the_environment():
    code = ("import sys; sys.modules['threadpoolctl'] = None\n"  # as if it were not installed
            "from charrnn import threads; threads.set_threads(5); print(threads.tuner().choices)\n"
            "threads.set_threads(None); import os; print(os.environ['OPENBLAS_NUM_THREADS'], 'numpy' in sys.modules)\n"
            "import numpy; print(threads.tuner().choices)")  # auto cannot switch after numpy loaded: it stays
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(), timeout=60)
    assert out.stdout.split("\n")[:3] == ["(5,)", "1 False", "(1,)"], out.stderr


def test_auto_leaves_a_users_blas_count_alone_and_reports_it():
    code = ("from charrnn import threads; threads.set_threads(None)\n"
            "import os; print(os.environ['OPENBLAS_NUM_THREADS'], threads.tuner().choices)")
    env = {**_clean_env(), "OPENBLAS_NUM_THREADS": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split("\n")[0] == "3 (3,)", out.stderr


def test_set_before_numpy_loads_with_threadpoolctl_too():
    pytest.importorskip("threadpoolctl")
    code = ("from charrnn import threads; threads.set_threads(2)\n"  # threadpoolctl sees no BLAS yet
            "import numpy, threadpoolctl\n"
            "print(sorted({lib['num_threads'] for lib in threadpoolctl.threadpool_info() if lib['user_api'] == 'blas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(), timeout=60)
    assert out.stdout.strip() == "[2]", out.stderr


def test_with_threadpoolctl_blas_threads_are_set_at_once(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401  (loaded: the environment would be too late)

    for n in (2, 1):
        threads.set_threads(n)
        blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
        assert blas and all(lib["num_threads"] == n for lib in blas)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_gradients_bitwise_the_same_with_one_blas_thread_or_two(cell, restore_threads):
    """OpenBLAS splits rows and columns between threads, never sums: the tuner may switch freely."""
    pytest.importorskip("threadpoolctl")
    import numpy as np

    from charrnn.model import Model

    grads = []
    for n in (1, 2):
        threads.set_threads(n)
        model = Model(50, 96, layers=2, cell=cell, dropout=0.2).init(1)  # products large enough to be split
        rng = np.random.default_rng(2)
        x, y = rng.integers(0, 50, (8, 32)), rng.integers(0, 50, (8, 32))
        model.forward(x, y, model.zero_state(32), train=True, rng=np.random.default_rng(3))
        grads.append({k: g.copy() for k, g in model.backward().items()})
    for k in grads[0]:
        assert np.array_equal(grads[0][k], grads[1][k]), k
        assert np.abs(grads[0][k]).max() > 0, k


class FakeMachine:
    """Updates that take `cost[choice]` seconds, on a clock the tuner reads."""

    def __init__(self, tuner_cls=threads.Tuner, choices=(1, 2), **cost):
        self.now, self.cost, self.used = 0.0, {1: 1.0, 2: 0.5, **{int(k[1:]): v for k, v in cost.items()}}, []
        self.tuner = tuner_cls(choices, apply=self.used.append, clock=lambda: self.now)

    def updates(self, n: int) -> list:
        chosen = []
        for _ in range(n):
            c = self.tuner.begin()
            self.now += self.cost[c]
            self.tuner.end()
            chosen.append(c)
        return chosen


def test_tuner_times_each_choice_and_keeps_the_faster():
    m = FakeMachine()  # two threads take half the time
    first = m.updates(1 + 2 * threads.Tuner.PROBES)
    assert sorted(first[1:]) == [1, 1, 2, 2]  # after the untimed first update, each choice twice
    assert m.tuner.current == 2 and m.updates(10) == [2] * 10
    assert m.used[-1] == 2  # what begin() chose was applied


def test_tuner_does_not_look_twice_at_a_choice_that_is_far_slower_and_looks_rarely():
    m = FakeMachine(c2=14.0)  # two threads beside another busy process
    first = m.updates(1 + 2 * threads.Tuner.PROBES)
    assert first[1:].count(2) == 1 and m.tuner.current == 1
    assert m.tuner.interval >= 50 * 13  # a look costs 13 updates: under 2 % of those between looks


def test_tuner_keeps_one_thread_unless_more_are_clearly_faster():
    m = FakeMachine(c2=0.97)  # 3 % faster: not worth a second core
    m.updates(1 + 2 * threads.Tuner.PROBES)
    assert m.tuner.current == 1


def test_tuner_looks_again_ever_less_often_while_nothing_changes():
    m = FakeMachine(c2=2.0)  # a busy machine: two threads are slower
    chosen = m.updates(1000)
    probes = [i for i, c in enumerate(chosen) if c == 2]
    assert m.tuner.current == 1
    gaps = [b - a for a, b in zip(probes, probes[1:]) if b - a > 2]
    assert len(gaps) >= 3 and gaps == sorted(gaps) and gaps[-1] > gaps[0]  # the interval doubles
    later = [i for i in probes if i > 1 + 2 * threads.Tuner.PROBES]
    assert later and all(chosen[i + 1] == 1 for i in later)  # a later look costs one update of the loser


def test_tuner_switches_when_the_machine_changes():
    m = FakeMachine()
    m.updates(20)
    assert m.tuner.current == 2
    m.cost[2] = 3.0  # other work arrived: two threads now wait for each other
    m.updates(5 + 2 * threads.Tuner.PROBES)  # 1.5x slower over 5 updates: it looks at once
    assert m.tuner.current == 1
    m.cost[2] = 0.5  # and left again
    m.updates(600)
    assert m.tuner.current == 2


def test_tuner_compares_time_per_work_when_updates_differ_in_size():
    t = threads.Tuner((1, 2), apply=lambda n: None, clock=iter(range(0, 10**6, 1)).__next__)
    for _ in range(1 + 2 * t.PROBES):  # every update takes 1 clock tick; choice 2's updates do twice the work
        c = t.begin()
        t.end(work=2.0 if c == 2 else 1.0)
    assert t.current == 2


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
    assert threads.threads() == 1 and not threads.is_auto()


def test_bench_cell_prints_each_cell_against_its_products():
    r = CliRunner().invoke(main, ["bench", "--cell", "lstm", "--cell", "gru", "--hidden-size", "16", "--batch-size", "4",
                                  "--seq-len", "8", "--seconds", "0.1", "--json", "--threads", "1"])
    assert r.exit_code == 0, r.output
    import json

    rows = json.loads(r.stdout)["cells"]
    assert [row["cell"] for row in rows] == ["lstm", "gru"] and all(row["blas_threads"] == 1 for row in rows)
    for row in rows:
        assert row["update_ms"] > 0 and row["products_ms"] > 0 and row["sample_chars_per_sec"] > 0
        assert abs(row["update_over_products"] - row["update_ms"] / row["products_ms"]) < 1e-9
        assert abs(row["train_chars_per_sec"] - 4 * 8 / (row["update_ms"] / 1e3)) < 1e-6 * row["train_chars_per_sec"]
