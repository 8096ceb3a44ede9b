"""Transfer learning: start a model from another run's weights (`model.init_from`), keep some of
its layers fixed (`model.freeze`), and train the same model from scratch beside it
(`model.compare = "scratch"`) so the panel can show what the pretrained start bought.

`init_from` is a run folder, a checkpoint .npz, or `scenario:NAME`: the run folder of the bundled
(or found) scenario NAME trained at its defaults, kept under the runs home in
`pretrained/NAME-<hash of its resolved scenario>`. If that run has not finished yet, the session
trains it first (that is the pretraining stage; it is done once and then reused).

Tensors are copied when both name and shape match (PyTorch's state_dict rule with strict=False,
plus the shape check torch would fail on); the rest keep their fresh initialisation. Which were
copied and which not (and why) goes into the run's first record, so it is never a silent guess.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import checkpoint
from .errors import DescentError, SpecError
from .rundir import CHECKPOINT

PRETRAINED = "pretrained"          # the runs home's folder of pretraining stages


def frozen_names(spec: list, freeze: list[int], names: list[str]) -> list[str]:
    """Parameter names of the model layers at positions `freeze` of model.layers (an mlp entry
    freezes every layer it expands to)."""
    from .model import _expanded

    owners = [i for i, _ in _expanded(spec)]          # built layer k came from spec entry owners[k]
    keep = set(freeze)
    return [n for n in names if owners[int(n.split(".", 1)[0])] in keep]


def pretrained_dir(scenario) -> Path:
    """Where the pretraining run of `scenario` lives: one folder per resolved scenario text."""
    from .runs import runs_home
    from .scenario import dumps

    digest = hashlib.sha256(dumps(scenario).encode()).hexdigest()[:10]
    stem = scenario.path.stem if scenario.path else "scenario"
    return runs_home() / PRETRAINED / f"{stem}-{digest}"


def finished(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def resolve(init_from: str, base_dir: Path):
    """(checkpoint path or None, scenario to pretrain or None) for a `model.init_from` value."""
    if init_from.startswith("scenario:"):
        from .scenario import load, resolve_name

        name = init_from.split(":", 1)[1]
        sibling = Path(base_dir) / f"{name}.toml"           # beside the scenario first, then the usual places
        try:
            scenario = load(sibling if sibling.is_file() else resolve_name(name))
        except DescentError as e:
            raise SpecError("model.init_from", f"{e}") from None
        run = pretrained_dir(scenario)
        return (run / CHECKPOINT if finished(run) else None), scenario
    p = Path(init_from).expanduser()
    p = p if p.is_absolute() or p.exists() else base_dir / p
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise SpecError("model.init_from", f"{init_from}: no such run folder or checkpoint")
    return p, None


def pretrain(scenario, data_root, stop=None, name: str = ""):
    """Train `scenario` into its pretrained_dir, yielding a progress line per logged step;
    returns the checkpoint.
    `stop` (a threading.Event) ends it early, keeping its checkpoint to go on from next time."""
    from .records import Step
    from .session import Session

    run = pretrained_dir(scenario)
    if run.exists() and not finished(run):                # an interrupted stage: go on where it stopped
        try:
            session = Session.resume(run, data_root=data_root)
        except DescentError:
            session = None
    else:
        session = None
    if session is None:
        session = Session(scenario, data_root=data_root, out_dir=run)
        session.force = True
    try:
        for _ in session.prepare():
            pass
        for record in session.run(stop):
            if isinstance(record, Step):
                yield f"pretraining {name}: step {record.step}/{session.total_steps}"
    finally:
        session.close()
    if stop is not None and stop.is_set() and not finished(run):
        raise SpecError("model.init_from", f"pretraining stopped at step {session.step}; it goes on from "
                           f"there next time ({run})")
    if not finished(run):
        raise SpecError("model.init_from", f"the pretraining run {run} did not finish")
    return run / CHECKPOINT


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        arrays, _ = checkpoint.load(path)
    except (OSError, ValueError, KeyError) as e:
        raise SpecError("model.init_from", f"{path}: not a readable checkpoint ({e})") from None
    return checkpoint.parameters(arrays)


def copy_matching(trainer, arrays: dict) -> dict:
    """Copy every tensor whose name and shape match into trainer's parameters (the optimizer's
    state starts fresh). Returns {"copied": [...], "skipped": {name: reason}}."""
    state = trainer.state_dict()
    copied, skipped = [], {}
    for name, value in state.items():
        src = arrays.get(name)
        if src is None:
            skipped[name] = "not in the checkpoint"
        elif tuple(src.shape) != tuple(value.shape):
            skipped[name] = f"shape {tuple(src.shape)} there, {tuple(value.shape)} here"
        else:
            state[name] = np.asarray(src, dtype=value.dtype)
            copied.append(name)
    if not copied:
        raise SpecError("model.init_from", "no tensor of the checkpoint matches this model by name and shape")
    trainer.load_state_dict(state)
    return {"copied": copied, "skipped": skipped}


class Transfer:
    """The session's transfer pieces: built by `prepare` after the session's trainer exists."""

    def __init__(self, session):
        self.session = session
        self.report: dict = {}
        self.scratch = None                 # the same model from scratch, on the same batches
        self._losses: list[float] = []       # the comparison model's training losses since the last evaluation
        self._tuned: list[float] = []        # and the session's own model's

    def prepare(self, stop=None):
        """Yields progress messages (the pretraining stage, if it has to run, which `stop` ends);
        then copies, freezes and builds the comparison model."""
        from .backend import make_trainer
        from .optim import OptimConfig

        s, m = self.session, self.session.scenario.model
        if m.compare == "scratch":
            self.scratch = make_trainer(s.layers, s.dataset.in_shape, s.loss, OptimConfig.from_training(s.scenario.training),
                                        s.seed, s.dtype, s.backend)
        if m.init_from:
            path, stage = resolve(m.init_from, s.scenario.base_dir)
            if path is None:
                name = stage.path.stem if stage.path else "the first stage"
                yield f"pretraining {name} first (once: it is kept for the next run)"
                path = yield from pretrain(stage, s.data_root, stop, name)
            self.report = {"from": str(path), **copy_matching(s.trainer, load_arrays(path))}
            yield (f"init_from: {len(self.report['copied'])} tensors copied from {path}"
                   + (f"; fresh: {', '.join(self.report['skipped'])}" if self.report["skipped"] else ""))
        if m.freeze:
            if not hasattr(s.trainer, "optimizer"):
                raise SpecError("model.freeze", "only the numba backend freezes layers so far")
            names = frozen_names(s.layers, list(m.freeze), s.trainer.names)
            s.trainer.optimizer.freeze(names)
            self.report["frozen"] = names

    def step(self, x, y, mask, loss: float) -> None:
        if self.scratch is None:
            return
        self._tuned.append(loss)
        lr = self.session.trainer.config.lr
        if self.scratch.config.lr != lr:
            self.scratch.set_hparams(lr=lr)
        self._losses.append(self.scratch.step(x, y, mask, time_grads=False).loss)

    def evaluate(self, x, y, mask) -> tuple[dict, float | None]:
        """The comparison model's test metrics with its mean training loss since the last call,
        and the session model's mean training loss over the same steps."""
        if self.scratch is None:
            return {}, None
        from .metrics import classification, probabilities

        metrics, _ = classification(probabilities(self.scratch.predict(x, mask)), y, self.session.dataset.class_names)
        tuned = float(np.mean(self._tuned)) if self._tuned else None
        if self._losses:
            metrics["train_loss"] = float(np.mean(self._losses))
        self._losses, self._tuned = [], []
        return metrics, tuned

    def state_arrays(self) -> dict:
        return {} if self.scratch is None else {f"scratch.{k}": v for k, v in self.scratch.state_arrays().items()}

    def load_state_arrays(self, arrays: dict) -> None:
        own = {k[len("scratch."):]: v for k, v in arrays.items() if k.startswith("scratch.")}
        if self.scratch is not None and own:
            self.scratch.load_state_arrays(own)
