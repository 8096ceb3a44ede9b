"""Where a training step's time goes: each layer's forward and backward, the loss and the
optimizer, on one thread and on two, for one of bench/speed.py's workloads.

    .venv/bin/python bench/step_parts.py 2b            # MLP 784-128-10, batch 256
    .venv/bin/python bench/step_parts.py 4b --steps 500

The parts run as Trainer.step runs them (steps no one logs), each timed on its own, so the
total is a little above an untimed step; the last line is the untimed step for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from speed import WORKLOADS, loadavg  # noqa: E402


def parts(trainer, data, threads_n: int, steps: int) -> dict[str, float]:
    """Mean microseconds of each part over `steps` steps, after 100 steps of warm-up."""
    from descent.engine import threads
    from descent.engine.layer import Context
    from descent.engine.losses import loss_targets

    clock = time.perf_counter
    total: dict[str, float] = {}
    layers = trainer.net.layers
    with threads.using(threads_n):
        for i in range(steps + 100):
            if i == 100:
                total.clear()
            x, y = data[i % len(data)]
            t_step = clock()
            ctx = Context(train=True, rng=trainer.rng, mask=None, want_time_grads=False)
            for j, layer in enumerate(layers):
                t = clock()
                x = layer.forward(x, ctx)
                key = f"forward {j} {layer.kind}"
                total[key] = total.get(key, 0.0) + clock() - t
            t = clock()
            _, d = trainer.loss_fn(x, loss_targets(trainer.loss_name, y, trainer.dtype))
            total["loss"] = total.get("loss", 0.0) + clock() - t
            for j in reversed(range(len(layers))):
                t = clock()
                d = layers[j].backward(d, ctx)
                key = f"backward {j} {layers[j].kind}"
                total[key] = total.get(key, 0.0) + clock() - t
                if d is None:
                    break
            t = clock()
            trainer.optimizer.step(diagnostics=False)
            total["optimizer"] = total.get("optimizer", 0.0) + clock() - t
            total["step, parts timed"] = total.get("step, parts timed", 0.0) + clock() - t_step
    return {k: v / steps * 1e6 for k, v in total.items()}


def untimed(trainer, data, threads_n: int, steps: int) -> float:
    from descent.engine import threads

    with threads.using(threads_n):
        for i in range(100):
            trainer.step(*data[i % len(data)], time_grads=False)
        t = time.perf_counter()
        for i in range(steps):
            trainer.step(*data[i % len(data)], time_grads=False)
        return (time.perf_counter() - t) / steps * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", choices=sorted(WORKLOADS), help="a workload of bench/speed.py")
    ap.add_argument("--steps", type=int, default=2000, help="timed steps per thread count (default 2000)")
    args = ap.parse_args(argv)

    from descent.engine.backend import Trainer
    from descent.engine.optim import OptimConfig

    w = WORKLOADS[args.workload]
    data = w.batches(np.random.default_rng(0))
    trainer = Trainer(w.layers, w.in_shape, "cross_entropy", OptimConfig(kind="adam", lr=1e-3), 0, "float32")
    print(f"# {args.workload} {w.title}; load average at start: {loadavg()}")
    parts(trainer, data, 1, 50)                    # compile (or load) every kernel first
    one, two = parts(trainer, data, 1, args.steps), parts(trainer, data, 2, args.steps)
    print("\n| part | 1T us | 2T us | 1T / 2T |\n|---|---|---|---|")
    for key in one:
        print(f"| {key} | {one[key]:.1f} | {two[key]:.1f} | {one[key] / two[key]:.2f} |")
    a, b = untimed(trainer, data, 1, args.steps), untimed(trainer, data, 2, args.steps)
    print(f"| step, untimed | {a:.1f} | {b:.1f} | {a / b:.2f} |")
    print(f"\nload average at end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
