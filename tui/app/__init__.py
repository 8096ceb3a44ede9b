"""The descent dashboard app and `make_app`, the one factory that the command line and the tests use.

    make_app(scenario=None | "nile" | Path | Scenario, data_dir=None, backend=None, seed=None,
             extra_paths=(), runs_dir=None, resume=None, pace=None | "auto" | steps_per_s).run()

With no scenario it opens the picker; otherwise the dashboard. Each run writes to
`<scenario-stem>-<timestamp>/` under `runs_dir` (default: engine.runs.runs_home(), i.e.
$DESCENT_RUNS or ~/.local/share/descent/runs); `resume=RUN_DIR` reopens that run folder instead
and continues training it. SIGHUP (a dropped SSH session) and SIGTERM quit as "keep" does: the
checkpoint and the metrics are saved, the run can be resumed; the exit code is 130.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from descent.engine.runs import run_dir_for, runs_home
from descent.tui.app.dashboard import DashboardScreen
from descent.tui.app.dialogs import HelpScreen
from descent.tui.app.messages import ScenarioPicked
from descent.tui.app.picker import PickerScreen

# what the command palette offers on the dashboard: (title, help, action)
COMMANDS = (
    ("Start / pause", "Start or pause training (space)", "toggle_run"),
    ("One step", "Train exactly one step (n)", "one_step"),
    ("Reset", "New weights; knobs marked 'on reset' take effect (r)", "reset"),
    ("Pin run", "Keep this run's curves on the charts to compare (c)", "pin"),
    ("Save checkpoint", "Save the weights and optimizer state to the run folder (s)", "save"),
    ("Open checkpoint", "Load a saved checkpoint (o)", "open"),
    ("Export metrics", "Write every record so far as JSON lines (e)", "export"),
    ("Knobs", "Show and focus the knobs (k)", "knobs"),
    ("Log-scale loss", "Toggle a log scale on the loss chart (l)", "toggle_log"),
    ("Smooth loss", "Toggle smoothing of the training loss (m)", "toggle_smooth"),
    ("Accuracy or error %", "Toggle zoomed accuracy / error % on a log axis (a)", "toggle_error"),
    ("Hide knobs", "Hide or show the knobs panel (h)", "hide_knobs"),
    ("Gate chart", "Time tab: the gate chart in place of the gradient curve, or back (g)", "gates"),
    ("Slower", "Fewer steps per second ([)", "slower"),
    ("Faster", "More steps per second (])", "faster"),
    ("Full speed", "Full speed, or back to the pace (f)", "full_speed"),
    ("Back to the picker", "Choose another scenario, keeping or discarding the run (p)", "picker"),
    ("Quit descent", "Quit, keeping or discarding the run (q)", "quit"),
)


def leave_soon(grace: float = 3.0) -> None:
    """After a hang-up, once the run is kept: end the process if Textual's own exit has not within
    `grace` seconds. Restoring a terminal that is gone can block its writer thread for ever (seen
    with tmux's server killed mid-run), and nobody is left to see anything."""
    import os
    import threading
    import time

    def leave():
        time.sleep(grace)
        os._exit(130)

    threading.Thread(target=leave, name="descent-hangup", daemon=True).start()


class DescentApp(App):
    CSS_PATH = "descent.tcss"
    TITLE = "descent"
    BINDINGS = [Binding("question_mark", "help", "Help", show=False)]

    def __init__(self, scenario=None, *, data_dir=None, backend=None, seed=None, extra_paths=(),
                 runs_dir=None, resume=None, pace=None):
        super().__init__()
        self.pace = pace            # the dashboards' starting pace: steps/s, None (full speed) or "auto"
        self.initial = scenario
        self.data_dir, self.backend, self.seed = data_dir, backend, seed
        self.extra_paths = tuple(Path(p) for p in extra_paths)
        self.runs_dir = Path(runs_dir) if runs_dir is not None else runs_home()
        self.resumed = None             # the session of `resume`, handed to the first dashboard
        self.hung_up = False
        if resume is not None:
            from descent.engine.session import Session

            self.resumed = Session.resume(resume, data_root=data_dir)
            self.initial = self.resumed.scenario

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.hang_up)
            except (NotImplementedError, RuntimeError, ValueError):   # not the main thread (tests)
                pass
        if self.initial is not None:
            self.push_screen(self.dashboard_for(self.initial))

    def hang_up(self) -> None:
        """The terminal went away, or we were asked to end: keep the run, as Quit > Keep does."""
        if self.hung_up:
            return
        self.hung_up = True
        dash = next((s for s in self.screen_stack if isinstance(s, DashboardScreen)), None)
        if dash is None:
            self.exit()
            self.leave_soon()
        else:
            dash.quitting = False
            self.run_worker(self._keep_and_leave(dash), group="hangup")

    async def _keep_and_leave(self, dash) -> None:
        await dash.finish("keep")
        self.leave_soon()

    def leave_soon(self) -> None:
        if not self.is_headless:        # a real terminal; Pilot tests run headless in pytest's process
            leave_soon()

    def exit(self, result=None, return_code: int = 0, message=None) -> None:
        if self.hung_up:            # nobody is there to read a message
            return_code, message = 130, None
        super().exit(result, return_code, message)

    def get_default_screen(self) -> Screen:
        """The picker, always at the bottom: a dashboard opened from the command line sits on
        it, so `p` goes back to it the same way as from a picked scenario."""
        return PickerScreen(self.extra_paths, id="picker")

    def dashboard_for(self, scenario) -> DashboardScreen:
        return DashboardScreen(scenario, self.new_session, pace=self.pace, id="dashboard")

    def open_picker(self) -> None:
        """From a dashboard back to the picker below it."""
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def new_session(self, scenario):
        from descent.engine.session import Session

        if self.resumed is not None:
            session, self.resumed = self.resumed, None
            return session
        return Session(scenario, data_root=self.data_dir, out_dir=run_dir_for(scenario, self.runs_dir),
                       backend=self.backend, seed=self.seed)

    def _handle_exception(self, error: Exception) -> None:
        """Anything unexpected: leave with one line saying what and where the details were written,
        never a Rich traceback over the terminal (Textual's default)."""
        self.crash_message = crash_line(error, getattr(getattr(self.screen, "session", None), "out_dir", None))
        self._return_code = 1
        if self._exception is None:    # Textual's own bookkeeping: tests (run_test) re-raise it
            self._exception = error
            self._exception_event.set()
        self.bell()
        self._close_messages_no_wait()

    def _print_error_renderables(self) -> None:
        """Textual prints exit messages through Rich, which wraps or crops them at the terminal's
        width; the crash line is printed whole, as one line."""
        message = getattr(self, "crash_message", None)
        if message is None:
            return super()._print_error_renderables()
        self._exit_renderables.clear()
        print(message, file=sys.stderr, flush=True)

    def on_scenario_picked(self, message: ScenarioPicked) -> None:
        self.push_screen(self.dashboard_for(message.scenario))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        if isinstance(screen, DashboardScreen):
            for title, help_text, action in COMMANDS:
                yield SystemCommand(title, help_text, lambda a=action: screen.run_action(a))
        yield SystemCommand("Help", "Keys, charts and knobs explained (?)", self.action_help)
        yield from super().get_system_commands(screen)


def crash_line(error: BaseException, run_dir=None) -> str:
    """The one line for an unexpected error, naming the crash report written for it."""
    from descent.engine.crashlog import crash_report
    from descent.engine.errors import DescentError

    if isinstance(error, DescentError):
        return f"descent: {error}"
    try:
        where = f"details in {crash_report(error, run_dir)}"
    except OSError as e:
        where = f"no crash report: {e.strerror or e}"
    return f"descent: internal error: {type(error).__name__}: {error} ({where}; please report it)"


def make_app(scenario=None, data_dir=None, backend=None, seed=None, extra_paths=(), runs_dir=None,
             resume=None, pace=None) -> DescentApp:
    """The app for a Scenario, a scenario name or file, or None (the picker).

    A name or path is loaded here, so a bad file fails before the terminal switches to the app
    (raises engine.errors.DescentError / SpecError)."""
    if isinstance(scenario, (str, Path)):
        from descent.engine.scenario import load, resolve_name

        scenario = load(resolve_name(str(scenario)), check_data=True)
    return DescentApp(scenario, data_dir=data_dir, backend=backend, seed=seed, extra_paths=extra_paths,
                      runs_dir=runs_dir, resume=resume, pace=pace)
