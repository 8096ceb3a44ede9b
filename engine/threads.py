"""How many threads BLAS may use while training.

One by default: the batch sizes descent trains at are small products where a second OpenBLAS
thread gains little on an idle 2-core machine and collapses when the other core is busy (measured
here: workload 1 at 725 steps/s on one thread, 11 on two with the machine loaded; see
bench/README.md), and the dashboard's event loop needs that core. DESCENT_THREADS=N overrides.
"""

from __future__ import annotations

import os

ENV = "DESCENT_THREADS"
_applied: object | None = None


def configure(threads: int | None = None) -> int:
    """Limit BLAS to `threads` (default: $DESCENT_THREADS, else 1) for the rest of the process."""
    global _applied
    if threads is None:
        try:
            threads = max(1, int(os.environ.get(ENV, "1")))
        except ValueError:
            threads = 1
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:      # the limit is a speed setting, never a reason to fail
        return threads
    _applied = threadpool_limits(limits=threads, user_api="blas")
    return threads
