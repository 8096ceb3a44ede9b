"""The one JIT policy. Every kernel in the engine is compiled through `jit`; no other module passes
numba options.

- cache=True: compile once per machine; later starts load machine code from the on-disk cache
  (NUMBA_CACHE_DIR picks the folder; CI points it at a cached folder).
- nogil=True: a training thread runs kernels while the dashboard's event loop keeps drawing.
- error_model="numpy": without it every float division carries a zero check that blocks
  vectorisation (Adam over 128k parameters: 0.44 ms -> 0.07 ms, see shared PERF-NOTES).
- no fastmath and no parallel reductions: one seed must reproduce a run bit for bit.
- `jit_pieces`: the same options with parallel=True, for drivers whose prange loop hands
  independent pieces (blocks of a product, ranges of the parameter buffer, samples) to a serial
  kernel: each output is computed by one thread in the serial kernel's order, and the pieces
  depend on the shape only, so the bits do not depend on the thread count. Called only when
  DESCENT_THREADS >= 2 (threads.pieces_threads); Numba's threads start in about 2 us, where a
  Python thread pool's hand-off costs 40-50 us each way on this project's machines.
"""

import sys

import numba
import numba.extending


def _numba_without_scipy_blas():
    """Numba's array functions probe for SciPy's BLAS when they load (at the first kernel), which
    imports all of scipy.linalg (0.15 s of a warm start) only so that np.dot works in compiled
    code; no kernel here calls np.dot where NumPy bundles OpenBLAS (products.py and the recurrent
    kernels call its CBLAS). Numba imports SciPy later if a kernel does compile np.dot."""
    name = "scipy.linalg.cython_blas"
    if name in sys.modules or "numba.np.arraymath" in sys.modules:
        return
    sys.modules[name] = None                 # the probe's import fails: numba notes "no BLAS" and goes on
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]


_numba_without_scipy_blas()

OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)


def jit(fn):
    """Compile `fn` with the project's options (lazily, per argument types)."""
    return numba.njit(**OPTIONS)(fn)


def jit_overload(stub):
    """Register the decorated typing function as `stub`'s compiled implementation: it looks at the
    argument types and returns the function to compile (Numba's `overload`, with these options)."""
    return numba.extending.overload(stub, jit_options=OPTIONS)


def jit_pieces(fn):
    """Compile a prange driver over independent pieces (see above)."""
    return numba.njit(parallel=True, **OPTIONS)(fn)


@jit_pieces
def probe_pieces(a):
    """a[i] = i on Numba's threads: the first call starts the threading layer (threads.py)."""
    for i in numba.prange(a.size):
        a[i] = i
