"""The training worker's side of the dashboard: what each record becomes (`route`), the loop
that trains a session in a thread and posts messages (`train`), and a run's short label.
Nothing here touches a widget.

The worker adds every record to `History` (plain data) and posts tui.app.messages; messages that
come at the training log rate are throttled, the newest of a kind held back and posted before
the run's last message, so none is lost at the end.
"""

from __future__ import annotations

import threading
from typing import Callable

from descent.engine.alarms import RECURRENT, diverged_alarm
from descent.engine.records import Alarm, Diverged, Evaluating, Evaluation, Finished, KnobChanged, Step, Stopped
from descent.tui.app.history import History
from descent.tui.app.messages import AlertRaised, Evaluated, EvaluationStarted, KnobApplied, Progress, RunEnded
from descent.tui.app.throttle import Throttle

# the worker posts these at most this often (seconds); a newer one replaces a held one
POST_EVERY = {Progress: 0.25, Evaluated: 1.0}
# an evaluation shows on the status line when the one before took this long (the first always):
# quicker ones, many a second for a small model, would only make it flicker
SHOW_EVALUATING_S = 0.3


def route(record, history: History, stop: threading.Event, recurrent: bool = False) -> list:
    """What the dashboard hears about one record: it goes into `history`, a gradient alarm
    pauses training (sets `stop`), and these messages are posted."""
    history.add(record)
    if isinstance(record, Step):
        return [Progress(record)]
    if isinstance(record, Alarm):
        stop.set()
        return [AlertRaised(record)]
    if isinstance(record, Evaluating):
        slow = record.last_seconds is None or record.last_seconds >= SHOW_EVALUATING_S
        return [EvaluationStarted(record.step)] if slow else []
    if isinstance(record, Evaluation):
        return [Evaluated(record)]
    if isinstance(record, KnobChanged):
        return [KnobApplied(record)]
    if isinstance(record, Diverged):
        return [AlertRaised(diverged_alarm(record, recurrent), record), RunEnded(record)]
    if isinstance(record, (Finished, Stopped)):
        return [RunEnded(record)]
    return []


def train(session, stop: threading.Event, steps: int | None, history: History, post: Callable,
          recurrent: bool = False, pace: Callable | None = None) -> None:
    """Train until `steps` more steps, the budget, or `stop`; post what `route` makes of each
    record. `pace` (tui.app.pace.Pacer) is called after every step."""
    gates = {kind: Throttle(every) for kind, every in POST_EVERY.items()}
    held: dict[type, object] = {}          # the newest throttled message of each kind
    for rec in session.run(stop, steps, pace=pace):
        flush = isinstance(rec, (Diverged, Finished, Stopped))     # held messages go first at the end
        for message in route(rec, history, stop, recurrent):
            if isinstance(message, EvaluationStarted):
                flush = True               # and before a shown evaluation: the status names the step evaluated
            gate = gates.get(type(message))
            if gate is not None and not flush:
                if not gate.allows():
                    held[type(message)] = message            # the screen needs only the newest
                    continue
                gate.mark()
                held.pop(type(message), None)
            if flush:
                for waiting in held.values():
                    post(waiting)
                held.clear()
            post(message)


def run_label(scenario, lr: float | None = None) -> str:
    """A short name for a run: 'lstm h64 adam lr1e-3', 'dense 128-10 sgd lr1e-2'; `lr` is the
    learning rate now, if a live knob changed it."""
    layers = [dict(layer) for layer in scenario.model.layers]
    cell = next((layer for layer in layers if layer.get("type") in RECURRENT), None)
    if cell:
        model = f"{cell['type']} h{cell.get('hidden', '?')}"
    else:
        units = [str(layer["units"]) for layer in layers if layer.get("type") == "dense" and "units" in layer]
        convs = [layer for layer in layers if layer.get("type") == "conv2d"]
        model = (f"conv{len(convs)} " if convs else "") + ("dense " + "-".join(units) if units else layers[0]["type"])
    t = scenario.training
    return f"{model} {t.optimizer} lr{t.lr if lr is None else lr:.0e}".replace("e-0", "e-")
