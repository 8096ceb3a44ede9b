"""Training speed: our engine against PyTorch CPU, side by side in one run.

    python bench/speed.py [--workloads 1,2a,...] [--repeats N] [--quick] [--no-compile] [--compile-runs N]
                          [--json PATH]
    python bench/speed.py --scenarios [NAMES]      (bundled scenarios end to end: bench/scenario_speed.py)

Every workload trains the same model on random data with our engine (engine.backend.Trainer,
float32, Adam, the dashboard's per-step statistics included) and with PyTorch eager on the CPU
(a plain zero_grad / forward / loss / backward / step loop, Adam default and fused=True, 1 and 2
threads). "ours NT" sets the engine's one thread setting (engine/threads.py) to N. Each workload
runs in a process of its own (its peak RSS is reported); inside it the variants take turns, block
by block, so a change in machine load hits all of them; the figure is the median steps/s over the
timed blocks after warm-up. Also measured in the same run: the float32 GEMM rate (1024^3 np.dot on
1 and 2 threads) and the JIT compile time with an empty and with a filled Numba cache (each in a
fresh subprocess, the median of --compile-runs). The load average is printed at start and end; a
run started above LOAD_LIMIT is marked not valid for the goals. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from compile_time import compile_probe, compile_times

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VOCAB = 50


@dataclass(frozen=True)
class Workload:
    title: str
    layers: list
    in_shape: tuple
    batch: int
    classes: int
    tokens: bool = False      # int64 token ids in 0..VOCAB-1 instead of float features
    density: float = 1.0      # share of non-zero features (bag-of-words counts below 1)

    def batches(self, rng, count=4):
        """`count` random (x, y) batches; labels uniform over the classes."""
        out = []
        for _ in range(count):
            shape = (self.batch,) + self.in_shape
            if self.tokens:
                x = rng.integers(0, VOCAB, shape, dtype=np.int64)
            elif self.density < 1:
                x = np.where(rng.random(shape) < self.density, rng.integers(1, 4, shape), 0).astype(np.float32)
            else:
                x = rng.standard_normal(shape).astype(np.float32)
            out.append((x, rng.integers(0, self.classes, self.batch, dtype=np.int64)))
        return out


def _seq(cell: dict, steps: int) -> Workload:
    layers = [{"type": "embedding", "dim": 32, "vocab": VOCAB}, cell, {"type": "dense", "units": VOCAB}]
    name = cell["type"].upper() if cell["type"] != "attention" else "self-attention"
    return Workload(f"{name} T{steps} (V50 E32 H64 B32)", layers, (steps,), 32, VOCAB, tokens=True)


MLP = [{"type": "dense", "units": 128, "activation": "relu"}, {"type": "dense", "units": 10}]
WORKLOADS = {
    "1": Workload("MLP 2000-64-2, batch 64",
                  [{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dense", "units": 2}],
                  (2000,), 64, 2),
    "1s": Workload("the same on spam-like input, 1% non-zero counts",
                   [{"type": "dense", "units": 64, "activation": "relu"}, {"type": "dense", "units": 2}],
                   (2000,), 64, 2, density=0.01),
    "2a": Workload("MLP 784-128-10, batch 64", MLP, (784,), 64, 10),
    "2b": Workload("MLP 784-128-10, batch 256", MLP, (784,), 256, 10),
    "3": Workload("conv 8@3x3 ReLU, pool 2, dense 10, batch 64",
                  [{"type": "conv2d", "filters": 8, "kernel": 3, "activation": "relu"},
                   {"type": "maxpool2d", "size": 2}, {"type": "flatten"}, {"type": "dense", "units": 10}],
                  (1, 28, 28), 64, 10),
    "4a": _seq({"type": "rnn", "hidden": 64}, 30),
    "4b": _seq({"type": "lstm", "hidden": 64}, 30),
    "4c": _seq({"type": "gru", "hidden": 64}, 30),
    "4d": _seq({"type": "lstm", "hidden": 64}, 100),
    "4e": _seq({"type": "attention", "dim": 64}, 100),
}


# ---- model arithmetic ------------------------------------------------------------------------

def forward_macs(layer, batch: int) -> int:
    """Multiply-adds of one forward pass of `layer` over a batch (products only; element-wise
    work, pooling and embedding lookups count zero). Attention counts the full T x T scores."""
    kind, ins, outs = layer.kind, layer.in_shape, layer.out_shape
    if kind == "dense":
        rows = int(np.prod(ins[:-1], dtype=np.int64)) if len(ins) > 1 else 1
        return batch * rows * ins[-1] * layer.units
    if kind == "conv2d":
        c, k = ins[0], layer.kernel
        return batch * int(np.prod(outs)) * c * k * k
    if kind in ("rnn", "lstm", "gru"):
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
        steps, width, h = ins[0], ins[1], layer.hidden
        dirs = 2 if layer.bidirectional else 1
        total = 0
        for i in range(layer.layers):
            w = width if i == 0 else h * dirs
            total += dirs * gates * (w * h + h * h)
        return batch * steps * total
    if kind == "attention":
        steps, width, d = ins[0], ins[1], layer.dim
        per_step = (width * d if width != d else 0) + 3 * d * d + 2 * steps * d + d * d + 2 * d * layer.ff
        return batch * steps * per_step
    if kind == "residual":
        return sum(forward_macs(sub, batch) for sub in layer.sublayers())
    return 0


def flops_per_step(net, batch: int) -> int:
    """The usual training estimate: 6 x forward multiply-adds (forward, dx and dW products)."""
    return 6 * sum(forward_macs(layer, batch) for layer in net.layers)


class blas_threads:
    """Limit NumPy's BLAS to `n` threads (threadpoolctl; a no-op without it)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            self.ctx = None
            return self
        self.ctx = threadpool_limits(limits=self.n, user_api="blas")
        self.ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


# ---- the variants ----------------------------------------------------------------------------

def layers_available(w: Workload) -> str | None:
    """None if every layer type of `w` exists, else the reason."""
    from descent.engine.model import REGISTRY

    for entry in w.layers:
        module = REGISTRY[entry["type"]].split(":")[0]
        if importlib.util.find_spec(f"descent.engine.{module}") is None:
            return "n/a (layer missing)"
    try:
        from descent.engine.model import Net

        Net(w.layers, w.in_shape, np.float32, 0)
    except (ImportError, AttributeError, NotImplementedError):
        return "n/a (layer missing)"
    except Exception as e:   # noqa: BLE001 - reported in the table
        return f"n/a ({type(e).__name__}: {e})"
    return None


class Ours:
    def __init__(self, w: Workload, data, threads: int):
        from descent.engine.backend import Trainer
        from descent.engine.optim import OptimConfig

        self.label = f"ours {threads}T"
        self.threads = threads
        self.trainer = Trainer(w.layers, w.in_shape, "cross_entropy", OptimConfig(kind="adam", lr=1e-3), 0, "float32")
        self.data = data
        self.i = 0

    def using(self):
        from descent.engine import threads

        return threads.using(self.threads)     # BLAS and the recurrent row threads alike

    def step(self):
        x, y = self.data[self.i % len(self.data)]
        self.i += 1
        # the step a session runs between logged steps: forward, backward, clipping norm, update.
        # Like torch's variants, no per-tensor norms or update ratios (a logged step adds them)
        self.trainer.step(x, y, time_grads=False)


class Torch:
    def __init__(self, w: Workload, data, threads: int, fused: bool):
        import torch

        from descent.engine.torch_backend import build_torch_model

        self.torch = torch
        self.label = f"torch {threads}T{' fused' if fused else ''}"
        self.threads = threads
        self.model = build_torch_model(w.layers, w.in_shape, "float32", 0)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=True if fused else None)
        self.loss = torch.nn.functional.cross_entropy
        self.data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]
        self.i = 0

    def using(self):
        self.torch.set_num_threads(self.threads)
        return contextlib.nullcontext()

    def step(self):
        x, y = self.data[self.i % len(self.data)]
        self.i += 1
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.model(x), y).backward()
        self.opt.step()


class Gemm:
    """1024^3 float32 np.dot as one more variant, so its rate is measured under the same load."""

    N = 1024

    def __init__(self, threads: int):
        self.label = f"gemm {threads}T"
        self.threads = threads
        rng = np.random.default_rng(0)
        self.a, self.b = (rng.standard_normal((self.N, self.N)).astype(np.float32) for _ in range(2))
        self.c = np.empty((self.N, self.N), np.float32)

    def using(self):
        return blas_threads(self.threads)

    def step(self):
        np.dot(self.a, self.b, out=self.c)

    @classmethod
    def gflops(cls, dots_per_s: float) -> float:
        return dots_per_s * 2 * cls.N ** 3 / 1e9


def make_variants(w: Workload, data, with_torch: bool):
    variants, notes = [Ours(w, data, 1), Ours(w, data, 2), Gemm(1), Gemm(2)], {}
    if with_torch:
        for threads, fused in ((1, False), (2, False), (1, True), (2, True)):
            label = f"torch {threads}T{' fused' if fused else ''}"
            try:
                variants.append(Torch(w, data, threads, fused))
            except Exception as e:   # noqa: BLE001 - a layer without a torch twin, or no fused Adam
                notes[label] = f"n/a ({type(e).__name__})"
    return variants, notes


def timed(v, seconds: float) -> tuple[int, float, float]:
    """Steps of `v` for about `seconds`: (steps, wall seconds, process CPU seconds)."""
    with v.using():
        v.step()                        # let the previous variant's spinning threads settle
        n, c0, t0 = 0, time.process_time(), time.perf_counter()
        end = t0 + seconds
        while True:
            v.step()
            n += 1
            t = time.perf_counter()
            if t >= end:
                return n, t - t0, time.process_time() - c0


def measure(variants, repeats: int, block_s: float) -> tuple[dict, dict]:
    """Per variant label, steps/s of every timed block and steps per CPU-second; the variants
    take turns block by block after a warm-up block each (compilation, caches, thread pools)."""
    for v in variants:
        timed(v, block_s)
    wall = {v.label: [] for v in variants}
    cpu = {v.label: [] for v in variants}
    for _ in range(repeats):
        for v in variants:
            n, w, c = timed(v, block_s)
            wall[v.label].append(n / w)
            cpu[v.label].append(n / max(c, 1e-9))
    return wall, cpu


# ---- report ----------------------------------------------------------------------------------

def machine() -> dict:
    info = {"date": datetime.datetime.now().isoformat(timespec="minutes"), "python": platform.python_version(),
            "numpy": np.__version__, "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    import numba

    info["numba"] = numba.__version__
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = sorted({f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads, "
                               f"{p.get('architecture')} kernels)"
                               for p in threadpool_info() if p.get("user_api") == "blas"})
    except ImportError:
        info["blas"] = []
    return info


def fmt(v) -> str:
    return f"{v:.0f}" if isinstance(v, (int, float)) else str(v)


LOAD_LIMIT = 0.3     # a run started above this 1-minute load average says nothing about the goals
COLUMNS = ["ours 1T", "ours 2T", "torch 1T", "torch 2T", "torch 1T fused", "torch 2T fused"]


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_workload(key: str, repeats: int, block_s: float, with_torch: bool) -> dict:
    """Every variant of one workload, in this process (a child of main, so that its peak RSS is its own)."""
    import resource

    w = WORKLOADS[key]
    missing = layers_available(w)
    if missing:
        return {"title": w.title, "status": missing}
    data = w.batches(np.random.default_rng(0))
    variants, notes = make_variants(w, data, with_torch)
    rates, cpu_rates = measure(variants, repeats, block_s)
    med = {label: statistics.median(r) for label, r in rates.items()}
    cpu_med = {label: statistics.median(r) for label, r in cpu_rates.items()}
    gemm = {t: Gemm.gflops(med.pop(f"gemm {t}T")) for t in (1, 2)}
    ours = max(med["ours 1T"], med["ours 2T"])
    torch_best = max((v for k, v in med.items() if k.startswith("torch")), default=None)
    flops = flops_per_step(variants[0].trainer.net, w.batch)
    return {"title": w.title, "steps_per_s": med, "blocks": rates, "steps_per_cpu_s": cpu_med, "notes": notes,
            "gemm_gflops": gemm, "ratio": ours / torch_best if torch_best else None, "flops_per_step": flops,
            "gemm_share": ours * flops / (max(gemm.values()) * 1e9), "dense": w.density == 1,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def workload_in_child(key: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", key, "--repeats", str(args.repeats)]
    cmd += ["--quick"] * args.quick + ["--no-torch"] * args.no_torch
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"title": WORKLOADS[key].title, "status": "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def row(key: str, r: dict) -> str:
    if "status" in r:
        return f"| {key} {r['title']} | {r['status']} |" + " |" * (len(COLUMNS) + 3)
    med, notes, gemm = r["steps_per_s"], r["notes"], r["gemm_gflops"]
    cells = [fmt(med.get(c, notes.get(c, "n/a"))) for c in COLUMNS]
    ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "n/a"
    share = f"{100 * r['gemm_share']:.0f}%" if r["dense"] else "- (sparse)"
    return (f"| {key} {r['title']} | " + " | ".join(cells) +
            f" | {ratio} | {gemm['1']:.0f} / {gemm['2']:.0f} | {share} | {r['peak_rss_mb']:.0f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated ids (default: all)")
    ap.add_argument("--repeats", type=int, default=None, help="timed blocks per variant (default 9; 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="short blocks and few repeats: a smoke run")
    ap.add_argument("--no-torch", action="store_true", help="our engine only")
    ap.add_argument("--no-compile", action="store_true", help="skip the cold/warm compile-time subprocesses")
    ap.add_argument("--compile-runs", type=int, default=None, help="cold and warm compile runs each, the median "
                    "reported (default 3; 1 with --quick)")
    ap.add_argument("--scenarios", nargs="?", const="", metavar="NAMES",
                    help="instead: time bundled scenarios end to end, numba against --backend torch "
                         "(comma-separated names; default all)")
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.scenarios is not None:
        from scenario_speed import main as scenarios_main

        return scenarios_main(args.scenarios, args.json)
    keys = [k.strip() for k in args.workloads.split(",") if k.strip()]
    unknown = [k for k in keys if k not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    if args.compile_probe:
        print(json.dumps(compile_probe({k: WORKLOADS[k] for k in keys}, layers_available)))
        return 0
    args.repeats = args.repeats or (3 if args.quick else 9)
    args.compile_runs = max(1, args.compile_runs or (1 if args.quick else 3))
    block_s = 0.1 if args.quick else 0.2
    with_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    if args.child:
        print(json.dumps(run_workload(args.child, args.repeats, block_s, with_torch)))
        return 0

    start_load = os.getloadavg()[0]
    info = machine()
    print(f"# descent speed, {info['date']}: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
          f"NumPy {info['numpy']}, Numba {info['numba']}, torch {info['torch']}; BLAS {', '.join(info['blas'])}")
    forced = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    if forced:
        # some machines set these for older OpenBLAS builds; NumPy's then runs slower kernels than
        # the processor has (Haswell's AVX2 instead of AVX-512: the 1T GEMM here 102-114 GFLOP/s
        # with them, 171-203 without, bench/README 2026-12-02)
        print("NumPy's OpenBLAS kernel is forced by " + ", ".join(f"{k}={v}" for k, v in forced.items()) +
              ": to measure the kernel this processor would get, run with"
              " `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")
    print(f"load average at start: {loadavg()}" +
          (f"  ** above {LOAD_LIMIT}: this run is NOT VALID for the goals **" if start_load > LOAD_LIMIT else ""))
    compile_res = {}
    if not args.no_compile:
        compile_res = compile_times(Path(__file__), keys, args.compile_runs)
        for phase, r in compile_res.items():
            if "error" in r:
                print(f"compile {phase}: failed: {r['error']}")
            else:
                each = ", ".join(f"{k} {v:.2f}" for k, v in r["each_s"].items())
                print(f"compile {phase}: {r['warmup_s']:.2f} s warm-up (+{r['import_s']:.2f} s imports), the median of "
                      f"{len(r['totals_s'])} runs (totals {', '.join(f'{t:.2f}' for t in r['totals_s'])} s); "
                      f"per workload, in order: {each}")

    print("\nsteps/s; each workload runs in its own process, whose peak RSS is the last column\n")
    print("| workload | " + " | ".join(COLUMNS) + " | ours / best torch | GEMM GFLOP/s 1T / 2T | share of GEMM |"
          " peak RSS MB |")
    print("|---" * (len(COLUMNS) + 5) + "|")
    results = {}
    for key in keys:
        results[key] = workload_in_child(key, args)
        print(row(key, results[key]), flush=True)
    print(f"\nload average at end: {loadavg()}" +
          (f"  (started at {start_load:.2f} > {LOAD_LIMIT}: not valid for the goals)" if start_load > LOAD_LIMIT
           else ""))
    print("\nOne thread, steps per CPU-second of this process (what a step costs, however busy the machine):\n")
    cpu_cols = ["ours 1T", "torch 1T", "torch 1T fused"]
    print("| workload | " + " | ".join(cpu_cols) + " | ours / best torch |")
    print("|---" * (len(cpu_cols) + 2) + "|")
    for key, r in results.items():
        if "steps_per_cpu_s" not in r:
            continue
        c = r["steps_per_cpu_s"]
        best = max((c[k] for k in cpu_cols[1:] if k in c), default=None)
        ratio = f"{c['ours 1T'] / best:.2f}x" if best else "n/a"
        print(f"| {key} | " + " | ".join(fmt(c.get(k, "n/a")) for k in cpu_cols) + f" | {ratio} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "load_start": start_load, "compile": compile_res,
                                               "workloads": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
