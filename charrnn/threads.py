"""How many CPU threads charrnn computes with: BLAS's, and one worker thread beside the recurrence.

A recurrent update is a long chain of small products (one per step, (G*H, H) @ (H, B)) and a
few large ones (the weight gradients, the output layer). On few cores, BLAS threads pay off
on the large products only; on the small ones their start-up and spinning cost more than
they save, and on a machine that other processes share, spinning threads take the cores
from the process's own main thread. So with N threads charrnn runs the recurrence on the
main thread with single-threaded BLAS, and the large products on one worker thread beside
it (`worker()`), with N // 2 BLAS threads each; N = 1 is fully serial. The results are the
same bit for bit whatever N is: the work is cut into the same blocks, summed in the same order.

The default N is the number of CPUs this process may run on (its affinity, which `taskset`
and container limits set), not the machine's count. BLAS threads are set through the
OPENBLAS/OMP/MKL_NUM_THREADS variables, which BLAS reads when numpy first loads it (the CLI
sets them before it imports anything that imports numpy), and, once numpy is loaded, through
threadpoolctl when it is installed (the `threads` extra); without it, a change after numpy
loaded reaches the worker only. A BLAS thread count the user set in those variables wins over
the default, not over --threads.
"""
from __future__ import annotations

import os
import sys
import threading

_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_USER_SET_BLAS = any(var in os.environ for var in _BLAS_VARS)  # before this module touched them
_lock = threading.Lock()
_threads: int | None = None
_worker = None  # a concurrent.futures.ThreadPoolExecutor, made on first use


def available() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def blas_threads(n: int) -> int:
    """BLAS threads for N threads in all: half, since the worker runs products beside the main thread."""
    return max(1, n // 2)


def set_threads(n: int | None = None) -> int:
    """Compute with n threads (None: every CPU this process may use). Returns n.

    Call it before numpy is imported when threadpoolctl may be missing. With n None, a BLAS
    thread count the user set in the environment (OPENBLAS_NUM_THREADS...) is left alone.
    """
    global _threads, _worker
    given = n is not None
    n = int(n) if given else available()
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    with _lock:
        _threads = n
        if given or not _USER_SET_BLAS:
            _set_blas(blas_threads(n))
        if n == 1 and _worker is not None:
            _worker.shutdown(wait=True)
            _worker = None
    return n


def threads() -> int:
    """The thread count in force (set_threads() with the default if nothing set it yet)."""
    return _threads if _threads is not None else set_threads()


def worker():
    """The one worker thread (a ThreadPoolExecutor) for the large products, or None when serial."""
    global _worker
    if threads() < 2:
        return None
    with _lock:
        if _worker is None:
            from concurrent.futures import ThreadPoolExecutor

            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charrnn-worker")
        return _worker


def _set_blas(n: int) -> None:
    # The variables are read when numpy loads its BLAS (threadpoolctl sees no library before
    # that); threadpoolctl changes a BLAS already loaded.
    for var in _BLAS_VARS:
        os.environ[var] = str(n)
    if "numpy" not in sys.modules:
        return  # nothing loaded a BLAS yet (and threadpoolctl's import would cost the cold start)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=n, user_api="blas")
