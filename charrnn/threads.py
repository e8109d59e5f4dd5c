"""How many CPU threads charrnn computes with, and when training uses them.

An update is a long chain of small products (one per step, (G*H, H) @ (H, B)) and a few large
ones (the weight gradients, the output layer). On an idle machine BLAS threads speed up both:
measured on 2 cores, an update takes 1.15-1.75x less time with 2 BLAS threads than with one.
On a machine that other processes keep busy it is the other way round: BLAS's threads meet at
every product, and a thread that waits for a core holds the others up, so an update took 3-18x
*longer* with 2 threads than with one (docs/performance.md). Which of the two a machine is
changes while a run trains.

So by default ("auto") training measures: `Tuner` times updates with one BLAS thread and with
every CPU this process may use (its affinity, which `taskset` and container limits set), keeps
the faster, and looks again now and then. `--threads N` fixes N BLAS threads. Outside
training (sampling, scoring, serving), auto means one BLAS thread: one-stream sampling is a
chain of products too small to split, and the safe choice costs little there.

The results are the same bit for bit whatever the thread count: OpenBLAS splits a product's
rows and columns between its threads, never its sums (tests/test_threads.py checks it).

BLAS threads are set through the OPENBLAS/OMP/MKL_NUM_THREADS variables, which BLAS reads when
numpy first loads it (the CLI sets them before it imports anything that imports numpy), and,
once numpy is loaded, through threadpoolctl, the optional extra `threads`: without it the count
can't change after numpy loads, so auto stays at one thread. A BLAS thread count the user set
in those variables wins over auto, not over --threads.

Training with numba's kernels (fused.py) counts numba's threads instead: the Tuner's `apply` is
then fused.use_threads, which splits the compiled loops and products between that many of
numba's threads and keeps BLAS on one.
"""
from __future__ import annotations

import os
import sys
import threading
import time

_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# A BLAS thread count the user set, before this module touched the variables (None: none).
_USER_BLAS = next((os.environ[var] for var in _BLAS_VARS if var in os.environ), None)
_lock = threading.Lock()
_threads: int | None = None  # the budget: None until set_threads()
_auto = True
_blas: int | None = None  # BLAS threads in force, as set here
_controller = None  # threadpoolctl's, made once: finding the libraries costs milliseconds


def available() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def set_threads(n: int | None = None) -> int:
    """Compute with n BLAS threads; None: auto (see the module's docstring). Returns the budget.

    Call it before numpy is imported when threadpoolctl may be missing. With n None, a BLAS
    thread count the user set in the environment (OPENBLAS_NUM_THREADS...) is left alone.
    """
    global _threads, _auto
    auto = n is None
    n = available() if auto else int(n)
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    with _lock:
        _threads, _auto = n, auto
    if not auto:
        set_blas(n)
    elif _USER_BLAS is None:
        set_blas(1)
    return n


def threads() -> int:
    """The thread budget in force (set_threads() with auto if nothing set it yet)."""
    return _threads if _threads is not None else set_threads()


def is_auto() -> bool:
    threads()
    return _auto


def set_blas(n: int) -> None:
    """BLAS threads now: the environment before numpy loads, threadpoolctl after."""
    global _blas, _controller
    if n == _blas:
        return
    if "numpy" not in sys.modules:  # threadpoolctl would see no BLAS yet, and its import costs the cold start
        for var in _BLAS_VARS:
            os.environ[var] = str(n)
        _blas = n
        return
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return  # the count BLAS loaded with stays
        _controller = ThreadpoolController().select(user_api="blas")
    for lib in _controller.lib_controllers:
        lib.set_num_threads(n)
    _blas = n


def can_switch() -> bool:
    """Whether BLAS's thread count can change now (numpy not loaded yet, or threadpoolctl)."""
    if "numpy" not in sys.modules or _controller is not None:
        return True
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


def tuner(apply=None) -> "Tuner":
    """A Tuner for a training loop: measuring with auto, else fixed at the threads set.

    apply(n) sets n threads for the coming updates: by default BLAS's (set_blas); training's
    compiled loops bring their own (fused.use_threads)."""
    n = threads()
    if _auto and n > 1 and _USER_BLAS is None and can_switch():
        return Tuner((1, n), apply or set_blas)
    keep = apply or (lambda n: None)  # already in force
    if _auto and _USER_BLAS is not None:  # the user's own count, which auto leaves alone
        return Tuner((_as_count(_USER_BLAS),), apply=keep)
    return Tuner((_blas or n,), apply=keep)


def _as_count(value: str | None) -> int | None:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return None  # not a number BLAS would use either: its own default


def _median(values: list) -> float:
    """The median (statistics' import would cost every command's start 4 ms)."""
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


class Tuner:
    """Picks BLAS's thread count for each training update by timing updates with each choice.

    Call `begin()` before an update's computation and `end()` after it. The first update (its
    buffers are made then) is not timed; then each choice runs PROBES updates, alternating, and
    the faster by median is kept (a choice whose first update took over twice the other's gets
    no second). Every `interval` updates it looks again: one update with each other choice,
    against the median of the kept choice's latest 5. A switch sets the interval back to its
    start; staying doubles it, or more, so that the looks cost under 2 % of the time (beside
    another busy process a 2-thread update took 10-18x a 1-thread one), up to MAX. If the kept
    choice's updates become 1.5x slower than when it was chosen (other work arrived), it looks
    at once.
    """

    PROBES = 2
    START, MAX = 64, 1024

    def __init__(self, choices: tuple, apply=set_blas, clock=time.perf_counter):
        self.choices, self.apply, self.clock = tuple(choices), apply, clock
        self.current = self.choices[0]
        self.queue: list = []  # choices still to time in this comparison
        self.timings: dict = {}  # choice -> seconds of its updates in this comparison
        self.recent: list = []  # the kept choice's latest updates
        self.reference = None  # the kept choice's median when it was chosen
        self.interval, self.until_next = self.START, 0
        self.updates = 0
        self._started = None
        self._choice = self.current

    @property
    def settled(self) -> bool:
        """Whether the first look is over (or there was nothing to look at)."""
        return len(self.choices) == 1 or self.reference is not None

    def begin(self) -> int:
        """Set the thread count for the coming update; returns it."""
        if len(self.choices) > 1 and self.updates >= 1 and not self.queue and self.until_next <= 0:
            if self.reference is None:  # the first look: each choice PROBES times, alternating
                self.queue = [c for _ in range(self.PROBES) for c in self.choices]
            else:  # later: the others once each, against the kept choice's latest updates
                self.queue = [c for c in self.choices if c != self.current]
            self.timings = {c: [] for c in self.choices}
        self._choice = self.queue[0] if self.queue else self.current
        self.apply(self._choice)
        self._started = self.clock()
        return self._choice

    def end(self, work: float = 1.0) -> None:
        """The update is done; `work` scales its time when updates differ in size (seconds per work)."""
        seconds = (self.clock() - self._started) / work
        self.updates += 1
        if self.updates == 1 or len(self.choices) == 1:
            return
        if self.queue:
            choice = self.queue.pop(0)
            self.timings[choice].append(seconds)
            others = [min(t) for c, t in self.timings.items() if c != choice and t]
            if others and seconds > 2 * min(others):  # clearly slower: no second look at it now
                self.queue = [c for c in self.queue if c != choice]
            if not self.queue:
                self._decide()
            return
        self.until_next -= 1
        self.recent = (self.recent + [seconds])[-5:]
        if len(self.recent) == 5 and _median(self.recent) > 1.5 * self.reference:
            self.until_next, self.interval = 0, self.START  # the machine changed: look again now

    def _decide(self) -> None:
        medians = {c: _median(t) for c, t in self.timings.items() if t}
        if self.current not in medians:
            medians[self.current] = _median(self.recent) if self.recent else self.reference
        best = min(medians, key=medians.get)
        if best != self.current and medians[best] < 0.95 * medians[self.current]:
            self.current, self.interval = best, self.START
        else:  # the look cost (loser / kept - 1) updates: keep that under 2 % of the updates between looks
            cost = max(medians.values()) / medians[self.current] - 1
            doubled = 2 * self.interval if self.reference is not None else self.START
            self.interval = min(max(doubled, int(50 * cost)), self.MAX)
        self.reference, self.recent, self.until_next = medians[self.current], [], self.interval
