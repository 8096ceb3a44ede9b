"""Messages of the dashboard: small dataclasses.

The training worker (a thread) posts the first group to the dashboard screen; it never touches
a widget. `Progress` comes at the training log rate, so a backlog of them collapses to the
newest (`can_replace`); the curves themselves are in `tui.app.history.History`, which the worker
fills, so no point is lost when a `Progress` is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from descent.engine.records import Alarm, Diverged, Evaluation, Finished, KnobChanged, Step, Stopped


# ---- from the training worker ---------------------------------------------------------------------
@dataclass
class Preparing(Message):
    """Loading data or compiling kernels (engine.records.Compiling)."""

    text: str
    warning: bool = False


@dataclass
class Prepared(Message):
    """The session is ready: data loaded, model built, kernels compiled."""

    summary: str


@dataclass
class Progress(Message):
    """The newest logged training step."""

    record: Step

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Progress)


@dataclass
class EvaluationStarted(Message):
    """The session began an evaluation (engine.records.Evaluating); `route` makes one only when
    the evaluation before was slow enough to see."""

    step: int


@dataclass
class Evaluated(Message):
    """The newest evaluation (fast models evaluate often; the panels need only the newest)."""

    record: Evaluation

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Evaluated)


@dataclass
class KnobApplied(Message):
    record: KnobChanged


@dataclass
class AlertRaised(Message):
    """Training paused itself: divergence, or gradients exploding or vanishing."""

    alert: Alarm
    record: Diverged | None = None      # for a divergence: the dashboard words its own advice


@dataclass
class RunEnded(Message):
    """The worker's `session.run` returned: finished, stopped (paused) or diverged."""

    record: Finished | Stopped | Diverged | None


@dataclass
class RunFailed(Message):
    """An expected error (DescentError, one line) while preparing or training."""

    text: str


# ---- between widgets ------------------------------------------------------------------------------
@dataclass
class KnobEdited(Message):
    """The user set a knob to a valid value."""

    key: str
    value: object
    live: bool


@dataclass
class ScenarioPicked(Message):
    """The picker loaded a valid scenario."""

    scenario: object


@dataclass
class PaceChosen(Message):
    """The user picked a pace in the knobs panel: steps per second, None for full speed."""

    rate: float | None
