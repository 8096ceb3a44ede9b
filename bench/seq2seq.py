"""The seq2seq lesson's checks, measured: attention against none on the same budget.

    python bench/seq2seq.py                       # the bundled scenario, attention dot vs none
    python bench/seq2seq.py --steps 3000 --threads 2 --set model.layers[0].cell=lstm

Each run trains scenarios/seq2seq.toml (its budget, or --steps) and then evaluates on a fresh
test split of --test sentences (--test / max_len per length), printing exact-sequence accuracy
by input length, the worst length, the mean over the longest 10 lengths, and the training time.
The issue's checks: with attention >= 99% at every length; without, >= 30 points lower at the
longest lengths; each run within 10 minutes on 2 cores. Prints `uptime` first: the machine's load
changes the times (not the accuracies, which depend on the seed only).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time


def run(attention: str, steps: int | None, test: int, sets: list[str]) -> dict:
    import numpy as np

    from descent.engine.scenario import load
    from descent.engine.scenario.discovery import bundled_dir
    from descent.engine.session import Session

    sc = load(bundled_dir() / "seq2seq.toml",
              [f"model.layers[0].attention={attention}", f"data.test_size={test}",
               "evaluation.max_samples=0", "evaluation.every=1000000", *sets])
    session = Session(sc)
    for _ in session.prepare():
        pass
    t0 = time.perf_counter()
    final = None
    for record in session.run(steps=steps):
        if type(record).__name__ == "Evaluation":
            final = record
    train_s = time.perf_counter() - t0
    by = final.details["by_length"]
    acc = np.array(by["accuracy"])
    return {"attention": attention, "steps": session.step, "train_s": session.elapsed, "wall_s": train_s,
            "lengths": by["length"], "accuracy": acc, "exact": final.metrics["sequence_accuracy"],
            "token": final.metrics["token_accuracy"], "worst": float(acc.min()),
            "longest10": float(acc[-10:].mean()), "threads": session.threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the scenario's)")
    ap.add_argument("--test", type=int, default=4000, help="test sentences (default 4000, 100 per length)")
    ap.add_argument("--threads", type=int, default=2, help="DESCENT_THREADS (default 2)")
    ap.add_argument("--attention", default="dot,none", help="comma-separated runs (default dot,none)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE scenario override")
    args = ap.parse_args()
    os.environ["DESCENT_THREADS"] = str(args.threads)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    results = [run(a, args.steps, args.test, args.sets) for a in args.attention.split(",")]
    print(f"{'attention':>10} {'steps':>6} {'train s':>8} {'exact':>6} {'token':>6} {'worst len':>9} "
          f"{'longest 10':>10}")
    for r in results:
        print(f"{r['attention']:>10} {r['steps']:>6} {r['train_s']:>8.0f} {r['exact']:>6.3f} {r['token']:>6.3f} "
              f"{r['worst']:>9.3f} {r['longest10']:>10.3f}")
    print("exact-sequence accuracy by input length:")
    print("length " + " ".join(f"{n:>4}" for n in results[0]["lengths"]))
    for r in results:
        print(f"{r['attention'][:6]:>6} " + " ".join(f"{a * 100:>4.0f}" for a in r["accuracy"]))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
