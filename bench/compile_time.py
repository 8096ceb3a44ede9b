"""Compile time for bench/speed.py: the probe a fresh process runs, and the cold and warm runs of it.

`speed.py --compile-probe` runs `compile_probe` in a child process; `compile_times` starts those
children, each with its own Numba cache folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def compile_probe(workloads: dict, missing) -> dict:
    """Build and step every given workload's model once, on 2 rows, skipping those for which
    `missing(w)` names a reason; runs inside a fresh process, whose first import of descent it
    times (so `missing`, which imports it too, is asked afterwards)."""
    t0 = time.perf_counter()
    from descent.engine.backend import warm_up

    imported = time.perf_counter() - t0
    t1 = time.perf_counter()
    each = {}
    for key, w in workloads.items():
        if missing(w):
            continue
        x, y = w.batches(np.random.default_rng(0), 1)[0]
        t2 = time.perf_counter()
        warm_up(w.layers, w.in_shape, "cross_entropy", x[:2], y[:2], None, "float32", "adam")
        each[key] = round(time.perf_counter() - t2, 3)
    return {"import_s": imported, "warmup_s": time.perf_counter() - t1, "workloads": list(each), "each_s": each}


def compile_times(script: Path, keys: list[str], runs: int) -> dict:
    """Per phase, the probe run with the median total (warm-up + imports) of `runs`, with every
    run's total in `totals_s`. Cold: each run in a fresh process on an empty cache of its own;
    warm: then each of those caches again. One cold run on this VM ranged 14.2-17.3 s in an hour
    (neighbours steal CPU time), too wide for one sample to say anything about a 15 s goal."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="descent-numba-cache-") as root:
        for phase in ("cold", "warm"):
            got = []
            for i in range(runs):
                env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(root, str(i)))
                # a user's Python keeps the bytecode of descent's modules (__pycache__) as Numba keeps
                # its machine code: the cold run writes both, the warm run reads both (some sandboxes
                # set PYTHONDONTWRITEBYTECODE, which made every warm start compile descent's sources again)
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                proc = subprocess.run([sys.executable, str(script), "--compile-probe", "--workloads", ",".join(keys)],
                                      env=env, capture_output=True, text=True, cwd=script.resolve().parents[1])
                if proc.returncode != 0:
                    got = [{"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}]
                    break
                got.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            if "error" in got[0]:
                out[phase] = got[0]
                continue
            got.sort(key=lambda r: r["warmup_s"] + r["import_s"])
            out[phase] = dict(got[len(got) // 2], totals_s=[round(r["warmup_s"] + r["import_s"], 2) for r in got])
    return out
