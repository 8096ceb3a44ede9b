"""End-to-end speed of the bundled scenarios: `descent run NAME --steps N` with our numba backend
and with `--backend torch`, steps/s read from each run's summary.json (training only: loading,
compiling and evaluation are outside its clock), peak RSS of each run's process (os.wait4).

    python bench/speed.py --scenarios [NAMES]      (comma-separated; default: every bundled one)

Runs go one after another, numba then torch per scenario, each in a fresh process with the
on-disk Numba cache of the environment (warm after the first run of a machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = {"digits": 400, "digits_cnn": 100, "digits8x8": 400, "nile": 100, "spam": 400, "spam_rnn": 200}
DEFAULT_STEPS = 200
LOAD_LIMIT = 0.3


def bundled() -> list[str]:
    return sorted(p.stem for p in (ROOT / "scenarios").glob("*.toml"))


def run_one(name: str, backend: str, steps: int, out: Path) -> dict:
    """One run in a fresh process: its summary.json plus peak RSS (MB) and wall seconds."""
    cmd = [sys.executable, "-c", "import sys; from descent.tui.cli import main; sys.exit(main())",
           "run", name, "--steps", str(steps), "--out", str(out), "--backend", backend]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)                     # this child's own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        last = (err.read().strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    summary = out / "summary.json"
    if proc.returncode != 0 or not summary.exists():
        return {"error": last}
    res = json.loads(summary.read_text())
    return {"steps_per_s": res["steps_per_s"], "wall_time_s": res["wall_time_s"],
            "metrics": res.get("metrics", {}), "peak_rss_mb": usage.ru_maxrss / 1024}


def main(names: str = "", json_path: str | None = None) -> int:
    chosen = [n.strip() for n in names.split(",") if n.strip()] or bundled()
    unknown = [n for n in chosen if n not in bundled()]
    if unknown:
        print(f"error: unknown scenario(s) {', '.join(unknown)}; bundled: {', '.join(bundled())}", file=sys.stderr)
        return 2
    start = os.getloadavg()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in start)}" +
          (f"  ** above {LOAD_LIMIT}: this run is NOT VALID for the goals **" if start[0] > LOAD_LIMIT else ""))
    print("\n| scenario | steps | numba steps/s | torch steps/s | numba / torch | numba loss | torch loss "
          "| peak RSS MB numba / torch |")
    print("|---" * 8 + "|")
    results = {}
    with tempfile.TemporaryDirectory(prefix="descent-scenario-speed-") as tmp:
        for name in chosen:
            steps = STEPS.get(name, DEFAULT_STEPS)
            r = {b: run_one(name, b, steps, Path(tmp) / f"{name}-{b}") for b in ("numba", "torch")}
            results[name] = r
            rate = {b: r[b].get("steps_per_s") for b in r}
            ratio = f"{rate['numba'] / rate['torch']:.2f}x" if rate["numba"] and rate["torch"] else "n/a"
            cells = [f"{rate[b]:.0f}" if rate[b] else r[b]["error"] for b in ("numba", "torch")]
            loss = [f"{r[b]['metrics'].get('loss', float('nan')):.4f}" if "metrics" in r[b] else "-"
                    for b in ("numba", "torch")]
            rss = " / ".join(f"{r[b]['peak_rss_mb']:.0f}" if "peak_rss_mb" in r[b] else "-" for b in ("numba", "torch"))
            print(f"| {name} | {steps} | {cells[0]} | {cells[1]} | {ratio} | {loss[0]} | {loss[1]} | {rss} |",
                  flush=True)
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if json_path:
        Path(json_path).write_text(json.dumps({"load_start": start, "scenarios": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(",".join(sys.argv[1:])))
