"""The training session: one generator of records that both the dashboard and the headless CLI consume.

    session = Session(scenario, out_dir=Path("runs/nile"))
    for record in session.prepare(): ...            # loading data, compiling kernels
    for record in session.run(stop_event): ...      # Step, Alarm, Evaluating, Evaluation, KnobChanged,
                                                    # Diverged, Finished/Stopped

The session owns the data order, the learning-rate schedule, evaluation, divergence checks and,
when given an out_dir, everything written there: metrics.jsonl (appended and flushed per
record), checkpoint.npz and summary.json (atomic), scenario.toml (the fully resolved scenario),
through engine.rundir.RunFolder (the lock, and OS errors as one-line IOFailures).
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .alarms import GradMonitor, is_recurrent
from .backend import WARM_UP_ROWS, make_trainer, warm_up
from .data.text_lm import is_lm
from .errors import DescentError, SpecError
from .metrics import probabilities
from .model import fill_from_data
from .names import LIVE_SETTINGS
from .optim import OptimConfig
from .recordlog import RecordLog
from .records import Compiling, Diverged, Evaluating, Evaluation, Finished, KnobChanged, Step, Stopped, to_json
from .rundir import RunFolder
from .session_files import RunFiles
from .transfer import Transfer
from .schedules import lr_at


def plain(value):
    """Read-only mappings and tuples from a Scenario into plain dicts and lists (layer specs)."""
    if hasattr(value, "items"):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class Session(RunFiles):
    def __init__(self, scenario, *, data_root=None, out_dir=None, backend: str | None = None,
                 seed: int | None = None):
        self.scenario = scenario
        t = scenario.training
        self.backend = backend or t.backend
        self.device = t.device                     # training.device, until prepare() resolves it
        self.seed = t.seed if seed is None else seed
        self.data_root = data_root
        self.out_dir = Path(out_dir) if out_dir else None
        self.folder = RunFolder(self.out_dir) if self.out_dir else None
        self.force = False                         # a fresh run may replace a run in out_dir
        self._resume_step: int | None = None       # the checkpoint's step, for a resumed run
        self.cycle = (0, 0)                        # (first step, length) of a restarted cosine cycle
        self._good: tuple | None = None            # the newest state known good, for a divergence
        self.saved_step: int | None = None
        self.kept_step: int | None = None          # the step of the checkpoint a divergence left
        self.dataset = None
        self.trainer = None
        self.state = "new"
        self.step = 0
        self.batch_size = t.batch_size
        self.base_lr = t.lr
        self.live: dict[str, object] = {}          # live knob values that differ from the file
        self.records = RecordLog()                 # the newest records (metrics.jsonl has all)
        self.elapsed = 0.0                         # training time: evaluations and pauses left out
        self.eval_seconds: float | None = None     # what the last evaluation inside run() took
        self.compile_seconds = 0.0
        self.first_loss: float | None = None
        self.clipped_steps = 0
        self.last_eval: Evaluation | None = None
        self.transfer = Transfer(self)
        self._pending: queue.SimpleQueue = queue.SimpleQueue()
        self.steering = None                       # engine.control.Steering: control.jsonl, with a run folder
        self._lock = threading.Lock()
        self._data_rng = np.random.default_rng([self.seed, 2])
        self._perm = np.empty(0, np.int64)
        self._pos = 0
        self._epoch_index = 0

    # ---- setup -------------------------------------------------------------------------------
    def prepare(self, stop: threading.Event | None = None) -> Iterator[Compiling]:
        """Load the data, build the model, compile kernels; `stop` ends a pretraining stage
        (model.init_from = "scenario:NAME") early. Raises DescentError on bad input."""
        from .data import data_dir, load_dataset
        from .threads import configure, wait_policy_note

        if self.folder:
            self.folder.preflight(resume=self._resume_step is not None, force=self.force)
            from .control import Steering

            self.steering = Steering(self.out_dir)    # from the file's size now: older requests are not ours
        sc = self.scenario
        from .torch_backend import resolve_device

        self.device = resolve_device(self.device, self.backend, sc.training.dtype)
        if self.backend == "torch":
            yield Compiling(f"torch backend on {self.device}")
        self.threads = configure()
        note = wait_policy_note() if self.backend == "numba" else None
        if note:
            yield Compiling(note, warning=True)
        self.state = "compiling"
        yield Compiling(f"loading {sc.data.source} data")
        root = data_dir(self.data_root)
        ds = load_dataset(sc.data.source, dict(sc.data.options), root, sc.base_dir)
        self.dataset = ds
        self.dtype = np.dtype(sc.training.dtype)
        self.x_train = ds.x_train.astype(self.dtype, copy=False) if ds.x_train.dtype.kind == "f" else ds.x_train
        self.x_test = ds.x_test.astype(self.dtype, copy=False) if ds.x_test.dtype.kind == "f" else ds.x_test
        self.layers = fill_from_data(plain(sc.model.layers), len(ds.vocab) if ds.vocab else None)
        self._check_output(ds)
        self.alarms = GradMonitor(is_recurrent(self.layers))
        t = sc.training
        self.optim = OptimConfig.from_training(t)
        try:
            self.trainer = make_trainer(self.layers, ds.in_shape, self.loss, self.optim, self.seed,
                                        self.dtype, self.backend, self.device)
        except SpecError as e:
            raise e.at("model.layers", file=str(sc.path) if sc.path else None) from None
        except ImportError:
            raise DescentError("backend 'torch' needs PyTorch: pip install 'descent[torch]'") from None
        if self.backend == "numba":
            yield Compiling("compiling kernels (first start only; cached afterwards)")
            t0 = time.perf_counter()
            n = min(self.batch_size, WARM_UP_ROWS, len(self.x_train))
            warm_up(self.layers, ds.in_shape, self.loss, self.x_train[:n], ds.y_train[:n],
                    None if ds.mask_train is None else ds.mask_train[:n], self.dtype, t.optimizer)
            self.compile_seconds = time.perf_counter() - t0
        try:
            for message in self.transfer.prepare(stop):
                yield Compiling(message)
        except SpecError as e:
            raise e.at(file=str(sc.path) if sc.path else None) from None
        self.total_steps = self.schedule_steps = self._budget()
        if self.out_dir:
            self._open_run_dir()
            from .predict import write_or_check

            write_or_check(self.out_dir, ds, self.loss, sc.data.source)
        if getattr(self, "_resume_from", None):
            self.load_checkpoint(self._resume_from)
        self.state = "paused"

    def _check_output(self, ds) -> None:
        """The model's output against the data's classes and the loss, as the loader checks it."""
        from .checks import check_output_fits, output_layer_key
        from .model import build_layers

        sc = self.scenario
        file = str(sc.path) if sc.path else None
        try:
            out = build_layers(self.layers, ds.in_shape, np.float64)[-1].out_shape
        except SpecError as e:
            raise e.at("model.layers", file=file) from None
        if is_lm(ds):
            from .lm_session import check_lm_output

            self.loss = check_lm_output(out, ds, sc.training.loss, output_layer_key(self.layers), file)
            return
        width = ds.y_train.shape[-1] if sc.task == "regression" else 1
        self.loss = check_output_fits(out, sc.task, ds.n_classes, sc.training.loss, output_layer_key(self.layers),
                                      width, file, per_token=sc.task != "regression" and ds.y_train.ndim == 2)

    def _budget(self) -> int:
        t = self.scenario.training
        if t.steps > 0:
            return int(t.steps)
        # an epoch is ceil(n / batch) steps, its last batch the partial one (`_next_batch`)
        n, whole = len(self.x_train), int(t.epochs)
        return max(1, whole * math.ceil(n / self.batch_size)
                   + math.ceil(round((t.epochs - whole) * n, 6) / self.batch_size))

    # ---- live control ---------------------------------------------------------------------------
    def set_knob(self, key: str, value) -> None:
        """Thread-safe; a live knob takes effect before the next step."""
        name = key.removeprefix("training.")
        if name not in LIVE_SETTINGS:
            raise SpecError(key, "is not a live setting; it applies on reset")
        self._pending.put((key, value))

    def _apply_pending(self) -> list[KnobChanged]:
        changed = []
        while True:
            try:
                key, value = self._pending.get_nowait()
            except queue.Empty:
                return changed
            self._apply(key, value)
            changed.append(KnobChanged(self.step, key, value))

    def _apply(self, key: str, value) -> None:
        name = key.removeprefix("training.")
        self.live[key] = value
        if name == "batch_size":
            self.batch_size = int(value)
        elif name == "lr":
            self.base_lr = float(value)
        else:
            self.trainer.set_hparams(**{name: value})

    def lr_now(self) -> float:
        t = self.scenario.training
        start, length = self.cycle
        if length:
            return lr_at(self.step - start, self.base_lr, t.schedule, length, 0, t.step_size, t.gamma, t.min_lr)
        return lr_at(self.step, self.base_lr, t.schedule, self.schedule_steps, t.warmup_steps, t.step_size,
                     t.gamma, t.min_lr)

    def extend(self, steps: int) -> str | None:
        """Before `run(steps=steps)`: grow the budget to cover them, and say what the schedule does
        past its end. A cosine schedule that has ended starts a new cycle over the extra steps,
        from the learning rate down to min_lr again (training on at min_lr = 0 would do nothing)."""
        t = self.scenario.training
        target = self.step + steps
        if target <= self.total_steps:
            return None
        ended, self.total_steps = self.step >= self.total_steps, target
        if t.schedule != "cosine":
            return None
        if ended:
            self.cycle = (self.step, steps)
            return (f"the cosine schedule ended at step {self.step}: a new cycle over the {steps} extra "
                    f"steps takes the learning rate from {self.base_lr:g} down to {t.min_lr:g} again")
        return (f"the cosine schedule ends at step {self.schedule_steps}: steps {self.schedule_steps + 1}-"
                f"{target} train at min_lr {t.min_lr:g}")

    # ---- training -------------------------------------------------------------------------------
    @property
    def epoch(self) -> float:
        n = max(1, len(self.x_train))
        return self._epoch_index + self._pos / n

    def _next_batch(self) -> np.ndarray:
        n = len(self.x_train)
        if self._pos >= len(self._perm):
            if len(self._perm):
                self._epoch_index += 1
            self._perm = self._data_rng.permutation(n)
            self._pos = 0
        idx = self._perm[self._pos:self._pos + self.batch_size]
        self._pos += len(idx)
        return idx

    def run(self, stop: threading.Event | None = None, steps: int | None = None,
            pace: Callable[[], None] | None = None) -> Iterator:
        """Train until `steps` more steps (None: the scenario's budget) or `stop` is set.
        `pace`, if given, is called after every step (the dashboard's speed control sleeps in it)."""
        if self.trainer is None:
            raise RuntimeError("call prepare() first")
        stop = stop or threading.Event()
        t = self.scenario.training
        ev = self.scenario.evaluation
        ds = self.dataset
        target = self.step + steps if steps is not None else self.total_steps
        self.state = "running"
        window_start, window_steps = time.perf_counter(), 0
        started = time.perf_counter()
        base_elapsed = self.elapsed
        if self.out_dir and self._good is None:
            self._good = self._state()
        steer = self.steering
        if steer is not None:
            held = yield from self._steer(stop)
            started, window_start = started + held, window_start + held
        while self.step < target and not stop.is_set():
            for change in self._apply_pending():
                yield self._emit(change)
            lr = self.lr_now()
            if lr != self.trainer.config.lr:
                self.trainer.set_hparams(lr=lr)
            idx = self._next_batch()
            log_now = (self.step + 1) % t.log_every == 0 or self.step + 1 == target
            mask = None if ds.mask_train is None else ds.mask_train[idx]
            with self._lock:
                stats = self.trainer.step(self.x_train[idx], ds.y_train[idx], mask, time_grads=log_now)
                self.transfer.step(self.x_train[idx], ds.y_train[idx], mask, stats.loss)
            self.step += 1
            window_steps += 1
            self.clipped_steps += stats.clip_scale < 1.0
            self.elapsed = base_elapsed + time.perf_counter() - started
            problem = self._divergence(stats)
            if problem:
                self.state = "diverged"
                self._keep_good()
                yield self._emit(Diverged(self.step, *problem))
                self._write_summary("diverged")
                return
            if log_now:
                now = time.perf_counter()
                rate = window_steps / max(now - window_start, 1e-9)
                window_start, window_steps = now, 0
                logged = self._emit(Step(
                    step=self.step, epoch=round(self.epoch, 4), loss=stats.loss, lr=lr,
                    grad_norm=stats.grad_norm, param_norm=stats.param_norm, grad_norms=stats.grad_norms,
                    update_ratios=stats.update_ratios,
                    time_grad_norms={k: np.asarray(v).tolist() for k, v in stats.time_grad_norms.items()}
                    if stats.time_grad_norms else None,
                    steps_per_s=rate, elapsed=self.elapsed, clip_scale=stats.clip_scale,
                    clipped_steps=self.clipped_steps,
                    time_grad_ratio={k: np.asarray(v).tolist() for k, v in stats.time_grad_ratio.items()}
                    if stats.time_grad_ratio else None))
                yield logged
                alarm = self.alarms.check(logged)
                if alarm:              # reported, never a stop: the dashboard pauses on it itself
                    yield self._emit(alarm)
            if self.step % ev.every == 0 and self.step < target:
                began = time.perf_counter()
                yield Evaluating(self.step, self.eval_seconds)
                yield self._emit(self.evaluate())
                if self.out_dir:
                    self._good = self._state()
                self.eval_seconds = spent = time.perf_counter() - began     # out of elapsed and steps/s
                started, window_start = started + spent, window_start + spent
            if self.out_dir and t.checkpoint_every and self.step % t.checkpoint_every == 0:
                self.save()
            if pace is not None and self.step < target:
                pace()
            if steer is not None and steer.due() and self.step < target:  # not in _steer: a generator a step costs
                held = yield from self._steer(stop)
                started, window_start = started + held, window_start + held
        for change in self._apply_pending():
            yield self._emit(change)
        if stop.is_set() and self.step < target:
            self.state = "paused"
            if self.out_dir:
                self.save()
                self._write_summary("stopped")
            yield self._emit(Stopped(self.step))
            return
        yield Evaluating(self.step, self.eval_seconds)
        final = self.evaluate()
        yield self._emit(final)
        self.state = "finished"
        summary = self._summary("finished")
        if self.out_dir:
            self.save()
            self._write_summary("finished")
        yield self._emit(Finished(self.step, self.elapsed, summary))

    def _steer(self, stop: threading.Event):
        """Between two steps: act on new control.jsonl requests (engine.control), read at most
        every POLL_SECONDS; a `pause` holds here. Returns the seconds held, which count as no
        training time."""
        t0 = time.perf_counter()
        for record in self.steering.poll(self, stop):
            yield self._emit(record)
        return time.perf_counter() - t0

    def _divergence(self, stats) -> tuple[str, str] | None:
        t = self.scenario.training
        hint = (f"lower the learning rate (now {self.base_lr:g}, try {self.base_lr / 10:g}) "
                f"or set training.clip_norm (now {self.trainer.config.clip_norm:g})")
        if not math.isfinite(stats.loss) or not math.isfinite(stats.grad_norm):
            what = "loss" if not math.isfinite(stats.loss) else "gradient norm"
            return f"{what} became {stats.loss if what == 'loss' else stats.grad_norm} at step {self.step}", hint
        if self.first_loss is None:
            self.first_loss = max(stats.loss, 1e-8)
        elif stats.loss > t.diverge_factor * self.first_loss:
            return (f"loss {stats.loss:.3g} at step {self.step} is over {t.diverge_factor:g}x "
                    f"the first loss ({self.first_loss:.3g})"), hint
        return None

    # ---- evaluation -------------------------------------------------------------------------------
    def predict_proba(self, x, mask=None) -> np.ndarray:
        """Class probabilities (n, K) with the current weights; safe to call from another thread."""
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            x = x.astype(self.dtype, copy=False)
        with self._lock:
            out = self.trainer.predict(x, mask)
        return probabilities(out)

    def predict_texts(self, texts: list[str]) -> np.ndarray:
        if self.dataset is None or self.dataset.encode is None:
            raise DescentError("this scenario's data is not text")
        x, mask = self.dataset.encode(list(texts))
        return self.predict_proba(x, mask)

    def evaluate(self) -> Evaluation:
        """The test split's metrics and the panels' details now (engine/evaluate.py)."""
        from .evaluate import evaluate

        self.last_eval = evaluate(self)
        return self.last_eval

    def generate(self, prompt: str = "", chars: int = 200, temperature: float = 0.8, top_k: int | None = None,
                 seed: int = 0, stop: threading.Event | None = None) -> str:
        """A character language model's continuation of `prompt`; safe from another thread."""
        from .lm_session import session_generate

        if not is_lm(self.dataset):
            raise DescentError("this scenario's model is not a language model; nothing to sample")
        return session_generate(self, prompt, chars, temperature, top_k, seed, stop)

    # ---- persistence -------------------------------------------------------------------------------
    def _emit(self, record):
        self.records.append(record)
        if self.out_dir:
            self.folder.record(json.dumps(to_json(record), default=float) + "\n")
        return record
