"""descent's text-generation defaults against the nanoGPT anchor, in one table.

    DESCENT_DATA=../shared/data .venv/bin/python bench/textgen.py [--models gru,transformer]
        [--threads 1,2] [--anchor] [--ratio] [--steps N]

Each run is descent's bundled scenario as it ships (textgen = the GRU, textgen_transformer =
nanoGPT's CPU recipe), trained through `Session` with the evaluation only at the end: the
validation loss on 200 batches of 12 windows (nanoGPT's estimate_loss), and the training time
the session counts (steps only: no evaluation, no compiling, no sampling), as the anchor's
train time does. `--anchor` also runs ../shared/bench/nanogpt-anchor/nanogpt_anchor.py (torch,
the same recipe) for the same thread counts, one process at a time. `--ratio` times single
steps of both engines interleaved in one process (same shapes, AdamW, clipping). `uptime` is printed before
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


RATIO_CODE = """
import json, time, numpy as np, torch
from descent.engine.backend import Trainer
from descent.engine.model import Net
from descent.engine.optim import OptimConfig
from descent.engine.threads import configure
threads = configure(); torch.set_num_threads(threads)
V, T, B = 65, 64, 12
rng = np.random.default_rng(0)
x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
specs = {"transformer": [{"type": "transformer", "vocab": V}],
         "gru": [{"type": "embedding", "dim": 64, "vocab": V}, {"type": "gru", "hidden": 256, "output": "all"},
                 {"type": "dense", "units": V}]}
class GRU(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.e, s.g, s.o = torch.nn.Embedding(V, 64), torch.nn.GRU(64, 256, batch_first=True), torch.nn.Linear(256, V)
    def forward(s, ids):
        return s.o(s.g(s.e(ids))[0])
out = {"threads": threads}
for name, spec in specs.items():
    ours = Trainer(spec, (T,), "cross_entropy", OptimConfig(kind="adamw", weight_decay=0.1, decay_on="matrices",
                                                           clip_norm=1.0))
    m = Net(spec, (T,), np.float32).torch_module() if name == "transformer" else GRU()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    def torch_step():
        loss = torch.nn.functional.cross_entropy(m(tx).view(-1, V), ty.view(-1))
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    def our_step():
        ours.step(x, y, time_grads=False)
    a, b = [], []
    for f in (torch_step, our_step):
        for _ in range(3):
            f()
    for _ in range(6):            # interleaved, so both see the same load
        for f, acc in ((torch_step, a), (our_step, b)):
            t0 = time.perf_counter()
            for _ in range(10):
                f()
            acc.append((time.perf_counter() - t0) / 10 * 1e3)
    out[name] = {"torch_ms": float(np.median(a)), "ours_ms": float(np.median(b)),
                 "ratio": float(np.median(np.array(b) / np.array(a)))}
print(json.dumps(out))
"""


def step_ratio(threads: int) -> dict:
    """Median ms per training step, ours and torch (the same model shapes and optimizer),
    interleaved in one process: a ratio that holds even on a loaded machine."""
    env = os.environ | {"DESCENT_THREADS": str(threads)}
    p = subprocess.run([sys.executable, "-c", RATIO_CODE], capture_output=True, text=True, env=env, cwd=ROOT)
    if p.returncode:
        raise SystemExit(f"ratio run failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="gru,transformer")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--anchor", action="store_true", help="also run the torch anchor script")
    p.add_argument("--steps", type=int, default=None, help="override the scenarios' step budget (a quick look)")
    p.add_argument("--ratio", action="store_true",
                   help="also time single steps, ours against torch, interleaved (a ratio that survives load)")
    args = p.parse_args()
    from descent.engine.data import data_dir

    data = data_dir(None) / "tinyshakespeare" / "input.txt"
    before = uptime()
    rows = []
    t0 = time.time()
    for model in [m for m in args.models.split(",") if m]:      # --models "" --ratio: the ratio alone
        for threads in (int(t) for t in args.threads.split(",")):
            r = run_descent(model, threads, args.steps)
            rows.append(("descent", model, r))
            print(f"descent {model} {threads} thr: val {r['loss']:.4f} in {r['train_s']:.1f} s", file=sys.stderr)
            if args.anchor:
                a = run_anchor(model, threads, data)
                rows.append(("torch anchor", model, a))
                print(f"anchor {model} {threads} thr: val {a['loss']:.4f} in {a['train_s']:.1f} s", file=sys.stderr)
    ratios = [step_ratio(int(t)) for t in args.threads.split(",")] if args.ratio else []
    after = uptime()
    print(f"uptime before: {before}")
    print(f"uptime after:  {after}  ({time.time() - t0:.0f} s in all)")
    print()
    print("| engine | model | steps | threads | val loss (200 batches) | train s | anchor (quiet, README) |")
    print("|---|---|---|---|---|---|---|")
    for engine, model, r in rows:
        print(f"| {engine} | {model} | {r['steps']} | {r['threads']} | {r['loss']:.4f} | {r['train_s']:.1f} | "
              f"{ANCHOR_FIGURES[model]} |")
    if ratios:
        print("\n| threads | model | torch ms/step | descent ms/step | descent / torch |")
        print("|---|---|---|---|---|")
        for r in ratios:
            for model in ("gru", "transformer"):
                m = r[model]
                print(f"| {r['threads']} | {model} | {m['torch_ms']:.1f} | {m['ours_ms']:.1f} | {m['ratio']:.2f} |")
    for engine, model, r in rows:
        if r.get("sample"):
            print(f"\n{engine} {model} sample: {r['sample']!r}")


if __name__ == "__main__":
    main()
