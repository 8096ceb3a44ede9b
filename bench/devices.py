"""Where the torch backend trains, measured: one scenario on the CPU, on CUDA (one process), and
under torchrun (2 gloo processes; 2 nccl processes when there are 2 GPUs). Prints one line a run
(steps/s, the final loss, the largest relative loss difference to the CPU run) for bench/README.md.

    python bench/devices.py [--scenario digits8x8] [--steps 500]

Needs no GPU: the CUDA runs are skipped, saying why, where torch sees none.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["kind"] == "step"}


def train(label, cmd, out: Path, reference=None):
    p = subprocess.run(cmd + ["--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       env=os.environ | {"OMP_NUM_THREADS": "1"})
    if p.returncode != 0:
        print(f"{label:<28} failed (rc {p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
        return None
    summary = json.loads((out / "summary.json").read_text())
    got = losses(out)
    diff = "" if reference is None else \
        f"  max rel loss diff vs cpu {max(abs(got[s] - reference[s]) / abs(reference[s]) for s in reference):.1e}"
    print(f"{label:<28} {summary['device']:<7} {summary['steps_per_s']:>8.1f} steps/s  "
          f"final loss {got[max(got)]:.4f}{diff}")
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="digits8x8")
    ap.add_argument("--steps", type=int, default=500)
    args = ap.parse_args()
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    print(f"torch {torch.__version__}, {cuda} CUDA device(s), load average {os.getloadavg()[0]:.2f}")
    run = [sys.executable, "-m", "descent.tui.cli", "run", args.scenario, "--backend", "torch",
           "--steps", str(args.steps)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "descent.tui.cli", "run", args.scenario, "--backend", "torch", "--steps", str(args.steps)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cpu = train("1 process, cpu", run + ["--device", "cpu"], tmp / "cpu")
        train("2 processes, gloo, cpu", torchrun + ["--device", "cpu"], tmp / "gloo", cpu)
        if not cuda:
            print("cuda: skipped, torch sees no CUDA device")
        else:
            train("1 process, cuda", run + ["--device", "cuda"], tmp / "cuda", cpu)
            if cuda >= 2:
                train("2 processes, nccl, cuda", torchrun + ["--device", "cuda"], tmp / "nccl", cpu)
            else:
                print("2 processes, nccl: skipped, NCCL needs a GPU a process and there is 1")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
