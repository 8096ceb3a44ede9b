"""What `engine.monitor.Monitor` writes besides its numbers: the metrics.jsonl writer thread, and the
[monitor] description of the model that scenario.toml holds."""

from __future__ import annotations

import json
import queue
import threading

from .monitor_taps import recurrent_modules
from .rundir import RunFolder

DESCRIBE_CHARS = 4000            # repr(model) kept in scenario.toml up to this length
FLUSH_S = 0.25                   # the most a record waits to be written to metrics.jsonl


class Lines(threading.Thread):
    """metrics.jsonl written off the training thread, a batch at a time: JSON and the file's
    system calls cost a small model's loop more than its numbers do, so they run here while torch
    computes, every record in the file within FLUSH_S of its step (a watcher polls slower). An
    error writing (a full disk) is raised in the training thread at its next record or at close;
    nothing more is written after it. A loop that raises loses no line (close, or the Monitor's
    finalizer at exit, writes the batch); only a process killed outright (SIGKILL, SIGTERM
    without a handler) loses up to FLUSH_S of them, where the engine's writer, a write and a
    flush per record, loses none: that per-record flush, in this thread or the training one,
    measured 0.35-0.4 ms more per logged step on the MLP of bench/monitor.py."""

    def __init__(self, folder: RunFolder):
        super().__init__(name="descent-monitor-lines", daemon=True)
        self.folder, self.queue, self.error, self.failed = folder, queue.SimpleQueue(), None, False
        self._closing = threading.Event()
        self.start()

    def run(self) -> None:
        while True:
            batch = [self.queue.get()]               # asleep until there is a record
            if batch[0] is not None:
                self._closing.wait(FLUSH_S)          # what comes meanwhile joins the same write
            while batch[-1] is not None:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in batch if r is not None]
            if records and not self.failed:
                try:
                    self.folder.record("".join(json.dumps(r, default=float) + "\n" for r in records))
                except BaseException as e:   # noqa: BLE001 - handed to the training thread
                    self.error, self.failed = e, True
            if batch[-1] is None:
                return

    def put(self, record: dict) -> None:
        self.raise_error()
        self.queue.put(record)

    def raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def stop(self, check: bool = True) -> None:
        if self.is_alive():
            self._closing.set()
            self.queue.put(None)
            self.join()
        if check:
            self.raise_error()


def shut(lines: Lines, folder: RunFolder) -> None:
    lines.stop(check=False)
    folder.close()


def describe(model, name: str, every: int, optimizer=None) -> dict:
    """What scenario.toml says about a monitored model: its class, tensors and optimizer."""
    params = list(model.named_parameters())
    first = params[0][1] if params else None
    info = {"model": type(model).__qualname__, "module": type(model).__module__, "every": every,
            "parameters": sum(p.numel() for _, p in params),
            "trainable": sum(p.numel() for _, p in params if p.requires_grad),
            "device": str(first.device) if first is not None else "none",
            "dtype": str(first.dtype).removeprefix("torch.") if first is not None else "none",
            "recurrent": [n for n, _ in recurrent_modules(model)],
            "tensors": {n: list(p.shape) for n, p in params}, "text": repr(model)[:DESCRIBE_CHARS]}
    if optimizer is not None:
        settings = {k: _toml_value(v) for k, v in optimizer.defaults.items()}
        info["optimizer"] = {"kind": type(optimizer).__name__, "groups": len(optimizer.param_groups),
                             **{k: v for k, v in settings.items() if v is not None}}
    return {"scenario": {"name": name, "description": f"{type(model).__name__}, a PyTorch model trained by its "
                                                      f"own script, recorded by descent.Monitor"},
            "monitor": info}


def _toml_value(v):
    """A setting as TOML can write it, or None (left out)."""
    if isinstance(v, bool) or isinstance(v, (int, float, str)):
        return v
    if hasattr(v, "item") and getattr(v, "numel", lambda: 0)() == 1:
        return float(v.item())
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return list(v)
    return None


def toml(d: dict) -> str:
    import tomli_w

    return tomli_w.dumps(d)
