"""The headless runner: consume a session's records, print progress, map the outcome to an exit code.

On a terminal the progress is a `rich.progress` bar (rich ships with Textual, but importing it
loads no Textual); otherwise, for logs and tests, a plain line every few seconds.

Requests in the run folder's control.jsonl (`descent control`, `descent watch`) are acted on by
the session (engine.control); here each outcome gets a line. A `stop` request ends the run as a
user stop does (checkpoint, summary "stopped") but exits 0: it was asked for, not an interruption.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from descent.engine.control import Control
from descent.engine.errors import DescentError
from descent.engine.ioerrors import IOFailure
from descent.engine.records import Alarm, Compiling, Diverged, Evaluating, Evaluation, Finished, Step, Stopped
from descent.engine.runs import remove_if_empty

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
PLAIN_SECONDS = 2.0         # a plain progress line at most this often (and at the last step)
BAR = 24                    # the bar's width in columns


def drive(session, steps: int | None, own_folder: bool = False, quiet: bool = False) -> int:
    """Train `session` to `steps` more steps (None: its budget). A run folder named here
    (`own_folder`, not the user's --out) is removed again if it was stopped before its first
    step: nothing in it is worth resuming. SIGINT, SIGTERM and SIGHUP (a closed terminal, a dropped
    SSH session) all stop after the current step with a checkpoint saved, exit 130. `quiet`
    (torchrun's ranks but 0, which repeat what rank 0 says) prints nothing; errors still raise."""
    stop = threading.Event()

    def on_signal(signum, frame):
        if signum == signal.SIGHUP and sys.stderr.isatty():
            hung_up()
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    printer = QuietPrinter() if quiet else BarPrinter() if sys.stdout.isatty() else PlainPrinter()
    outcome = EXIT_OK
    asked_stop = False          # a control request stopped the run, not a signal
    try:
        for rec in session.prepare():
            if isinstance(rec, Compiling) and rec.warning:
                printer.warn(f"descent: warning: {rec.message}")
            elif isinstance(rec, Compiling):
                printer.note(rec.message)
        if session.step:
            printer.note(f"resuming at step {session.step}")
        note = session.extend(steps) if steps is not None else None
        if note:
            printer.note(note)
        printer.total = session.step + steps if steps is not None else session.total_steps
        for rec in session.run(stop, steps):
            if isinstance(rec, Step):
                printer.step(rec, session.last_eval)
            elif isinstance(rec, Alarm):
                printer.warn(f"descent: warning: {rec.text}")
            elif isinstance(rec, Evaluating):
                printer.evaluating(rec)
            elif isinstance(rec, Evaluation):
                printer.evaluation(rec)
            elif isinstance(rec, Control):
                asked_stop = asked_stop or (rec.ok and rec.op == "stop")
                printer.control(rec, session.out_dir)
            elif isinstance(rec, Diverged):
                printer.clear()
                where = (f"; last good checkpoint (step {session.kept_step}) kept in {session.out_dir}"
                         if session.kept_step is not None else "")
                if not quiet:
                    print(f"descent: training failed: {rec.reason}; {rec.hint}{where}", file=sys.stderr)
                outcome = EXIT_FAILED
            elif isinstance(rec, Stopped):
                printer.clear()
                outcome = EXIT_OK if asked_stop else EXIT_INTERRUPTED
                if (own_folder and session.step == 0) or quiet:
                    break
                how = "stopped by a control request" if asked_stop else "interrupted"
                print(f"descent: {how} at step {rec.step}; checkpoint and metrics saved in "
                      f"{session.out_dir} (continue with `descent resume {session.out_dir}`)", file=sys.stderr)
            elif isinstance(rec, Finished):
                printer.clear()
                printer.finished(rec, session)
        return outcome
    except IOFailure as e:       # say what of the run is still there
        if not session.step:
            raise
        kept = (f"the checkpoint of step {session.saved_step} is intact" if session.saved_step is not None
                else "no checkpoint was written")
        raise DescentError(f"{e}; {kept}") from e
    finally:
        printer.clear()
        session.close()
        if own_folder and remove_if_empty(session):
            print(f"descent: stopped before the first step; removed {session.out_dir}", file=sys.stderr)
        for s, h in old.items():
            signal.signal(s, h)


def hung_up() -> None:
    """The terminal is gone: what would be printed on it now fails (EIO), so it goes nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


class PlainPrinter:
    """Plain lines on stdout: what CI logs and the tests read."""

    def __init__(self) -> None:
        self.total, self.last_plain = 0, 0.0

    def line(self, rec: Step, last_eval) -> str:
        acc = ""
        if last_eval and "accuracy" in last_eval.metrics:
            acc = f" val acc {100 * last_eval.metrics['accuracy']:.2f}%"
        return (f"step {rec.step}/{self.total} epoch {rec.epoch:.2f} loss {rec.loss:.4f}{acc} "
                f"lr {rec.lr:.2g} {rec.steps_per_s:.0f} steps/s")

    def note(self, text: str) -> None:
        print(text, flush=True)

    def warn(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def step(self, rec: Step, last_eval) -> None:
        if time.monotonic() - self.last_plain > PLAIN_SECONDS or rec.step == self.total:
            self.last_plain = time.monotonic()
            print(self.line(rec, last_eval), flush=True)

    def evaluating(self, rec: Evaluating) -> None:
        """An evaluation began: a plain log prints its result when it ends."""

    def evaluation(self, rec: Evaluation) -> None:
        self.note(f"eval at step {rec.step}: " + format_metrics(rec.metrics))

    def control(self, rec: Control, run_dir) -> None:
        if not rec.ok:
            self.warn(f"descent: control request refused: {rec.message}")
        elif rec.op == "pause" and rec.message.startswith("paused"):
            self.note(f"{rec.message} (control request); `descent control {run_dir} resume` continues")
        else:
            self.note(f"control: {rec.message}")

    def clear(self) -> None:
        """Nothing to take off the screen."""

    def finished(self, rec: Finished, session) -> None:
        print(f"done: {rec.step} steps in {rec.elapsed:.1f} s "
              f"({rec.summary.get('steps_per_s', 0):.0f} steps/s); results in {session.out_dir}")


class QuietPrinter(PlainPrinter):
    """Prints nothing."""

    def note(self, text: str) -> None:
        pass

    warn = note

    def step(self, rec: Step, last_eval) -> None:
        pass

    def evaluation(self, rec: Evaluation) -> None:
        pass

    def finished(self, rec: Finished, session) -> None:
        pass


class BarPrinter(PlainPrinter):
    """A rich progress bar with the newest step's line; notes, evaluations and warnings print
    above it (while the bar is live, rich moves what is written to stderr above it too).
    `console` is for tests (a rich Console writing to a buffer)."""

    def __init__(self, console=None) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
        from rich.table import Column

        self.console = console or Console(highlight=False)
        self.bar = Progress(BarColumn(bar_width=BAR), TaskProgressColumn(),
                            TextColumn("{task.fields[line]}", markup=False, table_column=Column(no_wrap=True)),
                            console=self.console, transient=True, refresh_per_second=4)
        self.task = None

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def step(self, rec: Step, last_eval) -> None:
        # cut the step line to the terminal, or rich squeezes the bar away to make room for it
        room = max(10, self.console.width - BAR - 6)
        line = self.line(rec, last_eval)
        line = line if len(line) <= room else line[:room - 1] + "…"
        if self.task is None:
            self.task = self.bar.add_task("train", total=max(1, self.total), line=line)
            self.bar.start()
        self.bar.update(self.task, completed=rec.step, line=line)

    def evaluating(self, rec: Evaluating) -> None:
        if self.task is not None:       # the bar stands still meanwhile: say why (textgen_transformer: ~10 s)
            self.bar.update(self.task, line=f"evaluating at step {rec.step:,}")

    def control(self, rec: Control, run_dir) -> None:
        super().control(rec, run_dir)
        if rec.ok and rec.op == "pause" and self.task is not None:
            self.bar.update(self.task, line=f"paused at step {rec.step}")

    def clear(self) -> None:
        if self.task is not None:
            self.bar.stop()
            self.bar.remove_task(self.task)
            self.task = None


def format_metrics(metrics: dict) -> str:
    order = ["accuracy", "error", "loss", "mcc", "precision", "recall", "f1", "false_positive_rate",
             "mse", "mae", "persistence_mae", "r2"]
    keys = [k for k in order if k in metrics]
    return " ".join(f"{k} {metrics[k]:.4f}" for k in keys)
