"""The app of `descent watch`: one `WatchScreen` (tui.app.watch_screen) on opened run folders.

    make_watch_app(runs).run()          # runs: engine.tail.WatchedRun, opened (checked) already

The view is built from the first run's scenario.toml; a folder without one a session wrote (a
descent.Monitor run's describes the user's model; or metrics written by something else) gets a
stand-in: no knobs, the time-gradient tab on, no gate chart (only a session records gates).
q quits (exit 0; nothing of the run is touched), Ctrl-C quits with 130; ? lists watch's own keys.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from types import SimpleNamespace

from textual.app import App
from textual.binding import Binding

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from descent.tui.app.dialogs import HELP, HelpScreen
from descent.tui.app.watch_screen import WatchScreen

WATCH_HELP = """\
[b]descent watch[/b]: the charts of run folders that another process trains.

[b]Keys[/b] (requests go to the first run's control.jsonl; the run acts between steps)
  [b]space[/b]  ask the run to pause / resume
  [b]s[/b]      ask for a checkpoint now     [b]x[/b]  ask the run to stop (confirmed)
  [b]k[/b]      show and focus the knobs     [b]h[/b]  hide / show the knobs
  [b]l[/b]      log-scale loss               [b]m[/b]  smooth the training loss
  [b]a[/b]      accuracy: zoomed % or error % on a log axis
  [b]g[/b]      time tab: the gates in place of the gradient curve
  [b]1-4[/b]    switch tabs                  [b]tab[/b] next control
  [b]esc[/b]    leave a field: the keys above work again
  [b]?[/b]      this help                    [b]q[/b]  quit (the run goes on)

[b]Knobs[/b]
Enter sends a live knob (learning rate, momentum, clip norm, batch size) to the run; its row says \
"asked", then "= value since step N" once the run's metrics record the change, and the field shows \
the value the run trains with. The other knobs cannot change while a run trains.

The other runs given to watch are drawn like pinned runs.

""" + HELP[HELP.index("[b]Charts[/b]"):HELP.index("[b]Alerts[/b]")].rstrip() + "\n"


class WatchHelp(HelpScreen):
    """The dashboard's help dialog with watch's keys: the dashboard's own (n, r, c, o, ...) act on
    a session that a watcher does not have."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static(WATCH_HELP, markup=True)
            yield Label("[dim]esc closes[/dim]", markup=True)


class WatchApp(App):
    CSS_PATH = "descent.tcss"
    TITLE = "descent watch"
    BINDINGS = [Binding("question_mark", "help", "Help", show=False),
                Binding("ctrl+c", "interrupt", show=False, priority=True)]

    def __init__(self, runs, scenario):
        super().__init__()
        self.runs, self.scenario = runs, scenario

    def get_default_screen(self) -> WatchScreen:
        return WatchScreen(self.runs, self.scenario, id="dashboard")

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.action_interrupt)
            except (NotImplementedError, RuntimeError, ValueError):   # not the main thread (tests)
                pass

    def action_interrupt(self) -> None:
        self.exit(return_code=130)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(WatchHelp())

    def _handle_exception(self, error: Exception) -> None:
        """As the dashboard app: one line naming the crash report, never a Rich traceback."""
        from descent.tui.app import crash_line

        self.crash_message = crash_line(error)
        self._return_code = 1
        if self._exception is None:    # Textual's own bookkeeping: tests (run_test) re-raise it
            self._exception = error
            self._exception_event.set()
        self._close_messages_no_wait()

    def _print_error_renderables(self) -> None:
        message = getattr(self, "crash_message", None)
        if message is None:
            return super()._print_error_renderables()
        self._exit_renderables.clear()
        print(message, file=sys.stderr, flush=True)


def scenario_of(run):
    """The run's Scenario from its scenario.toml, or a stand-in with what the view reads. Either
    way its panel is the generic one (metrics, confusion matrix): the scenario panels predict with
    a model in memory, and a watcher has none."""
    from dataclasses import replace

    from descent.engine.errors import DescentError
    from descent.engine.scenario import loads

    if run.scenario_text:
        try:
            return replace(loads(run.scenario_text, name=f"{run.label}/scenario.toml", check_shapes=False),
                           panel="generic")
        except DescentError:
            pass
    return SimpleNamespace(name=run.label, knobs=(), panel="generic", gates=False,
                           no_knobs="No knobs: this run has no descent scenario to turn (a Monitor run "
                                    "trains in your own loop).",
                           model=SimpleNamespace(layers=({"type": "lstm"},)),
                           data=SimpleNamespace(source="", options={}))


def make_watch_app(runs) -> WatchApp:
    return WatchApp(list(runs), scenario_of(runs[0]))
