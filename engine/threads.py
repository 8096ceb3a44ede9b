"""The engine's one thread policy: how many threads a training step may use.

One setting, DESCENT_THREADS (default 1), read by everything that runs on more than one core:
  - BLAS itself (NumPy's OpenBLAS and SciPy's, the one Numba's np.dot calls) always runs on one
    thread: OpenBLAS cuts a product between its threads by the thread count, so a second thread
    changes the bits of a result, and its idle threads spin on the other core in the way of ours;
  - the engine cuts its work into pieces that depend on the shape only (never on the thread
    count, so the bits do not either) and runs them on up to that many of Numba's threads
    (`pieces_threads`): the big matrix products (engine/products.py), the optimizer's update and
    per-tensor sums of squares, the recurrent layers' row chunks, and the convolution and
    max-pool batch pieces.
One by default: the dashboard's event loop needs the other core, and a busy machine makes two
threads slower than one (workload 1: 725 steps/s on one thread, 11 on two with the machine
loaded; see bench/README.md).
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

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
    """Extend the limit to SciPy's OpenBLAS, which Numba's np.dot calls (the recurrent kernels,
    only where NumPy bundles no OpenBLAS for products.py): loaded here, on first use, so that
    models without those kernels don't pay its import (about 0.1-0.2 s)."""
    global _kernel_blas, _applied
    if _kernel_blas:
        return
    _kernel_blas = True
    with contextlib.suppress(ImportError):
        import scipy.linalg.cython_blas  # noqa: F401
    # limited even before configure(): an unlimited second OpenBLAS thread changes the bits of
    # the kernels' products, so a model built outside a session would train differently
    _applied = _limit_blas(1)


# Work (multiply-adds) below which a split costs more than it gains: a recurrent layer's pass is
# one parallel region on Numba's threads (~2 us to enter and leave) per direction and layer. Quiet,
# 2026-12-01, a training step (embedding 32, B 32, T 30 unless said) on one / two threads: RNN H16
# (0.74 M) 179 / 184 us, LSTM H16 T20 B16 (0.98 M) 177 / 179, LSTM H8 (1.2 M) 249 / 228, RNN H32
# (2.0 M) 230 / 229, GRU H16 (2.2 M) 328 / 300, LSTM H32 (7.9 M) 699 / 531.
SPLIT_MIN_MACS = 1_000_000


def for_work(macs: int) -> int:
    """Threads worth using for a piece of work of `macs` multiply-adds: count(), or 1 when the
    work is too small to gain from a split (the one rule; recurrent.py asks it per layer pass)."""
    return count() if macs >= SPLIT_MIN_MACS else 1


def blas_one_thread() -> None:
    """Every BLAS loaded by now on one thread, for the rest of the process (once; SciPy's, loaded
    later by cover_kernel_blas, gets the same)."""
    global _applied
    if _applied is None:
        _applied = _limit_blas(1) or False


def configure(threads: int | None = None) -> int:
    """Use `threads` (default: $DESCENT_THREADS, else 1) for the rest of the process."""
    global _threads
    _threads = from_env() if threads is None else max(1, int(threads))
    blas_one_thread()
    return _threads


def wait_policy_note() -> str | None:
    """A line for the user when two threads would run slower than one: OMP_WAIT_POLICY=PASSIVE
    puts OpenMP's idle threads to sleep, and each of a step's parallel regions then waits for one
    to wake (2b, bench/README 2026-12-03: 3427-3724 us a step on two threads, 1910-2047 on one)."""
    if count() < 2 or os.environ.get("OMP_WAIT_POLICY", "").strip().upper() != "PASSIVE":
        return None
    return (f"{ENV}={count()} with OMP_WAIT_POLICY=PASSIVE: each parallel piece waits for a sleeping "
            f"thread to wake, which can make two threads slower than one; unset OMP_WAIT_POLICY or use {ENV}=1")


@contextlib.contextmanager
def using(threads: int):
    """`threads` for the engine's pieces inside the block (benchmarks, tests)."""
    global _threads
    before = _threads
    _threads = max(1, int(threads))
    blas_one_thread()
    try:
        yield _threads
    finally:
        _threads = before


# ---- Numba's threads -----------------------------------------------------------------------------
# Drivers compiled with jit.jit_pieces hand independent pieces (blocks of a product, ranges of the
# parameter buffer) to a serial kernel inside one prange loop, on Numba's own threads: no Python
# hand-off, so pieces of ~0.05 ms gain. Only a thread-safe threading layer (OpenMP or TBB): the
# dashboard may predict in one thread while another trains, and Numba's fallback layer aborts the
# process on concurrent launches. Without one, the pieces run one after the other.
_numba_ok: bool | None = None
_numba_max = 1                      # numba.config.NUMBA_NUM_THREADS, once the layer is up
_numba_set = threading.local()      # the count this thread last gave numba


def pieces_threads(pieces: int) -> int:
    """Threads to run `pieces` independent pieces on: 1 means call the serial kernel; more, and
    Numba's thread count is set for the calling thread (numba's setting is per thread)."""
    global _numba_ok
    if pieces < 2:
        return 1
    n = min(count(), pieces)
    if n < 2:
        return 1
    if _numba_ok is None:
        _numba_ok = _numba_threads_ready()
    if not _numba_ok:
        return 1
    n = min(n, _numba_max)
    if getattr(_numba_set, "n", 0) != n:             # numba's own getter costs ~0.5 us a call
        import numba

        numba.set_num_threads(n)
        _numba_set.n = n
    return n


def _numba_threads_ready() -> bool:
    global _numba_max
    import numba

    from .jit import probe_pieces

    try:
        numba.config.THREADING_LAYER = "threadsafe"
        probe_pieces(np.zeros(2))
        _numba_max = numba.config.NUMBA_NUM_THREADS
        return numba.threading_layer() in ("omp", "tbb")
    except Exception:  # noqa: BLE001 - no OpenMP or TBB runtime here: the serial kernels do the work
        return False
