"""Fine-tuning against training from scratch, the check of the `finetune` scenario (issue 13):

    python bench/finetune.py [--seeds 0,1,2] [--labelled 100] [--data DIR]

Pretrains `sms_lm` once (kept under the runs home, as `descent finetune` does), then runs
`finetune` at its defaults once per seed (training.seed: initialisation and batch order; the 100
labelled messages and the test split stay fixed), and prints each seed's test MCC for the
fine-tuned model and for the same model trained from scratch on the same batches, and their means.
The check: the mean gain is at least 0.05 MCC.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from descent.engine.records import Compiling, Evaluation
from descent.engine.scenario import load, resolve_name
from descent.engine.session import Session


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--labelled", type=int, default=100)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        scenario = load(resolve_name("finetune"), overrides=[f"training.seed={seed}", f"data.labelled={args.labelled}"])
        session = Session(scenario, data_root=args.data)
        t0 = time.perf_counter()
        for rec in session.prepare():
            if isinstance(rec, Compiling) and rec.message.startswith("pretraining") and rec.message.endswith("0"):
                print(f"  {rec.message}", flush=True)
        pretrain_s = time.perf_counter() - t0
        last = [r for r in session.run() if isinstance(r, Evaluation)][-1]
        tuned, scratch = last.metrics["mcc"], last.details["scratch"]["mcc"]
        rows.append((seed, tuned, scratch, pretrain_s, session.elapsed))
    print(f"\n{'seed':>4}  {'fine-tuned MCC':>14}  {'scratch MCC':>11}  {'gain':>6}  {'prepare s':>9}  {'train s':>7}")
    for seed, tuned, scratch, pre, train in rows:
        print(f"{seed:>4}  {tuned:>14.4f}  {scratch:>11.4f}  {tuned - scratch:>+6.3f}  {pre:>9.1f}  {train:>7.1f}")
    mt, ms = statistics.mean(r[1] for r in rows), statistics.mean(r[2] for r in rows)
    print(f"mean  {mt:>14.4f}  {ms:>11.4f}  {mt - ms:>+6.3f}   check (gain >= 0.05): {'met' if mt - ms >= 0.05 else 'MISSED'}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
