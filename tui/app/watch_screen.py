"""The watch view: the dashboard's charts, knobs and panels on run folders that another process
trains (`descent watch`), steered through control requests.

`WatchScreen` is a `DashboardScreen` without a session: a thread worker polls every watched run
(engine.tail.WatchedRun, local or over ssh) and routes the first run's records into the screen's
`History` exactly as the training worker does (tui.app.training.route); the other runs get a
History each and are drawn as pinned runs. Knob edits, space (pause / resume), s (checkpoint
now) and x (stop) append requests to the first run's control.jsonl (engine.control); a knob
row says "= value since step N" once the run's metrics.jsonl records the change.

Textual calls a message handler of every class in the MRO, so each handler replaced here calls
`prevent_default()`, which keeps the dashboard's own (session-bound) handler from running too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Checkbox, Input, Select
from textual.worker import Worker, WorkerState

from descent.engine.control import Control
from descent.engine.tail import WatchError
from descent.tui.app.charts import AccuracyChart, LossChart
from descent.tui.app.dashboard import DashboardScreen
from descent.tui.app.keys import CLOSING_KEYS, KNOB_AND_VIEW_KEYS
from descent.tui.app.dialogs import ConfirmDialog
from descent.tui.app.history import History, format_value
from descent.tui.app.knobs import KnobsPanel, parse_knob
from descent.tui.app.messages import AlertRaised, Evaluated, KnobApplied, KnobEdited, Progress, RunEnded
from descent.tui.app.timegrads import RatioChart, TimeCharts
from descent.tui.app.training import route

LOCAL_POLL_SECONDS = 0.5
REMOTE_POLL_SECONDS = 1.0       # one ssh round trip a run each time
LATEST_ONLY = (Progress, Evaluated)     # of these a poll posts only its newest


@dataclass
class Followed(Message):
    """A poll of the first run found records; `state` is the run's now (engine.tail)."""

    state: str
    total: int | None


@dataclass
class Restarted(Message):
    """A run's metrics.jsonl was truncated or replaced: its curves start over."""

    index: int


@dataclass
class LinkChanged(Message):
    """A run folder stopped (text) or started again (None) answering polls."""

    label: str
    text: str | None


class WatchScreen(DashboardScreen, inherit_bindings=False):
    """`runs`: opened engine.tail.WatchedRun objects; the first is the one shown and steered."""

    DEFAULT_CSS = "WatchScreen #pace-row { display: none; }"
    BINDINGS = [
        Binding("space", "toggle_run", "Pause/resume", priority=True),
        Binding("s", "save", "Checkpoint"),
        Binding("x", "stop", "Stop run"),
        *KNOB_AND_VIEW_KEYS,
        *CLOSING_KEYS,
    ]

    def __init__(self, runs, scenario, **kwargs):
        super().__init__(scenario, make_session=None, **kwargs)
        self.runs = list(runs)
        self.histories = [History() for _ in self.runs]
        self.history = self.histories[0]
        self.pause_asked = False
        self.overlay_stamp = None
        self.watch_worker: Worker | None = None

    @property
    def run(self):
        return self.runs[0]

    def on_mount(self, event) -> None:
        event.prevent_default()
        if not getattr(self.scenario, "gates", True):       # a stand-in: no session recorded gates
            self.query(TimeCharts).add_class("-no-gates")
        self.set_state("starting", f"watching {self.run.label}")
        self.set_interval(0.5, self.redraw)
        self.watch_worker = self.follow(self.stop_event)

    # ---- the poll worker ------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def follow(self, stop: threading.Event) -> None:
        every = REMOTE_POLL_SECONDS if any(run.transport.remote for run in self.runs) else LOCAL_POLL_SECONDS
        lost: dict[str, str] = {}
        first = True
        while not stop.is_set():
            for index, run in enumerate(self.runs):
                try:
                    restarted, records = run.poll()
                except WatchError as e:
                    if lost.get(run.label) != str(e):
                        lost[run.label] = str(e)
                        self.post_message(LinkChanged(run.label, str(e)))
                    continue
                if lost.pop(run.label, None) is not None:
                    self.post_message(LinkChanged(run.label, None))
                self.take(index, run, restarted, records, replay=first)
            first = False
            stop.wait(every)

    def take(self, index: int, run, restarted: bool, records: list, replay: bool = False) -> None:
        """One poll's records into the run's History (worker thread); for the first run, the
        messages the training worker would post. A replay (the records written before the watch
        began) raises no alarm notifications."""
        if restarted:
            self.histories[index] = History()
            if index == 0:
                self.history = self.histories[0]
            self.post_message(Restarted(index))
        history = self.histories[index]
        if index:
            for rec in records:
                history.add(rec)
            return
        newest: dict[type, Message] = {}
        for rec in records:
            if isinstance(rec, Control) and not replay:           # the run's answer to a request
                self.app.call_from_thread(self.say, f"{self.run.label}: {rec.message}",
                                          severity="information" if rec.ok else "warning", timeout=5)
            for message in route(rec, history, threading.Event(), self.recurrent):
                if isinstance(message, LATEST_ONLY):
                    newest[type(message)] = message
                elif not (replay and isinstance(message, AlertRaised)):
                    self.post_message(message)
        for message in newest.values():
            self.post_message(message)
        if records or restarted:
            self.post_message(Followed(run.state, run.total_steps()))

    # ---- what the worker posts --------------------------------------------------------------------
    def on_followed(self, message: Followed) -> None:
        if message.state == "paused":
            self.pause_asked = False
        detail = "pause asked" if self.pause_asked and message.state == "running" else ""
        if message.state != self.state or detail != self.status.info.detail:
            self.set_state(message.state, detail)
        if message.total:
            self.status.show(total=message.total)

    def on_restarted(self, message: Restarted) -> None:
        if message.index == 0:
            for row in self.query_one(KnobsPanel).rows():
                row.note("")
            self.say(f"{self.run.label}: metrics.jsonl started over (a new run or a resume); reading it again",
                     timeout=5)
        self.redraw(force=True)

    def on_link_changed(self, message: LinkChanged) -> None:
        if message.text is None:
            self.say(f"{message.label}: reading again", timeout=4)
        else:
            self.say(f"{message.text}; retrying", title="Lost the run folder", severity="warning", timeout=10)
        if message.label == self.run.label:
            self.status.show(detail="connection lost, retrying" if message.text else "")

    def on_alert_raised(self, message: AlertRaised) -> None:
        message.prevent_default()
        a = message.alert
        self.say(a.text, title=f"{self.run.label}: {a.what} at step {a.step}",
                 severity="error" if a.what == "diverged" else "warning", timeout=30)

    def on_run_ended(self, message: RunEnded) -> None:
        message.prevent_default()
        self.pause_asked = False
        self.redraw(force=True)

    def on_knob_applied(self, message: KnobApplied) -> None:
        """The run's metrics say a knob changed: the row shows the value the run trains with."""
        message.prevent_default()
        r = message.record
        row = self.query_one(KnobsPanel).row(r.key)
        if row is not None:
            value, before = coerce(row.knob, r.value), row.value
            row.value = value                # first: the control's Changed then is no new edit
            control = row.query("Input, Select, Checkbox").first()
            if isinstance(control, Input):
                # a field still holding the number it was last given or sent (it keeps the focus
                # after enter) shows the run's; one holding another, unsent, number is mid-edit
                if not control.has_focus or reads(row.knob, control.value) == before:
                    control.value = format_value(value)
            elif isinstance(control, (Select, Checkbox)):      # no half-made choice to keep
                control.value = value
            row.note(f"= {format_value(value)} since step {r.step:,}")
        self.redraw(force=True)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker is self.watch_worker:
            from descent.tui.app import crash_line

            line = crash_line(event.worker.error).removeprefix("descent: ")
            self.set_state("error", line)
            self.say(line, title="Watching stopped by an error", severity="error", timeout=20)

    # ---- steering ---------------------------------------------------------------------------------
    @work(thread=True, group="control", exit_on_error=False)
    def send(self, op: str, key: str | None = None, value=None, said: str = "") -> None:
        """Append one control request (a thread: over ssh it is a round trip)."""
        try:
            self.run.request(op, key, value)
        except (WatchError, OSError, ValueError) as e:
            self.app.call_from_thread(self.say, f"{self.run.label}: the request was not sent: {e}",
                                      severity="error", timeout=10)
            return
        if said:
            self.app.call_from_thread(self.say, said, timeout=4)

    def ended(self) -> bool:
        if self.state in ("finished", "diverged"):
            self.say(f"The run has {self.state}; there is nothing to steer.", timeout=4)
            return True
        return False

    def action_toggle_run(self) -> None:
        if self.ended():
            return
        op = "resume" if self.pause_asked or self.state in ("paused", "stopped") else "pause"
        self.pause_asked = op == "pause"
        self.status.show(detail="pause asked" if self.pause_asked else "resume asked")
        said = {"pause": "Asked the run to pause after its current step",
                "resume": "Asked the run to resume" + (f" (if its process has ended, `descent resume "
                                                      f"{self.run.label}` continues it)"
                                                      if self.state == "stopped" else "")}[op]
        self.send(op, said=said)

    def action_save(self) -> None:
        if not self.ended():
            self.send("checkpoint", said="Asked the run for a checkpoint now")

    def action_stop(self) -> None:
        if self.ended():
            return
        self.app.push_screen(ConfirmDialog(f"Stop {self.run.label}?",
                                           "It saves a checkpoint and ends; `descent resume` continues it."),
                             lambda yes: self.send("stop", said="Asked the run to stop") if yes else None)

    def action_quit(self) -> None:
        self.app.exit()

    def action_gates(self) -> None:
        if self.query(TimeCharts) and not getattr(self.scenario, "gates", True):
            self.say("This run records no gates: only a descent session does (descent.Monitor measures gradients).",
                     timeout=4)
            return
        super().action_gates()

    def on_knob_edited(self, message: KnobEdited) -> None:
        message.prevent_default()
        row = self.query_one(KnobsPanel).row(message.key)
        if not message.live:
            if row is not None:
                row.note("not live: a running run cannot change it")
            return
        if self.ended():
            return
        if row is not None:
            row.note(f"→ {format_value(message.value)} asked")
        self.send("set", message.key, message.value)

    # ---- drawing ----------------------------------------------------------------------------------
    def redraw(self, force: bool = False) -> None:
        """The other runs are pinned runs, renewed whenever their curves grew."""
        stamp = tuple((id(h), h.step_version, h.eval_version) for h in self.histories[1:])
        if stamp != self.overlay_stamp:
            self.overlay_stamp = stamp
            self.pinned = [h.pin(short_label(run)) for run, h in zip(self.runs[1:], self.histories[1:])
                           if len(h.loss)]
            for chart in (*self.query(LossChart), *self.query(AccuracyChart), *self.query(RatioChart)):
                chart.stamp = None
        super().redraw(force)


def reads(knob, text: str):
    """The value a knob field's text stands for, or None where it is not a valid one."""
    try:
        return parse_knob(knob, text)
    except ValueError:
        return None


def coerce(knob, value):
    """A value read back from JSON as the knob's own type (1 for a float knob is 1.0)."""
    try:
        if knob.type == "float":
            return float(value)
        if knob.type == "int":
            return int(value)
        if knob.type == "bool":
            return bool(value)
    except (TypeError, ValueError):
        pass
    return value


def short_label(run) -> str:
    """A legend's name for a run: its folder's name (host:name when remote)."""
    t = run.transport
    name = str(t.path).rstrip("/").rsplit("/", 1)[-1] or str(t.path)
    return f"{t.host}:{name}" if t.remote else name

