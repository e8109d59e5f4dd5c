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
and container limits set), not the machine's count. BLAS threads are set through
threadpoolctl when it is installed (the `threads` extra); without it, through the
OPENBLAS/OMP/MKL_NUM_THREADS variables, which work only before numpy is first imported
(the CLI applies them before it imports anything that imports numpy).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_lock = threading.Lock()
_threads: int | None = None
_worker: ThreadPoolExecutor | None = None


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
        if given or not any(var in os.environ for var in _BLAS_VARS):
            _set_blas(blas_threads(n))
        if n == 1 and _worker is not None:
            _worker.shutdown(wait=True)
            _worker = None
    return n


def threads() -> int:
    """The thread count in force (set_threads() with the default if nothing set it yet)."""
    return _threads if _threads is not None else set_threads()


def worker() -> ThreadPoolExecutor | None:
    """The one worker thread for the large products, or None when computing serially."""
    global _worker
    if threads() < 2:
        return None
    with _lock:
        if _worker is None:
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charrnn-worker")
        return _worker


def _set_blas(n: int) -> None:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        for var in _BLAS_VARS:  # read by OpenBLAS/MKL when numpy loads them; too late after that
            os.environ[var] = str(n)
        return
    threadpool_limits(limits=n, user_api="blas")
