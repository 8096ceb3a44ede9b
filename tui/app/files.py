"""The dashboard's file actions (a mixin of DashboardScreen): save a checkpoint, export the
metrics, open a checkpoint. The writing happens off the UI thread; its outcome is a notification."""

from __future__ import annotations

from pathlib import Path

from textual import work

from descent.engine.errors import DescentError
from descent.tui.app.dialogs import OpenDialog


class FileActions:
    """Needs the screen's session, history, state, `ready`, `halt`, `say`, `redraw`, `set_state`."""

    def action_save(self) -> None:
        """A checkpoint named after the step, so the automatic one (checkpoint.npz, rewritten at
        every pause) never replaces it."""
        if self.ready("saving works") and self.session.trainer is not None:
            self.saved_by_user = True
            path = self.session.out_dir / f"checkpoint-step{self.session.step}.npz"
            self.last_saved = path
            self.io(lambda: f"Checkpoint saved: {self.session.save(path)}")

    def action_export(self) -> None:
        if self.ready("exporting works") and self.session.trainer is not None:
            self.saved_by_user = True
            path = self.session.out_dir / f"metrics-step{self.session.step}.jsonl"
            self.io(lambda: f"Metrics exported: {self.session.export_metrics(path)}")

    @work(thread=True, group="io", exit_on_error=False)
    def io(self, job) -> None:
        """A file operation off the UI thread; its outcome as a notification."""
        try:
            self.app.call_from_thread(self.say, job(), timeout=6)
        except (DescentError, OSError) as e:
            self.app.call_from_thread(self.say, str(e), severity="error", timeout=10)

    def action_open(self) -> None:
        if not self.ready("opening works") or self.session.trainer is None:
            return
        default = self.last_saved or (self.session.out_dir / "checkpoint.npz")
        self.app.push_screen(OpenDialog(str(default)), self.open_checkpoint)

    async def open_checkpoint(self, path: str | None) -> None:
        if not path:
            return
        await self.halt()
        try:
            self.session.load_checkpoint(Path(path).expanduser())
        except DescentError as e:
            self.say(str(e), title="Cannot open", severity="error", timeout=15)
            if self.state in ("running", "pausing"):
                self.set_state("paused")
            return
        self.history.truncate(self.session.step)
        self.set_state("paused", f"opened {path}")
        self.redraw(force=True)
        self.status.show(step=self.session.step, epoch=self.session.epoch, elapsed=self.session.elapsed)
        self.panel.show_sample()
        self.say(f"Opened {path} at step {self.session.step:,}", timeout=5)
