"""The engine's one thread policy: how many threads a training step may use.

One setting, DESCENT_THREADS (default 1), read by everything that runs on more than one core:
  - BLAS itself (NumPy's OpenBLAS and SciPy's, the one Numba's np.dot calls) always runs on one
    thread: OpenBLAS cuts a product between its threads by the thread count, so a second thread
    changes the bits of a result, and its idle threads spin on the other core in the way of ours;
  - the engine cuts its work into pieces that depend on the shape only (never on the thread
    count, so the bits do not either) and runs them on up to that many threads: the big matrix
    products (engine/products.py) and the optimizer's update on Numba's threads
    (`pieces_threads`), the recurrent layers' row chunks on the engine's own pool (`parallel`).
One by default: the dashboard's event loop needs the other core, and a busy machine makes two
threads slower than one (workload 1: 725 steps/s on one thread, 11 on two with the machine
loaded; see bench/README.md).
"""

from __future__ import annotations

import contextlib
import os

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
    _applied = _limit_blas(1)


# Work (multiply-adds) below which a split costs more than it gains: every parallel section costs
# about 12 us of hand-over and a recurrent layer's step has three or four, so a small layer loses
# with two threads (the quiet run of 2026-12-01 15:10: the RNN at T30, 6 M multiply-adds, ran at
# 933 steps/s on two threads against 1396 on one; the LSTM at T30, 24 M, 550 against 529; at T100,
# 79 M, 217 against 162).
SPLIT_MIN_MACS = 20_000_000


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


# ---- the engine's own threads ------------------------------------------------------------------
# The recurrent layers hand row chunks of their kernels (which release the GIL) to a Python pool.
_pool = None
_pool_size = 0


def parallel(fn, chunks) -> None:
    """fn(lo, hi) for every (lo, hi) in chunks, on up to count() threads, the caller among them.
    The chunks go to whichever thread is free, so a helper thread that the OS schedules late (a
    busy machine) costs little: the calling thread takes its chunks. fn must release the GIL to
    gain (Numba nogil kernels, NumPy products)."""
    global _pool, _pool_size
    from concurrent.futures import ThreadPoolExecutor

    chunks = list(chunks)
    n = min(count(), len(chunks))
    if n < 2:
        for lo, hi in chunks:
            fn(lo, hi)
        return
    if _pool_size < n - 1:                                              # first use, or the setting grew
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(n - 1, thread_name_prefix="descent-rows")
        _pool_size = n - 1
    todo = iter(chunks)

    def work():
        for lo, hi in todo:                                             # next() on a shared iterator: GIL-atomic
            fn(lo, hi)

    futures = [_pool.submit(work) for _ in range(n - 1)]
    work()
    for f in futures:
        f.result()


# ---- Numba's threads -----------------------------------------------------------------------------
# Drivers compiled with jit.jit_pieces hand independent pieces (blocks of a product, ranges of the
# parameter buffer) to a serial kernel inside one prange loop, on Numba's own threads: no Python
# hand-off, so pieces of ~0.05 ms gain. Only a thread-safe threading layer (OpenMP or TBB): the
# dashboard may predict in one thread while another trains, and Numba's fallback layer aborts the
# process on concurrent launches. Without one, the pieces run one after the other.
_numba_ok: bool | None = None


def pieces_threads(pieces: int) -> int:
    """Threads to run `pieces` independent pieces on: 1 means call the serial kernel; more, and
    Numba's thread count is set for the calling thread (numba's setting is per thread)."""
    global _numba_ok
    n = min(count(), pieces)
    if n < 2:
        return 1
    if _numba_ok is None:
        _numba_ok = _numba_threads_ready()
    if not _numba_ok:
        return 1
    import numba

    n = min(n, numba.config.NUMBA_NUM_THREADS)
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    return n


def _numba_threads_ready() -> bool:
    import numba

    from .jit import probe_pieces

    # libgomp's workers spin 300,000 rounds (milliseconds) after each region, in the way of the
    # recurrent layers' pool thread: seq2seq on two threads took 18.2 ms a step, 15.7 with 20,000
    # (workloads 1, 2b, 4b, 4d, 4e the same or faster; quiet, 2026-12-01). Read when libgomp loads.
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")
    try:
        numba.config.THREADING_LAYER = "threadsafe"
        probe_pieces(np.zeros(2))
        return numba.threading_layer() in ("omp", "tbb")
    except Exception:  # noqa: BLE001 - no OpenMP or TBB runtime here: the serial kernels do the work
        return False
