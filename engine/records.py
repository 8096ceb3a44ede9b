"""What the training session yields: small frozen records, shared by the TUI and the headless CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Compiling:
    """Kernels are being compiled (first start) or loaded from the on-disk cache; `warning`: a
    line the user should act on (the dashboard shows it as a notification, not only a status)."""

    message: str
    warning: bool = False


@dataclass(frozen=True)
class Step:
    """One logged training step (the session logs every `training.log_every` steps)."""

    step: int
    epoch: float
    loss: float
    lr: float
    grad_norm: float
    param_norm: float
    grad_norms: dict[str, float]
    update_ratios: dict[str, float]
    time_grad_norms: dict[str, list[float]] | None
    steps_per_s: float
    elapsed: float
    clip_scale: float = 1.0          # clipping's factor this step: grad_norm * clip_scale is the norm applied
    clipped_steps: int = 0           # steps clipped so far, logged or not (share = clipped_steps / step)
    # by distance back from each sample's answer, scaled to the answer's norm (engine.arrays.aligned_ratio)
    time_grad_ratio: dict[str, list[float]] | None = None


@dataclass(frozen=True)
class Evaluation:
    """Metrics on the held-out split; `details` holds confusion matrices and per-gap curves."""

    step: int
    epoch: float
    split: str
    metrics: dict[str, float]
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluating:
    """The session starts an evaluation at `step` (yielded, not recorded: a state to show while a
    slow model evaluates; training time, `elapsed` and steps/s, leave it out). `last_seconds`:
    what the one before took, None before the first."""

    step: int
    last_seconds: float | None = None


@dataclass(frozen=True)
class KnobChanged:
    """A live knob took effect before `step`; charts draw a marker there."""

    step: int
    key: str
    value: object


@dataclass(frozen=True)
class Alarm:
    """A logged step's gradients exploded or vanished (engine.alarms); training goes on, the
    dashboard pauses. `text` says what happened and what to try."""

    step: int
    what: str           # "exploding" | "vanishing" | "diverged" (not `kind`: metrics.jsonl tags records so)
    text: str


@dataclass(frozen=True)
class Diverged:
    """Loss became NaN/inf or blew up; training stops, the last good checkpoint is kept."""

    step: int
    reason: str
    hint: str


@dataclass(frozen=True)
class Finished:
    step: int
    elapsed: float
    summary: dict


@dataclass(frozen=True)
class Stopped:
    """The stop event was set (pause, quit, Ctrl-C); the session can be resumed."""

    step: int


Record = Compiling | Step | Alarm | Evaluating | Evaluation | KnobChanged | Diverged | Finished | Stopped


def to_json(record: Record) -> dict:
    """A plain dict for metrics.jsonl, tagged with the record kind."""
    return {"kind": type(record).__name__.lower(), **asdict(record)}
