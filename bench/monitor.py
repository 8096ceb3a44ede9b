"""What descent.Monitor costs a PyTorch training loop: steps/s with and without it.

    python bench/monitor.py [--workloads 2a,4b] [--repeats N] [--block S] [--threads N]

The models, batches and loop are bench/speed.py's torch variant (its WORKLOADS: the MLP 784-128-10
and the LSTM T30, Adam, random data). Variants: the plain loop, and the same loop calling
`monitor.step(loss, opt)` before `opt.step()` with every=10 and every=1 (each its own model,
optimizer and run folder in a temporary directory). They take turns block by block, so a change in
machine load hits all of them; the figure is the median steps/s over the blocks, and the overhead
is the extra time per step against the plain loop. The last column, every=1's extra time per
step, is about what one logged step costs (an unlogged one costs a counter; at every=1 the
writer thread batches more lines per write). `--clock cpu` (the default) counts the process's
CPU time, all threads (`time.process_time`: torch's one thread with --threads 1, and
Monitor's metrics.jsonl writer thread), so other processes on a shared machine shift the figures
less than they shift wall time (they still share caches and memory bandwidth); `--clock wall`
is what a user waits, where the writer thread overlaps torch's work on a free core. The load
average (`uptime`) is printed at start and end.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from speed import WORKLOADS  # noqa: E402  (bench/ is not a package)

VARIANTS = ("plain", "every=10", "every=1")


class Loop:
    """One variant: speed.py's torch loop, with a Monitor when `every` is given."""

    def __init__(self, torch, model, data, every: int | None, run_dir: Path):
        from descent import Monitor

        self.torch, self.model, self.data, self.i = torch, model, data, 0
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.monitor = Monitor(model, run_dir, every=every) if every else None

    def step(self) -> None:
        x, y = self.data[self.i % len(self.data)]
        self.i += 1
        self.opt.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        if self.monitor is not None:
            self.monitor.step(loss, self.opt)
        self.opt.step()


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def timed(loop: Loop, seconds: float, clock=time.process_time) -> float:
    """Steps per second of `clock` over a block of about `seconds` of it."""
    n, start = 0, clock()
    while True:
        loop.step()
        n += 1
        used = clock() - start
        if used >= seconds:
            return n / used


def run_workload(key: str, repeats: int, block_s: float, tmp: Path, clock) -> dict[str, float]:
    import torch

    from descent.engine.torch_backend import build_torch_model

    w = WORKLOADS[key]
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in w.batches(np.random.default_rng(0))]
    base = build_torch_model(w.layers, w.in_shape, "float32", 0)
    loops = {name: Loop(torch, copy.deepcopy(base), data, None if name == "plain" else int(name.split("=")[1]),
                        tmp / f"{key}-{name.replace('=', '')}") for name in VARIANTS}
    for loop in loops.values():            # warm-up: allocator, first Adam state, first records
        timed(loop, block_s / 2, clock)
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(repeats):
        for name, loop in loops.items():
            rates[name].append(timed(loop, block_s, clock))
    for loop in loops.values():
        if loop.monitor is not None:
            loop.monitor.close()
    return {name: statistics.median(r) for name, r in rates.items()}


def uptime() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} ({os.cpu_count()} CPUs)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="2a,4b", help="keys of bench/speed.py's WORKLOADS")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--block", type=float, default=0.5, help="seconds (of --clock) per variant per repeat")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="cpu", help="process CPU time or wall time")
    args = ap.parse_args(argv)
    keys = args.workloads.split(",")
    unknown = [k for k in keys if k not in WORKLOADS]
    if unknown:
        print(f"bench/monitor.py: unknown workload {unknown[0]!r} (known: {', '.join(WORKLOADS)})", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    print(f"start: {uptime()}; torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.repeats} x {args.block:g} s blocks of {args.clock} time")
    print(f"| workload | plain steps/{args.clock}-s | every=10 | overhead | every=1 | overhead | ms per logged step |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="descent-bench-monitor-") as tmp:
        for key in keys:
            med = run_workload(key, args.repeats, args.block, Path(tmp), CLOCKS[args.clock])
            cells = []
            for name in VARIANTS[1:]:
                cells += [f"{med[name]:.0f}", f"{100 * (med['plain'] / med[name] - 1):+.1f}%"]
            cells.append(f"{1000 * (1 / med['every=1'] - 1 / med['plain']):.3f}")   # every step logged, less plain
            print(f"| {key} {WORKLOADS[key].title} | {med['plain']:.0f} | " + " | ".join(cells) + " |", flush=True)
    print(f"end: {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
