"""The engine's one thread policy: how many threads a training step may use.

One setting, DESCENT_THREADS (default 1), read by everything that runs on more than one core:
  - BLAS (NumPy's OpenBLAS and SciPy's, the one Numba kernels call) is limited to it;
  - the recurrent layers split their work (kernel rows, products) across that many threads of
    the engine's own pool (`parallel`), with BLAS on one thread meanwhile (`blas_single`).
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


# ---- the engine's own threads ------------------------------------------------------------------
# OpenBLAS's own second thread collapses when the other core is busy (a 32 k x 32 x 256 product:
# 0.6 ms on one thread, 32 ms on two with the machine loaded) and keeps spinning on that core after
# each product, in the way of the engine's row threads. So where the engine splits work itself
# (the recurrent layers), BLAS runs on one thread and the engine's pool hands out the pieces.
_pool = None
_pool_size = 0
_blas_libs: list | None = None      # threadpoolctl's controllers of every BLAS, found once


def _blas_controllers() -> list:
    global _blas_libs
    if _blas_libs is None:
        cover_kernel_blas()
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas_libs = []
        else:
            _blas_libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas_libs


@contextlib.contextmanager
def blas_single():
    """BLAS on one thread inside the block when the engine may use more (a no-op on one thread):
    set on the libraries directly, about 1 us, where a threadpoolctl limit costs 50 us."""
    n = count()
    libs = _blas_controllers() if n > 1 else []
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield n
    finally:
        for lib in libs:
            lib.set_num_threads(n)


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
