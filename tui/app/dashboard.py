"""The dashboard screen: one training session, its charts, knobs and scenario panel; layout and
key actions.

Training runs in a thread worker (tui.app.training) that consumes `session.run(stop)`, fills
`History` (plain data) and posts messages; it never touches a widget. The screen redraws the
charts from `History` on a timer, only when something changed, so a fast model keeps its speed.
"""

from __future__ import annotations

import threading
import time
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane, Tabs
from textual.worker import Worker, WorkerState

from descent.engine.alarms import is_recurrent
from descent.engine.errors import DescentError, SpecError
from descent.engine.records import Diverged, Finished
from descent.engine.runs import discard, remove_if_empty
from descent.tui.app.charts import AccuracyChart, LossChart, TensorChart, budget
from descent.tui.app.dialogs import ConfirmDialog, QuitDialog
from descent.tui.app.files import FileActions
from descent.tui.app.views import ViewActions
from descent.tui.app.guard import MIN_SIZE, divergence_advice, too_small_text
from descent.tui.app.history import History, Pinned, format_value
from descent.tui.app.keys import CLOSING_KEYS, KNOB_AND_VIEW_KEYS
from descent.tui.app.knobs import KnobsPanel
from descent.tui.app.messages import (AlertRaised, Evaluated, EvaluationStarted, KnobApplied, KnobEdited, Prepared,
                                  Preparing, Progress, RunEnded, RunFailed)
from descent.tui.app.pace import Pacer, auto_rate
from descent.tui.app.panels import ScenarioPanel, make_panel
from descent.tui.app.status import StatusLine
from descent.tui.app.throttle import Throttle
from descent.tui.app.timegrads import has_time_view, time_draws, time_widgets
from descent.tui.app.training import route, run_label, train

REDRAW_SECONDS = 0.5        # the redraw tick; tui.app.charts.budget decides whether it draws
PANEL_SECONDS = 1.0         # the scenario panel (predictions) refreshes this often while training
MAX_PINNED = 5


class DashboardScreen(FileActions, ViewActions, Screen):
    """Everything about one scenario. `make_session(scenario)` builds a new Session for it.
    `pace`: steps per second at the start (None: full speed, "auto": tui.app.pace.auto_rate)."""

    HORIZONTAL_BREAKPOINTS = [(0, "-tiny"), (MIN_SIZE[0], "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (MIN_SIZE[1], "-tall")]
    AUTO_FOCUS = ""             # nothing focused (None would mean the app's "*"): the keys work at once
    BINDINGS = [
        Binding("space", "toggle_run", "Run", priority=True),    # at once, ahead of queued worker messages
        Binding("n", "one_step", "Step"),
        Binding("r", "reset", "Reset"),
        Binding("c", "pin", "Pin"),
        Binding("s", "save", "Save"),
        Binding("o", "open", "Open"),
        Binding("e", "export", "Export"),
        *KNOB_AND_VIEW_KEYS,
        Binding("left_square_bracket", "slower", "Slower", show=False),
        Binding("right_square_bracket", "faster", "Faster", show=False),
        Binding("f", "full_speed", "Full speed", show=False),
        Binding("p", "picker", "Picker", show=False),
        *CLOSING_KEYS,
        Binding("left", "browse(-1)", "Previous sample", show=False),
        Binding("right", "browse(1)", "Next sample", show=False),
    ]

    def __init__(self, scenario, make_session, pace=None, **kwargs):
        super().__init__(**kwargs)
        self.auto_pace = pace == "auto"
        self.pacer = Pacer(None if self.auto_pace else pace)
        self.queued: str | None = None    # an action asked for while compiling: done once ready
        self.scenario = scenario
        self.make_session = make_session
        self.session = None
        self.generation = 0               # bumped at reset; messages of older workers are ignored
        self.state = "compiling"
        self.stop_event = threading.Event()
        self.worker: Worker | None = None
        self.history = History()
        self.recurrent = is_recurrent(scenario.model.layers)
        self.pinned: list[Pinned] = []
        self.log_loss = False
        self.smoothed = False
        self.saved_by_user = False        # the user saved or exported into the run folder
        self.last_saved = None            # the checkpoint the user saved last (a Path)
        self.quitting = False
        self.panel_gate = Throttle(PANEL_SECONDS)

    # ---- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield Static(too_small_text(*MIN_SIZE), id="too-small")
        with Horizontal(id="body"):
            yield KnobsPanel(self.scenario.knobs, getattr(self.scenario, "no_knobs", None), id="knobs")
            with Vertical(id="main"):
                with Horizontal(id="curves"):
                    yield LossChart(id="loss-chart")
                    yield AccuracyChart(id="acc-chart")
                with TabbedContent(id="tabs"):
                    with TabPane("Gradients", id="tab-grads"):
                        with Horizontal():
                            yield TensorChart("grad_norms", "gradient norm", id="grad-chart")
                            yield TensorChart("update_ratios", "update/weight", id="ratio-chart")
                    if has_time_view(self.scenario.model.layers):
                        with TabPane("Time gradients", id="tab-time"):
                            yield time_widgets()
                    panel = make_panel(self.scenario.panel)
                    with TabPane(panel.title, id="tab-panel"):
                        yield panel
        yield Footer(compact=True, show_command_palette=False)    # every key fits in 80 columns

    @property
    def panel(self) -> ScenarioPanel:
        return self.query_one("#panel", ScenarioPanel)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    def on_mount(self) -> None:
        self.set_state("compiling", "starting")
        self.set_interval(REDRAW_SECONDS, self.redraw)
        self.start_session()

    def on_unmount(self) -> None:
        self.stop_event.set()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one("#too-small", Static).update(too_small_text(event.size.width, event.size.height))

    # ---- the worker -------------------------------------------------------------------------------
    def start_session(self) -> None:
        """A new Session for self.scenario, prepared in the worker (data, model, kernels)."""
        self.generation += 1
        self.session = self.make_session(self.scenario)
        self.history = History()
        self.recurrent = is_recurrent(self.scenario.model.layers)
        self.saved_by_user = False
        self.stop_event = threading.Event()
        self.worker = self.drive(self.session, "prepare", None, self.stop_event, self.history, self.generation)

    @work(thread=True, exclusive=True, group="session", exit_on_error=False)
    def drive(self, session, job: str, steps: int | None, stop: threading.Event, history: History,
              generation: int) -> None:
        """Prepare the session, or train it until `steps` more steps, the budget, or `stop`."""

        def post(message) -> None:
            message.generation = generation
            self.post_message(message)

        try:
            if job == "prepare":
                for rec in session.prepare(stop):
                    post(Preparing(rec.message, rec.warning))
                post(Prepared(session.dataset.summary()))
            else:
                train(session, stop, steps, history, post, self.recurrent, self.pacer)
        except DescentError as e:
            post(RunFailed(str(e)))

    def feed(self, record) -> None:
        """Handle one record as if the worker had sent it (for tests that train synchronously)."""
        for message in route(record, self.history, self.stop_event, self.recurrent):
            message.generation = self.generation
            self.post_message(message)

    def say(self, text: str, **kwargs) -> None:
        """A notification of plain text (file names and keys like layers[1] are not markup)."""
        self.notify(text, markup=False, **kwargs)

    def current(self, message) -> bool:
        """Whether a worker message belongs to the session now shown (not one replaced by a reset)."""
        return getattr(message, "generation", self.generation) == self.generation

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one handler for unexpected worker errors: say so, write the details (crashlog),
        keep the dashboard alive."""
        if event.state == WorkerState.ERROR and event.worker is self.worker:
            from descent.tui.app import crash_line

            error = event.worker.error
            line = crash_line(error, getattr(self.session, "out_dir", None)).removeprefix("descent: ")
            self.set_state("error", line)
            self.say(line, title="Training stopped by an error", severity="error", timeout=20)
            self.log.error(repr(error))

    def start_run(self, steps: int | None) -> None:
        self.stop_event = threading.Event()
        self.pacer.stop = self.stop_event
        self.set_state("running", "")
        self.worker = self.drive(self.session, "run", steps, self.stop_event, self.history, self.generation)

    async def halt(self) -> None:
        """Stop the worker (pause) and wait until it has returned."""
        self.stop_event.set()
        if self.worker is not None and self.worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            await self.worker.wait()

    # ---- worker messages ----------------------------------------------------------------------------
    def on_preparing(self, message: Preparing) -> None:
        if not self.current(message):
            return
        if message.warning:
            self.say(message.text, severity="warning", timeout=15)
        else:
            self.set_state("compiling", message.text)

    def on_prepared(self, message: Prepared) -> None:
        if not self.current(message):
            return
        if self.auto_pace:
            self.pacer.set(auto_rate(self.session.total_steps))
        self.set_state("ready", f"{message.summary}; space trains, n steps once")
        self.status.show(total=self.session.total_steps, step=self.session.step, epoch=self.session.epoch)
        self.paced()
        self.panel.bind(self.session)
        queued, self.queued = self.queued, None
        if queued:
            self.call_later(self.run_action, queued)

    def on_progress(self, message: Progress) -> None:
        if not self.current(message):
            return
        r = message.record
        self.status.show(step=r.step, epoch=r.epoch, loss=r.loss, steps_per_s=r.steps_per_s, elapsed=r.elapsed,
                         evaluating=False)

    def on_evaluation_started(self, message: EvaluationStarted) -> None:
        if self.current(message):               # training waits: the charts may take the UI thread's time
            self.status.show(evaluating=True)
            self.redraw(force=True)

    def on_evaluated(self, message: Evaluated) -> None:
        if not self.current(message):
            return
        r = message.record
        self.status.show(evaluating=False, **({"accuracy": r.metrics["accuracy"]} if "accuracy" in r.metrics else {}))
        self.panel.evaluated(r)

    def on_knob_applied(self, message: KnobApplied) -> None:
        if not self.current(message):
            return
        row = self.query_one(KnobsPanel).row(message.record.key)
        if row is not None:
            row.applied(message.record.step, message.record.value)
        self.redraw(force=True)

    def on_alert_raised(self, message: AlertRaised) -> None:
        if not self.current(message):
            return
        a = message.alert
        text = a.text
        if a.what == "diverged" and isinstance(message.record, Diverged):
            text = divergence_advice(self.scenario, message.record, self.query_one(KnobsPanel).values())
        self.say(text, title=f"Paused: {a.what} at step {a.step}",
                 severity="error" if a.what == "diverged" else "warning", timeout=60)

    def on_run_ended(self, message: RunEnded) -> None:
        if not self.current(message):
            return
        r = message.record
        if isinstance(r, Finished) and self.session.step < self.session.total_steps:
            self.set_state("paused", "space continues, n steps once")     # `n`: run(steps=1) ended
        elif isinstance(r, Finished):
            acc = r.summary.get("metrics", {}).get("accuracy")
            self.set_state("finished", f"budget of {r.step:,} steps done; r resets, c pins")
            self.say(f"Finished {r.step:,} steps in {r.elapsed:.1f} s"
                     + (f", validation accuracy {100 * acc:.1f}%" if acc is not None else ""), title="Done")
        elif isinstance(r, Diverged):
            self.set_state("diverged", "r resets (change the knobs first); space cannot continue it")
        else:
            self.set_state("paused", "space continues, n steps once")
        self.status.show(step=self.session.step, epoch=self.session.epoch, elapsed=self.session.elapsed,
                         evaluating=False)
        self.panel.show_sample()
        self.redraw(force=True)

    def on_run_failed(self, message: RunFailed) -> None:
        if not self.current(message):
            return
        self.set_state("error", message.text)
        self.say(message.text, title="Cannot train", severity="error", timeout=30)

    # ---- knobs ------------------------------------------------------------------------------------
    def on_knob_edited(self, message: KnobEdited) -> None:
        if not message.live:
            self.say(f"{message.key} = {format_value(message.value)} applies on reset (r)", timeout=4)
            return
        if self.session is None:
            return
        try:
            self.session.set_knob(message.key, message.value)
        except SpecError as e:
            self.say(str(e), severity="error")

    # ---- drawing ----------------------------------------------------------------------------------
    def set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self.status.show(state=state, detail=detail)

    def redraw(self, force: bool = False) -> None:
        """Replot the charts whose data changed; charts in hidden tabs wait until shown.

        While training, a redraw waits until `tui.app.charts.budget` allows it: drawing takes at
        most 3% of the UI thread's time, because plotext redraws every point in Python and Python
        time on the UI thread is time the training thread waits for the GIL."""
        now = time.monotonic()
        if not force and self.state == "running" and not budget.allows(now):
            return
        h = self.history
        pins = (len(self.pinned), self.pinned[-1].label if self.pinned else "")
        active = self.query_one(TabbedContent).active
        wanted = [(self.query_one(LossChart), (id(h), h.step_version, h.eval_version, h.marker_version, pins,
                                               self.log_loss, self.smoothed),
                   lambda c: c.draw(h, self.pinned, self.log_loss, self.smoothed)),
                  (self.query_one(AccuracyChart), (id(h), h.eval_version, h.marker_version, pins),
                   lambda c: c.draw(h, self.pinned))]
        if active == "tab-grads":
            wanted += [(c, (id(h), h.step_version, h.marker_version), lambda c: c.draw(h))
                       for c in self.query(TensorChart)]
        elif active == "tab-time":
            wanted += time_draws(self, h, pins)
        stale = [(widget, stamp, draw) for widget, stamp, draw in wanted
                 if force or getattr(widget, "stamp", None) != stamp]
        panel = self.panel
        started = time.thread_time()
        if active == "tab-panel" and (force or self.state != "running" and panel.dirty
                                      or self.state == "running" and self.panel_gate.allows(now)):
            self.panel_gate.mark(now)
            panel.dirty = False
            panel.show_sample()             # predictions with the current weights, the newest evaluation
        with self.app.batch_update():
            for widget, stamp, draw in stale:
                widget.stamp = stamp
                draw(widget)                # sets data; the plot itself is built when Textual renders
        budget.spend(time.thread_time() - started)
        budget.mark(now)

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        if isinstance(self.focused, Tabs):
            self.set_focus(None)           # a clicked tab must not keep the keys (a panel may take them)
        self.call_after_refresh(self.redraw, True)           # once the pane has its size
        if event.pane.id == "tab-panel":
            self.panel.entered()
            if self.session is not None and self.session.dataset is not None:
                self.panel.show_sample()

    # ---- actions ----------------------------------------------------------------------------------
    def ready(self, doing: str, queue: str | None = None) -> bool:
        """Whether the session can do `doing` now; says why not. While compiling, the action
        `queue` (if given) is remembered and done once the session is ready."""
        if self.state == "compiling":
            if queue and not self.quitting and self.generation:
                self.queued = queue
                self.say(f"Got it: {doing} once it is ready. Now {self.status.info.detail}.", timeout=4)
            else:
                self.say(f"Still preparing: {doing} once it is ready. Now {self.status.info.detail}.", timeout=3)
            return False
        if self.state == "error" and (self.session is None or self.session.trainer is None):
            self.say("The session could not start; fix the problem and reset (r) or quit.", severity="error")
            return False
        return True

    def action_toggle_run(self) -> None:
        if self.state == "running":
            self.stop_event.set()
            self.set_state("pausing", "finishing the current step")
            return
        if self.state == "pausing" or not self.ready("training starts", "toggle_run"):
            return
        if self.state == "diverged":
            self.say("This run diverged: change the knobs, then r resets it with new weights.", timeout=6)
            return
        if self.state == "finished":
            self.say("This run has used its budget: n trains one more step, r starts a new run.", timeout=5)
            return
        self.start_run(None)

    def action_one_step(self) -> None:
        if self.state in ("running", "pausing"):
            self.say("Pause first (space), then n steps once.", timeout=3)
            return
        if self.state == "diverged":
            self.say("This run diverged: change the knobs, then r resets it with new weights.", timeout=6)
        elif self.ready("stepping works", "one_step"):
            self.start_run(1)

    def action_reset(self) -> None:
        """Asks first when the run has trained (a stray r must not lose it)."""
        if self.state == "compiling":
            self.ready("reset works")
            return
        s = self.session
        if s is None or s.trainer is None or s.step == 0:
            self.app.call_later(self.reset)
            return
        self.app.push_screen(ConfirmDialog(f"Reset: start a new run and leave this one at step {s.step:,}?",
                                           f"Its metrics stay in {s.out_dir}; knob values apply to the new run."),
                             lambda yes: self.app.call_later(self.reset) if yes else None)

    async def reset(self) -> None:
        from descent.engine.scenario import with_values

        knobs = self.query_one(KnobsPanel)
        changes = knobs.values()
        try:
            scenario = with_values(self.scenario, changes) if changes else self.scenario
        except SpecError as e:
            self.say(str(e), title="Cannot reset with these knobs", severity="error", timeout=15)
            return
        self.set_state("compiling", "resetting")
        self.app.clear_notifications()        # a divergence's alert is about the old run
        await self.halt()
        if self.session is not None:
            self.session.close()
            remove_if_empty(self.session, kept=self.saved_by_user)
        self.scenario = scenario
        for row in knobs.rows():
            row.commit(changes.get(row.knob.key, row.knob.default))
        self.start_session()
        self.status.show(step=0, epoch=0.0, loss=None, accuracy=None, steps_per_s=None, elapsed=None, evaluating=False)
        panel = self.panel
        panel.last_eval = None
        self.redraw(force=True)
        self.say(f"New run: {run_label(scenario)}", timeout=3)

    def action_pin(self) -> None:
        if not len(self.history.loss):
            self.say("Nothing to pin yet: train a few steps first.", timeout=3)
            return
        label = run_label(self.scenario, self.session.base_lr)
        labels = [p.label for p in self.pinned]
        if label in labels:
            label = f"{label} #{sum(lbl.startswith(label) for lbl in labels) + 1}"
        self.pinned.append(self.history.pin(label))
        del self.pinned[:-MAX_PINNED]
        self.redraw(force=True)
        self.say(f"Pinned '{label}': it stays on the loss and accuracy charts.", timeout=4)

    # ---- back to the picker, quitting ----------------------------------------------------------------
    def action_picker(self) -> None:
        s = self.session
        if s is None or s.trainer is None or s.step == 0:
            self.app.call_later(self.to_picker, "discard")
            return
        self.app.push_screen(QuitDialog(str(s.out_dir), s.step, verb="Back to the picker"),
                             lambda choice: self.app.call_later(self.to_picker, choice))

    async def to_picker(self, choice: str | None) -> None:
        if choice is None or not await self.settle(choice):
            return
        self.app.open_picker()

    def action_quit(self) -> None:
        if self.quitting:
            return
        s = self.session
        if s is None or s.trainer is None or s.step == 0:
            self.app.call_later(self.finish, None)
            return
        self.app.push_screen(QuitDialog(str(s.out_dir), s.step), self.finish)

    async def settle(self, choice: str | None) -> bool:
        """Stop training and keep ("keep": save the checkpoint) or discard the run's folder;
        False (and a notification) when that fails."""
        s = self.session
        self.quitting = True
        if self.state == "compiling":
            self.set_state("compiling", "leaving once the kernels are compiled")
        await self.halt()
        if s is not None:
            try:
                if choice == "keep" and s.trainer is not None:
                    s.save()
                s.close()
                if choice == "discard" and not self.saved_by_user:
                    discard(s)
                remove_if_empty(s, kept=self.saved_by_user)
            except (DescentError, OSError) as e:
                self.say(str(e), title="Could not save", severity="error")
                self.quitting = False
                return False
        return True

    async def finish(self, choice: str | None) -> None:
        """Quit: "keep" saves the checkpoint (metrics are already on disk), "discard" removes the
        run folder unless the user saved or exported into it; None (from the dialog) stays."""
        s = self.session
        if choice is None and s is not None and s.step > 0:
            return
        if not await self.settle(choice):
            return
        self.app.exit(message=f"Run kept in {s.out_dir}" if choice == "keep" and s else None)
