"""`Monitor`: descent's views on the user's own PyTorch training loop, written as a run folder that
`descent watch`, `descent runs` and the dashboard read like one the engine's session wrote.

    from descent import Monitor

    with Monitor(model, "runs/mine", every=10) as monitor:
        for x, y in batches:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            monitor.step(loss, optimizer)        # after backward, before optimizer.step()
            optimizer.step()
        monitor.evaluate({"accuracy": acc})      # any time: an Evaluation record at this step

Call `step` once per optimizer step, after the backward pass and before `optimizer.step()` (or
`scaler.step(optimizer)`). Every `every`-th call is a logged step. Then `step` measures the
gradients (per tensor, unscaled when `scaler=` is given), keeps one copy of the parameters it
measured and arms a hook on the optimizer; when `optimizer.step()` returns, the hook measures
|W_new - W_old| / |W_new| per tensor, drops the copy, reads every number of the step from the
device in one transfer (the one sync of a logged step) and hands a `Step` record to the writer
thread (engine/monitor_files.py: metrics.jsonl within a quarter second). A step the GradScaler skips (non-finite
gradients) leaves no record; it is counted in summary.json's `skipped_steps`.
`update_ratios=False` never copies the parameters. Called after `optimizer.step()` instead,
`step` would pair this step's gradients with the next step's update: keep the order above.
Gradients are measured before any clipping the loop does after `step` (as the session reports
the norm before clipping).

Unlogged steps cost one counter and the recurrent taps' early return (engine/monitor_taps.py);
nothing is kept between steps but numbers. The records are engine.records' `Step`, `Evaluation`,
`Alarm` (engine.alarms, also printed on stderr) and `Finished`/`Stopped` at close, serialized
with `to_json` as the session does. One key is added to a Step line only when the optimizer's
param groups have different learning rates: `lr_groups`, every group's rate (`lr` is group 0's).
The folder is a descent run folder (engine.rundir: lock, format version in summary.json and the
checkpoint); its scenario.toml describes the model ([monitor]) but is not a scenario descent can
train, so `descent resume` does not apply. torch is imported only inside functions.
"""

from __future__ import annotations

import json
import math
import sys
import time
import weakref
from dataclasses import fields
from pathlib import Path

from .alarms import GradMonitor
from .errors import DescentError
from .monitor_files import Lines, describe, shut, toml
from .monitor_taps import InputTaps, norms, stat_dtype, time_stats, unscaled
from .records import Evaluation, Finished, Step, Stopped, to_json
from .rundir import CHECKPOINT, FORMAT, SCENARIO, SUMMARY, RunFolder, versions
from .runlock import RunExists



class Monitor:
    def __init__(self, model, run_dir, every: int = 10, *, name: str | None = None, scaler=None,
                 update_ratios: bool = True, steps_per_epoch: int | None = None, force: bool = False):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise DescentError(f"Monitor: every must be a whole number >= 1, got {every!r}")
        self.model, self.every, self.scaler = model, every, scaler
        self.update_ratios, self.steps_per_epoch = update_ratios, steps_per_epoch
        self.name = name or type(model).__name__
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.device = self.named[0][1].device if self.named else None
        self.taps = InputTaps(model)
        self.taps.active = every == 1
        self.alarms = GradMonitor(recurrent=bool(self.taps.modules))
        self.step_count = self.logged_steps = self.skipped_steps = 0
        self.last_eval: Evaluation | None = None
        self._pending: dict | None = None
        self._hooks: dict[int, object] = {}          # id(optimizer) -> its post-step hook handle
        self._epoch = 0.0
        self.closed = False
        self.folder = RunFolder(run_dir)
        try:
            self.folder.open(toml(describe(model, self.name, every)), force=force)
        except RunExists:
            raise DescentError(f"{self.folder.path}: already holds a run; give Monitor another run_dir, "
                               f"or force=True to replace it") from None
        self._start = time.perf_counter()
        self._window = (0, self._start)
        self._lines = Lines(self.folder)
        self._finalizer = weakref.finalize(self, shut, self._lines, self.folder)   # at exit: lines out, lock off

    # ---- the training loop's calls -------------------------------------------------------------
    def step(self, loss, optimizer, *, epoch: float | None = None) -> None:
        """After `loss.backward()`, before `optimizer.step()`: see the module docstring."""
        self._check_open()
        if self._pending is not None:       # the optimizer did not step (a skipped AMP step)
            self._finish()
        self._attach(optimizer)
        self.step_count += 1
        n = self.step_count
        if epoch is not None:
            self._epoch = float(epoch)
        elif self.steps_per_epoch:
            self._epoch = n / self.steps_per_epoch
        if n % self.every == 0:
            self._measure(loss, optimizer)
        self.taps.active = (n + 1) % self.every == 0

    def evaluate(self, metrics: dict, *, split: str = "test", details: dict | None = None) -> Evaluation:
        """Log evaluation metrics (accuracy, loss, ...) at the current step."""
        self._check_open()
        if not hasattr(metrics, "items"):
            raise DescentError(f"Monitor.evaluate: metrics must be a dict of names to numbers, got {metrics!r}")
        values = {}
        for key, value in metrics.items():
            try:
                values[str(key)] = float(value)
            except (TypeError, ValueError):
                raise DescentError(f"Monitor.evaluate: metric {key!r} is {value!r}, not a number") from None
        if self._pending is not None:
            self._finish()
        record = Evaluation(self.step_count, round(self._epoch, 4), split, values, dict(details or {}))
        self.last_eval = record
        self._write(to_json(record))
        return record

    def checkpoint(self, path=None) -> Path:
        """The model's state_dict, under torch's names, as checkpoint.npz (atomic)."""
        self._check_open()
        import torch

        if self._pending is not None:
            self._finish()
        arrays = {}
        for key, value in self.model.state_dict().items():
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu()
                arrays[key] = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
        path = Path(path) if path is not None else self.folder.path / CHECKPOINT
        self.folder.save_checkpoint(path, arrays, {"step": self.step_count, "source": "monitor",
                                                   "scenario": self.name, "backend": "torch"})
        return path

    def close(self, status: str = "finished") -> None:
        """Write the last records and summary.json, remove the hooks, release the folder."""
        if self.closed:
            return
        try:
            if self._pending is not None:
                self._finish()
            summary = self.summary(status)
            elapsed = time.perf_counter() - self._start
            end = Finished(self.step_count, elapsed, summary) if status == "finished" else Stopped(self.step_count)
            self._write(to_json(end))
            self._lines.stop()
            self.folder.write_text(SUMMARY, json.dumps(summary, indent=2, default=float) + "\n")
        finally:
            self.closed = True
            self._lines.stop(check=False)
            self.taps.remove()
            for handle in self._hooks.values():
                handle.remove()
            self._hooks.clear()
            self.folder.close()
            self._finalizer.detach()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.close("finished" if exc_type is None else "stopped")

    def summary(self, status: str) -> dict:
        elapsed = time.perf_counter() - self._start
        try:
            import torch

            threads = torch.get_num_threads()
        except ImportError:
            threads = None
        return {"status": status, "scenario": self.name, "backend": "torch", "source": "monitor", "seed": None,
                "steps": self.step_count, "epochs": round(self._epoch, 4), "wall_time_s": round(elapsed, 3),
                "steps_per_s": round(self.step_count / elapsed, 2) if elapsed > 0 else 0.0, "compile_s": 0.0,
                "clipped_steps": 0, "metrics": self.last_eval.metrics if self.last_eval else {},
                "every": self.every, "logged_steps": self.logged_steps, "skipped_steps": self.skipped_steps,
                "device": str(self.device), "format": FORMAT, "threads": threads, "versions": versions()}

    # ---- a logged step ----------------------------------------------------------------------------
    def _attach(self, optimizer) -> None:
        if id(optimizer) in self._hooks:
            return
        self._hooks[id(optimizer)] = optimizer.register_step_post_hook(self._after_update)
        self.folder.write_text(SCENARIO, toml(describe(self.model, self.name, self.every, optimizer)))

    def _after_update(self, optimizer, _args, _kwargs) -> None:
        if self._pending is not None and self._pending["optimizer"] is optimizer:
            self._finish()

    def _measure(self, loss, optimizer) -> None:
        import torch

        with torch.no_grad():
            named = [(n, p) for n, p in self.named if p.grad is not None]
            params = [p for _, p in named]
            grad_factor, input_factor = unscaled(self.scaler, optimizer)
            grads = norms([p.grad for p in params], self.device)
            if grad_factor is not None:
                grads = grads * grad_factor
            snapshot = [p.detach().clone() for p in params] if self.update_ratios else None
            times = {}
            for module, (per_step, lengths) in self.taps.take().items():
                mean, ratio = time_stats(per_step, lengths)
                times[module] = (mean if input_factor is None else mean * input_factor, ratio)
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().reshape(-1)[:1]
        self._pending = {"step": self.step_count, "epoch": self._epoch, "loss": loss, "names": [n for n, _ in named],
                         "params": params, "grads": grads, "snapshot": snapshot, "times": times,
                         "lrs": [float(g["lr"]) for g in optimizer.param_groups], "optimizer": optimizer}

    def _finish(self) -> None:
        import torch

        p, self._pending = self._pending, None
        with torch.no_grad():
            params = [q.detach() for q in p["params"]]
            measured_update = bool(p["snapshot"])
            if measured_update:
                torch._foreach_sub_(p["snapshot"], params)        # in place: no second copy
            parts = [p["grads"], norms(params + (p["snapshot"] or []), self.device)]   # weights, then updates
            p["snapshot"] = None
            if isinstance(p["loss"], torch.Tensor):
                parts.append(p["loss"])
            for mean, ratio in p["times"].values():
                parts += [mean, ratio]
            device = self.device if self.device is not None else torch.device("cpu")
            flat = torch.cat([t.reshape(-1).to(device, stat_dtype(device)) for t in parts]).cpu().tolist()
        k = len(p["names"])
        grads, weights = flat[:k], flat[k:2 * k]
        pos = 2 * k
        updates = None
        if measured_update:
            updates, pos = flat[pos:pos + k], pos + k
        loss = float(p["loss"]) if not isinstance(p["loss"], torch.Tensor) else flat[pos]
        pos += isinstance(p["loss"], torch.Tensor)
        times, ratios = {}, {}
        for module, (mean, ratio) in p["times"].items():
            T = mean.numel()
            times[module], ratios[module] = flat[pos:pos + T], flat[pos + T:pos + 2 * T]
            pos += 2 * T
        if self.scaler is not None and not all(math.isfinite(g) for g in grads):
            self.skipped_steps += 1          # the scaler skips this update and lowers its scale
            return
        self._record(p, loss, grads, weights, updates, times, ratios)

    def _record(self, p, loss, grads, weights, updates, times, ratios) -> None:
        now = time.perf_counter()
        last_step, last_time = self._window
        self._window = (p["step"], now)
        names = p["names"]
        step = Step(step=p["step"], epoch=round(p["epoch"], 4), loss=loss, lr=p["lrs"][0] if p["lrs"] else math.nan,
                    grad_norm=math.sqrt(sum(g * g for g in grads)), param_norm=math.sqrt(sum(w * w for w in weights)),
                    grad_norms=dict(zip(names, grads)),
                    update_ratios={n: u / max(w, 1e-12) for n, u, w in zip(names, updates, weights)} if updates else {},
                    time_grad_norms=times or None, steps_per_s=(p["step"] - last_step) / max(now - last_time, 1e-9),
                    elapsed=now - self._start, time_grad_ratio=ratios or None)
        line = _shallow_json(step)
        if len(set(p["lrs"])) > 1:
            line["lr_groups"] = p["lrs"]
        self._write(line)
        self.logged_steps += 1
        alarm = self.alarms.check(step)
        if alarm is not None:
            self._write(to_json(alarm))
            print(f"descent: warning: {alarm.text}", file=sys.stderr)

    def _write(self, record: dict) -> None:
        self._lines.put(record)

    def _check_open(self) -> None:
        if self.closed:
            raise DescentError(f"Monitor for {self.folder.path} is closed")


def _shallow_json(record) -> dict:
    """`records.to_json` without `asdict`'s deep copy of every list (a third of a logged step's
    cost on a small model): the same dict for a record holding plain values, as a Step does."""
    return {"kind": type(record).__name__.lower(), **{f.name: getattr(record, f.name) for f in fields(record)}}
