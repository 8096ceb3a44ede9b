"""The scenario panel (by `scenario.panel`): what the model does on real examples.

spam: type a message, see P(spam); the confusion matrix and recent mistakes.
digits: tui.app.digits_panel (a test digit, the top-3 predictions, the confusion matrix, draw
your own). nile: a test sentence with its gap compressed and the model's answer; the
accuracy-by-gap curve. generic: the latest metrics and, for classification, the confusion matrix.

Predictions run in a thread worker (`predict`): `predict_proba` takes the session lock, which the
training thread holds during each step, so the UI thread never waits on it. Evaluations come
from the dashboard.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Static

from descent.engine.errors import DescentError
from descent.engine.records import Evaluation
from descent.tui.app.charts import GapChart


# ---- text renderings (pure functions) -------------------------------------------------------------
def confusion_text(matrix, names: list[str], title: str = "confusion: rows true, columns predicted") -> Text:
    """The matrix as an aligned table; the diagonal in bold."""
    m = np.asarray(matrix, dtype=np.int64)
    k = len(m)
    names = [str(n) for n in (names or range(k))][:k]
    short = [n[:6] for n in names]
    cell = max(max((len(str(v)) for v in m.ravel()), default=1), max(len(n) for n in short)) + 1
    head = max(len(n) for n in short) + 1
    out = Text(title + "\n", style="bold")
    out.append(" " * head + "".join(f"{n:>{cell}}" for n in short) + "\n", style="dim")
    for i in range(k):
        out.append(f"{short[i]:>{head - 1}} ", style="dim")
        for j in range(k):
            v = int(m[i, j])
            style = "bold green" if i == j else ("red" if v else "dim")
            out.append(f"{v:>{cell}}", style=style)
        out.append("\n")
    total = int(m.sum())
    if total:
        out.append(f"{int(np.trace(m))} of {total} right", style="dim")
    return out


def prob_bars(probs: np.ndarray, names: list[str], top: int = 3, width: int = 16) -> Text:
    """The `top` most likely classes with bars."""
    order = np.argsort(-probs)[:top]
    out = Text()
    for rank, c in enumerate(order):
        p = float(probs[c])
        bar = "█" * int(round(p * width))
        out.append(f"{names[c]:>10} ", style="bold" if rank == 0 else "")
        out.append(f"{bar:<{width}}", style="green" if rank == 0 else "dim")
        out.append(f" {100 * p:5.1f}%\n")
    return out


def locked(session):
    """The session's model lock (held by the training thread during a step), where it has one."""
    return getattr(session, "_lock", None) or nullcontext()


def model_outputs(session, x) -> np.ndarray:
    """Raw model outputs for `x` (regression predictions), under the session lock; call it off
    the UI thread (`ScenarioPanel.predict`)."""
    if callable(getattr(session, "predict", None)):
        return np.asarray(session.predict(x))
    with locked(session):
        return np.asarray(session.trainer.predict(x))


# ---- panels ---------------------------------------------------------------------------------------
class ScenarioPanel(Vertical):
    """Base: holds the session once it is prepared; `evaluated` and `browse` do nothing here."""

    title = "Results"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.session = None
        self.last_eval: Evaluation | None = None
        self.dirty = False
        self.asked = 0          # the newest prediction asked for; an older answer is not shown

    def predict(self, compute, show) -> None:
        """`show(compute())` with `compute` (which takes the session lock) off the UI thread;
        `show` gets None if the model cannot predict yet."""
        self.asked += 1
        self._predict(compute, show, self.asked)

    @work(thread=True, group="predict", exit_on_error=False)
    def _predict(self, compute, show, ticket: int) -> None:
        try:
            result = compute()
        except (DescentError, RuntimeError, AttributeError):
            result = None
        try:
            self.app.call_from_thread(self._answer, show, result, ticket)
        except RuntimeError:        # the app closed meanwhile
            pass

    def _answer(self, show, result, ticket: int) -> None:
        if ticket == self.asked and self.is_mounted:
            show(result)

    def bind(self, session) -> None:
        self.session = session
        self.show_sample()

    def evaluated(self, record: Evaluation) -> None:
        """Keep the newest evaluation; the dashboard redraws the panel when it is shown."""
        self.last_eval = record
        self.dirty = True

    def browse(self, delta: int) -> None:
        pass

    def show_sample(self) -> None:
        pass

    def entered(self) -> None:
        """The user opened this panel's tab (it takes the keys here with `focus_now`)."""


def focus_now(widget) -> None:
    """Focus `widget` before the next key is handled. Widget.focus() waits for the app's queue,
    behind keys already typed: "2" then "d" at once switched the tab but lost the "d"."""
    widget.screen.set_focus(widget)


class BrowsePanel(ScenarioPanel):
    """A panel that shows one test sample at a time; left/right move through them."""

    can_focus = True
    BINDINGS = [
        Binding("left", "browse(-1)", "Previous sample"),
        Binding("right", "browse(1)", "Next sample"),
    ]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.index = 0

    def action_browse(self, delta: int) -> None:
        self.browse(delta)

    def browse(self, delta: int) -> None:
        if self.session is None or self.session.dataset is None:
            return
        n = self.session.dataset.n_test
        self.index = (self.index + delta) % max(1, n)
        self.show_sample()


class NilePanel(BrowsePanel):
    title = "Nile"

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static("A test sentence appears once the data is loaded.", id="nile-view", classes="sample")
            yield GapChart(id="gap-chart")

    def show_sample(self) -> None:
        from descent.engine.data import nile_sentence

        if self.session is None or self.session.dataset is None:
            return
        ds = self.session.dataset
        i = self.index
        mask = None if ds.mask_test is None else ds.mask_test[i]
        gap = int(ds.extra_test["gap"][i]) if "gap" in ds.extra_test else None
        text = Text(f"test sentence {i + 1} of {ds.n_test}" + (f", gap {gap}" if gap is not None else "")
                    + "   ← → browse\n\n", style="bold")
        text.append(nile_sentence(ds.x_test[i], mask, ds.vocab) + "\n\n")
        text.append(f"answer: {ds.class_names[int(ds.y_test[i])]}\n", style="bold")
        session, x = self.session, ds.x_test[i:i + 1]
        m = None if mask is None else ds.mask_test[i:i + 1]

        def show(probs):
            if probs is not None:
                text.append("model:\n")
                text.append_text(prob_bars(probs[0], ds.class_names))
            self.query_one("#nile-view", Static).update(text)

        self.predict(lambda: session.predict_proba(x, m), show)
        details = self.last_eval.details if self.last_eval else {}
        self.query_one(GapChart).draw(details.get("by_gap"), details.get("chance"))


class SpamPanel(ScenarioPanel):
    title = "Spam"

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(classes="sample"):
                yield Input(placeholder="type a message to score it (esc leaves)", id="spam-input")
                yield Static("", id="spam-score")
                yield Static("", id="mistakes")
            with VerticalScroll(classes="side"):
                yield Static("The confusion matrix appears after the first evaluation.", id="confusion")

    def entered(self) -> None:
        """Opening the tab puts the cursor in the message box (esc leaves it)."""
        focus_now(self.query_one("#spam-input", Input))

    @on(Input.Changed, "#spam-input")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.score()

    @on(Input.Submitted, "#spam-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.score()

    def score(self) -> None:
        text = self.query_one("#spam-input", Input).value
        out = self.query_one("#spam-score", Static)
        if not text.strip():
            out.update("")
            return
        if self.session is None or self.session.trainer is None:
            out.update("the model is not ready yet")
            return
        session = self.session
        names = session.dataset.class_names

        def compute():
            try:
                return float(session.predict_texts([text])[0, 1])
            except DescentError as e:
                return str(e)

        def show(p):
            if not isinstance(p, float):
                out.update(p or "the model is not ready yet")
                return
            bar = "█" * int(round(p * 20))
            score = Text(f"P({names[1]}) ", style="bold")
            score.append(f"{bar:<20}", style="red" if p >= 0.5 else "green")
            score.append(f" {100 * p:5.1f}%  → {names[int(p >= 0.5)]}")
            out.update(score)

        self.predict(compute, show)

    def show_sample(self) -> None:
        self.score()
        if not self.last_eval:
            return
        d, metrics = self.last_eval.details, self.last_eval.metrics
        names = d.get("class_names") or self.session.dataset.class_names
        if "confusion" in d:
            side = confusion_text(d["confusion"], names)
            if "recall" in metrics:         # the generic binary metrics, in this panel's words
                side.append(f"\n{names[1]} caught {100 * metrics['recall']:5.1f}%"
                            f"\n{names[0]} blocked {100 * metrics['false_positive_rate']:5.1f}%")
            self.query_one("#confusion", Static).update(side)
        mistakes = d.get("mistakes") or []
        text = Text("recent mistakes (most confident first)\n", style="bold")
        for m in mistakes[:6]:
            msg = " ".join(str(m["text"]).split())
            text.append(f"{m['label']:>4} P({names[1]}) {100 * m['p_positive']:5.1f}%  ", style="red")
            text.append((msg[:70] + "…" if len(msg) > 71 else msg) + "\n")
        if not mistakes:
            text.append("none", style="dim")
        self.query_one("#mistakes", Static).update(text)


class GenericPanel(ScenarioPanel):
    """The latest metrics; classification adds the confusion matrix, regression a plot of the
    test predictions against their targets (with the metrics beside it)."""

    title = "Results"
    SCATTER_SAMPLES = 1000

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Metrics appear after the first evaluation.", id="metrics")
            yield Static("", id="confusion")

    def show_sample(self) -> None:
        if not self.last_eval:
            return
        m = self.last_eval.metrics
        lines = [f"evaluation at step {self.last_eval.step}"] + [f"{k:>12} {v:.4f}" for k, v in m.items()]
        ds = getattr(self.session, "dataset", None)
        if getattr(ds, "task", "") == "regression" and self.session.trainer is not None:
            self.scatter(lines)
            return
        text = Text(lines[0] + "\n", style="bold")
        text.append("\n".join(lines[1:]) + "\n")
        self.query_one("#metrics", Static).update(text)
        d = self.last_eval.details
        if "confusion" in d and len(d["confusion"]) <= 16:
            self.query_one("#confusion", Static).update(confusion_text(d["confusion"], d.get("class_names")))

    def scatter(self, lines: list[str]) -> None:
        from descent.tui.app.lesson_render import render_scatter

        session, ds = self.session, self.session.dataset
        n = min(len(ds.x_test), self.SCATTER_SAMPLES)
        x, y = ds.x_test[:n], ds.y_test[:n]
        width = self.content_size.width if self.content_size.width >= 40 else 76
        height = self.content_size.height if self.content_size.height >= 8 else 12
        cols, rows = max(16, width - 40), max(4, height - 2)

        def show(pred):
            if pred is None:
                return
            side = [lines[0]] + [line.strip() for line in lines[1:]]
            self.query_one("#metrics", Static).update(render_scatter(pred[:, 0] if pred.ndim == 2 else pred,
                                                                     y.reshape(len(y), -1)[:, 0], cols, rows,
                                                                     side, width))

        self.predict(lambda: model_outputs(session, x), show)


PANELS = {"nile": NilePanel, "spam": SpamPanel, "generic": GenericPanel}


def make_panel(kind: str) -> ScenarioPanel:
    if kind == "digits":        # its own module, which builds on BrowsePanel here
        from descent.tui.app.digits_panel import DigitsPanel

        return DigitsPanel(id="panel")
    if kind == "seq2seq":
        from descent.tui.app.seq2seq_panel import Seq2SeqPanel

        return Seq2SeqPanel(id="panel")
    if kind == "textgen":
        from descent.tui.app.textgen_panel import TextgenPanel

        return TextgenPanel(id="panel")
    from descent.tui.app.finetune_panel import FinetunePanel
    from descent.tui.app.lesson_panels import LESSON_PANELS      # they build on ScenarioPanel above

    return {**PANELS, **LESSON_PANELS, "finetune": FinetunePanel}.get(kind, GenericPanel)(id="panel")
