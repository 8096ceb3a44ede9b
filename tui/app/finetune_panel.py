"""The fine-tuning panel: the pretrained start against the same model trained from scratch.

Reads each Evaluation's metrics (the fine-tuned model) and `details["scratch"]` (the comparison
model the session trains on the same batches, `model.compare = "scratch"`), and the session's
`transfer.report` (which tensors came from the pretrained run). Test MCC is the headline: with
few labels and 13% spam, accuracy alone flatters a model that never says spam.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from descent.tui.app.charts import COLORS, Chart
from descent.tui.app.panels import ScenarioPanel

ROWS = (("mcc", "test MCC", "{:.3f}"), ("accuracy", "accuracy", "{:.1%}"), ("recall", "spam caught", "{:.1%}"),
        ("false_positive_rate", "ham blocked", "{:.1%}"), ("train_loss", "train loss", "{:.3f}"))


class MccChart(Chart):
    def draw(self, steps: list, tuned: list, scratch: list) -> None:
        self.start("test MCC")
        if not steps:
            self.placeholder("after the first evaluation")
        else:
            self.line(steps, tuned, "fine-tuned", marker="braille", color=COLORS[0])
            self.line(steps, scratch, "from scratch", marker="x", color=COLORS[1])
            self.plt.ylim(min(0.0, *tuned, *scratch), 1.0)
        self.finish()


def score_table(tuned: dict, scratch: dict, report: dict, step: int):
    table = Table(box=None, padding=(0, 1), title=f"test split, step {step}", title_style="bold",
                  title_justify="left")
    table.add_column("")
    table.add_column("fine-tuned", justify="right", style="cyan")
    table.add_column("scratch", justify="right", style="dark_orange")
    for key, label, form in ROWS:
        a, b = tuned.get(key), scratch.get(key)
        if a is not None or b is not None:
            table.add_row(label, *(form.format(v) if v is not None else "-" for v in (a, b)))
    notes = Text()
    if "mcc" in tuned and "mcc" in scratch:
        gain = tuned["mcc"] - scratch["mcc"]
        notes.append(f"pretraining {'adds' if gain >= 0 else 'costs'} {abs(gain):.3f} MCC\n",
                     style="bold green" if gain >= 0.05 else "yellow")
    if report.get("copied"):
        notes.append(f"{len(report['copied'])} tensors from the language model", style="dim")
        if report.get("skipped"):
            notes.append(f"; fresh: {', '.join(report['skipped'])}", style="dim")
        if report.get("frozen"):
            notes.append(f"; {len(report['frozen'])} frozen", style="dim")
    return Group(table, notes)


class FinetunePanel(ScenarioPanel):
    title = "Fine-tuning"

    DEFAULT_CSS = """
    FinetunePanel { layout: horizontal; }
    FinetunePanel MccChart { width: 1fr; }
    FinetunePanel #scores { width: 36; padding: 0 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.points: list[tuple[int, float, float]] = []

    def compose(self) -> ComposeResult:
        yield MccChart(id="mcc-chart")
        yield Static("The two models' test scores appear after the first evaluation.", id="scores")

    def evaluated(self, record) -> None:
        super().evaluated(record)
        scratch = record.details.get("scratch", {})
        if "mcc" in record.metrics and "mcc" in scratch:
            if self.points and self.points[-1][0] >= record.step:      # a reset: start over
                self.points = [p for p in self.points if p[0] < record.step]
            self.points.append((record.step, record.metrics["mcc"], scratch["mcc"]))

    def show_sample(self) -> None:
        if not self.is_mounted:
            return
        steps, tuned, scratch = (list(v) for v in zip(*self.points)) if self.points else ([], [], [])
        self.query_one(MccChart).draw(steps, tuned, scratch)
        if self.last_eval is not None:
            report = getattr(getattr(self.session, "transfer", None), "report", {}) or {}
            self.query_one("#scores", Static).update(
                score_table(self.last_eval.metrics, self.last_eval.details.get("scratch", {}), report,
                            self.last_eval.step))
