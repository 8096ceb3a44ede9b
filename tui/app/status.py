"""The status line: state, step, epoch, loss, validation accuracy, steps/s, elapsed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

STATE_STYLES = {
    "compiling": ("⧗", "bold yellow"),
    "ready": ("■", "bold"),
    "running": ("▶", "bold green"),
    "evaluating": ("⧗", "bold cyan"),       # shown for "running" while the session evaluates
    "pausing": ("‖", "bold yellow"),
    "paused": ("‖", "bold yellow"),
    "diverged": ("✗", "bold red"),
    "finished": ("✓", "bold green"),
    "error": ("✗", "bold red"),
}


@dataclass
class StatusInfo:
    state: str = "compiling"
    detail: str = "compiling kernels"      # shown instead of numbers while compiling or on error
    step: int = 0
    total: int = 0
    epoch: float = 0.0
    loss: float | None = None
    accuracy: float | None = None
    steps_per_s: float | None = None
    elapsed: float | None = None
    pace: str | None = None                # the dashboard's speed control, "40/s" or "max"
    evaluating: bool = False               # running, and evaluating now: the state shown is "evaluating"


def clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def status_text(info: StatusInfo, width: int = 120) -> Text:
    shown = "evaluating" if info.evaluating and info.state == "running" else info.state
    icon, style = STATE_STYLES.get(shown, ("•", "bold"))
    out = Text(f" {icon} {shown} ", style=style)
    pace = f"pace {info.pace} (f: max)" if info.pace and info.pace != "max" else ""
    if info.state in ("compiling", "error") or (info.detail and info.state == "ready" and not info.step):
        out.append(f" {info.detail}", style="italic" if info.state != "error" else "red")
        if pace and info.state == "ready":
            out.append(f"  {pace}", style="dim")
        return out
    parts = [f"step {info.step:,}" + (f"/{info.total:,}" if info.total else ""), f"epoch {info.epoch:.2f}"]
    if info.loss is not None:
        parts.append(f"loss {info.loss:.4g}")
    if info.accuracy is not None:
        parts.append(f"val acc {100 * info.accuracy:.1f}%")
    if info.steps_per_s is not None and shown == "running":
        parts.append(f"{info.steps_per_s:,.0f} steps/s")
    if info.elapsed is not None:
        parts.append(clock(info.elapsed))
    if pace:
        parts.append(pace)
    sep = " │ " if width >= 100 else " "
    out.append(" " + sep.join(parts))
    if info.detail and info.state != "running":
        out.append(f"  {info.detail}", style="dim")
    return out


class StatusLine(Widget):
    """One line at the top of the dashboard. A change of state repaints it at once; numbers
    (step, loss, ...) at most REFRESH_SECONDS apart, so a fast model does not pay for a frame
    per logged step. It repaints without a layout pass."""

    DEFAULT_CSS = """
    StatusLine { height: 1; width: 1fr; }
    """
    REFRESH_SECONDS = 0.25

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.info = StatusInfo()
        self._painted = 0.0
        self._pending = False

    def show(self, **changes) -> None:
        urgent = any(k in ("state", "detail", "evaluating") and getattr(self.info, k) != v for k, v in changes.items())
        for k, v in changes.items():
            setattr(self.info, k, v)
        wait = self.REFRESH_SECONDS - (time.monotonic() - self._painted)
        if urgent or wait <= 0:
            self._paint()
        elif not self._pending:
            self._pending = True
            self.set_timer(wait, self._paint)

    def _paint(self) -> None:
        self._pending = False
        self._painted = time.monotonic()
        self.refresh()

    def render(self) -> Text:
        return status_text(self.info, self.size.width or 120)
