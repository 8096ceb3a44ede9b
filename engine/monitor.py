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
|W_new - W_old| / |W_new| per tensor, drops the copy, reads every number of the step (from an
accelerator in one transfer, the one sync of a logged step) and hands a `Step` record to the writer
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
        self._names, self._params = [n for n, _ in self.named], [p for _, p in self.named]
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
            named = self._with_grads()
            params = named[1]
            grad_factor, input_factor = unscaled(self.scaler, optimizer)
            grads = self._norms([q.grad for q in params])
            if grad_factor is not None and grads:      # in float64, as the figures always were
                grads = list((torch.stack(grads).to(self.device, stat_dtype(self.device)) * grad_factor).unbind())
            snapshot = [q.clone() for q in params] if self.update_ratios else None
            times = {}
            for module, (per_step, lengths) in self.taps.take().items():
                mean, ratio = time_stats(per_step, lengths)
                times[module] = (mean if input_factor is None else mean * input_factor, ratio)
            if isinstance(loss, torch.Tensor):
                loss = loss.detach() if loss.dim() == 0 else loss.detach().reshape(-1)[0]
        self._pending = {"step": self.step_count, "epoch": self._epoch, "loss": loss, "names": named[0],
                         "params": params, "grads": grads, "snapshot": snapshot, "times": times,
                         "lrs": [float(g["lr"]) for g in optimizer.param_groups], "optimizer": optimizer}

    def _with_grads(self) -> tuple[list, list]:
        """(names, tensors) of the parameters that have a gradient this step; the lists made once
        at the start serve every step on which all of them have one."""
        if all(q.grad is not None for q in self._params):
            return self._names, self._params
        kept = [(n, q) for n, q in self.named if q.grad is not None]
        return [n for n, _ in kept], [q for _, q in kept]

    def _norms(self, tensors: list) -> list:
        """||t|| of each tensor, 0-d tensors where they lie (no sync): one fused pass where all are
        dense float32/float64 on one device, else monitor_taps.norms on the Monitor's device."""
        import torch

        plain, device = (torch.float32, torch.float64), tensors[0].device if tensors else None
        if tensors and all(t.dtype in plain and t.layout == torch.strided and t.device == device for t in tensors):
            return list(torch._foreach_norm(tensors))     # one pass, as clip_grad_norm_ does
        return list(norms(tensors, self.device).unbind())

    def _finish(self) -> None:
        import torch

        p, self._pending = self._pending, None
        loss = p["loss"]
        with torch.no_grad():
            params, snapshot = p["params"], p.pop("snapshot")
            if snapshot:
                torch._foreach_sub_(snapshot, params)        # in place: no second copy
            measured_update = bool(snapshot)
            figures = p["grads"] + self._norms(params + (snapshot or []))     # weights, then updates
            del snapshot
            if isinstance(loss, torch.Tensor):
                figures.append(loss)
            series = [t for pair in p["times"].values() for t in pair]
            flat = _read(figures, series)
        k = len(p["names"])
        grads, weights = flat[:k], flat[k:2 * k]
        pos = 2 * k
        updates = None
        if measured_update:
            updates, pos = flat[pos:pos + k], pos + k
        if isinstance(loss, torch.Tensor):
            loss, pos = flat[pos], pos + 1
        else:
            loss = float(loss)
        times, ratios = {}, {}
        for module, (mean, _) in p["times"].items():
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


_STEP_FIELDS = tuple(f.name for f in fields(Step))


def _shallow_json(record: Step) -> dict:
    """`records.to_json` without `asdict`'s deep copy of every list (a third of a logged step's
    cost on a small model): the same dict for a record holding plain values, as a Step does."""
    return {"kind": "step", **{name: getattr(record, name) for name in _STEP_FIELDS}}


def _read(scalars: list, series: list) -> list[float]:
    """The numbers of 0-d `scalars` then 1-D `series`, as floats: on an accelerator one stacked
    tensor read in one transfer (the one sync of a logged step); on the CPU, where reading a
    number moves nothing, each where it lies (stacking them would cost more than the reads)."""
    import torch

    if all(t.device.type == "cpu" for t in scalars) and all(t.device.type == "cpu" for t in series):
        return [t.item() for t in scalars] + [x for t in series for x in t.tolist()]
    device = (scalars or series)[0].device
    parts = [torch.stack(_on(scalars, device))] if scalars else []
    return torch.cat(parts + _on(series, device)).tolist()


def _on(tensors: list, device) -> list:
    """The tensors, each moved to `device` where it lies elsewhere (a model split over devices)."""
    return tensors if all(t.device == device for t in tensors) else [t.to(device) for t in tensors]
