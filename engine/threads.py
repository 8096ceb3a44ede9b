"""The engine's one thread policy: how many threads a training step may use.

One setting, DESCENT_THREADS (default 1), read by everything that runs on more than one core:
  - BLAS (NumPy's OpenBLAS and SciPy's, the one Numba kernels call) is limited to it;
  - the recurrent kernels split a batch's rows across that many threads of their own.
One by default: a second OpenBLAS thread gains little at the batch sizes descent trains at and
collapses when the other core is busy (workload 1: 725 steps/s on one thread, 11 on two with the
machine loaded; see bench/README.md), and the dashboard's event loop needs that core.
"""

from __future__ import annotations

import contextlib
import os

ENV = "DESCENT_THREADS"
_threads: int | None = None          # None: not configured, read the environment
_applied: object | None = None       # keeps the process-wide BLAS limit alive
_kernel_blas = False                 # SciPy's BLAS loaded and limited (cover_kernel_blas)


def from_env() -> int:
    """$DESCENT_THREADS as a positive int; 1 when unset or not a number."""
    try:
        return max(1, int(os.environ.get(ENV, "1")))
    except ValueError:
        return 1


def count() -> int:
    """Threads a step may use now."""
    return _threads if _threads is not None else from_env()


def _limit_blas(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:              # the limit is a speed setting, never a reason to fail
        return None
    return threadpool_limits(limits=threads, user_api="blas")     # every BLAS loaded by now


def cover_kernel_blas() -> None:
    """Extend the limit to SciPy's OpenBLAS, which Numba's np.dot (the recurrent kernels) calls:
    loaded here, on first use, so that models without those kernels don't pay its import
    (about 0.1-0.2 s)."""
    global _kernel_blas, _applied
    if _kernel_blas:
        return
    _kernel_blas = True
    with contextlib.suppress(ImportError):
        import scipy.linalg.cython_blas  # noqa: F401
    # limited even before configure(): an unlimited second OpenBLAS thread changes the bits of
    # the kernels' products, so a model built outside a session would train differently
    _applied = _limit_blas(count())


def configure(threads: int | None = None) -> int:
    """Use `threads` (default: $DESCENT_THREADS, else 1) for the rest of the process."""
    global _threads, _applied
    _threads = from_env() if threads is None else max(1, int(threads))
    _applied = _limit_blas(_threads)
    return _threads


@contextlib.contextmanager
def using(threads: int):
    """`threads` for BLAS and the engine's own threads inside the block (benchmarks)."""
    global _threads
    before = _threads
    _threads = max(1, int(threads))
    limit = _limit_blas(_threads)
    try:
        yield _threads
    finally:
        _threads = before
        if limit is not None:
            limit.restore_original_limits()
