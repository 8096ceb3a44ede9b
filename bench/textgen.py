"""descent's text-generation defaults against the nanoGPT anchor, in one table.

    DESCENT_DATA=../shared/data .venv/bin/python bench/textgen.py [--models gru,transformer]
        [--threads 1,2] [--anchor] [--steps N]

Each run is descent's bundled scenario as it ships (textgen = the GRU, textgen_transformer =
nanoGPT's CPU recipe), trained through `Session` with the evaluation only at the end: the
validation loss on 200 batches of 12 windows (nanoGPT's estimate_loss), and the training time
the session counts (steps only: no evaluation, no compiling, no sampling), as the anchor's
train time does. `--anchor` also runs ../shared/bench/nanogpt-anchor/nanogpt_anchor.py (torch,
the same recipe) for the same thread counts, one process at a time. `uptime` is printed before
and after: the table means something only on a quiet machine (a load average near 0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANCHOR_PATH = Path("shared") / "bench" / "nanogpt-anchor" / "nanogpt_anchor.py"   # ../shared beside the repo
ANCHOR = next((d / ANCHOR_PATH for d in ROOT.parents if (d / ANCHOR_PATH).is_file()), ROOT.parent / ANCHOR_PATH)
SCENARIOS = {"gru": "textgen", "transformer": "textgen_transformer"}
ANCHOR_FIGURES = {"gru": "1.79 in 38-52 s", "transformer": "1.92 in 66-77 s (2 thr), 98-100 s (1 thr)"}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_descent(model: str, threads: int, steps: int | None) -> dict:
    """One run in a child process, so DESCENT_THREADS takes effect from the start."""
    code = f"""
import json, sys
from descent.engine.scenario import load
from descent.engine.session import Session
over = ["evaluation.every=1000000"] + ([f"training.steps={steps}"] if {steps!r} else [])
sc = load({str(ROOT / "scenarios" / (SCENARIOS[model] + ".toml"))!r}, over)
s = Session(sc)
list(s.prepare())
final = None
for r in s.run():
    if type(r).__name__ == "Evaluation":
        final = r
print(json.dumps({{"loss": final.metrics["loss"], "train_s": s.elapsed, "steps": s.step,
                  "threads": s.threads, "compile_s": s.compile_seconds,
                  "sample": final.details.get("sample", "")[:160]}}))
"""
    env = os.environ | {"DESCENT_THREADS": str(threads)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    if p.returncode:
        raise SystemExit(f"descent {model} failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_anchor(model: str, threads: int, data: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "anchor.json"
        args = [sys.executable, str(ANCHOR), "--model", "gpt" if model == "transformer" else "gru",
                "--threads", str(threads), "--data", str(data), "--json", str(out), "--eval_interval", "100000",
                "--num_samples", "1"]
        p = subprocess.run(args, capture_output=True, text=True, cwd=ANCHOR.parent)
        if p.returncode:
            raise SystemExit(f"anchor {model} failed:\n{p.stderr[-2000:]}")
        d = json.loads(out.read_text())
    return {"loss": d["evals"][-1]["val"], "train_s": d["train_time_s"], "steps": d["iters"], "threads": threads}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="gru,transformer")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--anchor", action="store_true", help="also run the torch anchor script")
    p.add_argument("--steps", type=int, default=None, help="override the scenarios' step budget (a quick look)")
    args = p.parse_args()
    from descent.engine.data import data_dir

    data = data_dir(None) / "tinyshakespeare" / "input.txt"
    before = uptime()
    rows = []
    t0 = time.time()
    for model in args.models.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            r = run_descent(model, threads, args.steps)
            rows.append(("descent", model, r))
            print(f"descent {model} {threads} thr: val {r['loss']:.4f} in {r['train_s']:.1f} s", file=sys.stderr)
            if args.anchor:
                a = run_anchor(model, threads, data)
                rows.append(("torch anchor", model, a))
                print(f"anchor {model} {threads} thr: val {a['loss']:.4f} in {a['train_s']:.1f} s", file=sys.stderr)
    after = uptime()
    print(f"uptime before: {before}")
    print(f"uptime after:  {after}  ({time.time() - t0:.0f} s in all)")
    print()
    print("| engine | model | steps | threads | val loss (200 batches) | train s | anchor (quiet, README) |")
    print("|---|---|---|---|---|---|---|")
    for engine, model, r in rows:
        print(f"| {engine} | {model} | {r['steps']} | {r['threads']} | {r['loss']:.4f} | {r['train_s']:.1f} | "
              f"{ANCHOR_FIGURES[model]} |")
    for engine, model, r in rows:
        if r.get("sample"):
            print(f"\n{engine} {model} sample: {r['sample']!r}")


if __name__ == "__main__":
    main()
