"""The text-generation panel: watch a character language model learn to write.

- the sample every evaluation draws (`Evaluation.details["sample"]`, fixed seed, so the text
  changes with the model only): babble first, Shakespeare-shaped text later; the first one
  stays below, dimmed, to compare;
- the validation loss in nats and in bits per character, next to the corpus's unigram entropy
  (what a model that ignores context scores);
- a prompt box: enter continues the user's text (`Session.generate`, in the panel's thread
  worker, never the UI thread);
- the temperature, live: left / right turn it by 0.1, for the next prompt and the next
  evaluation's sample (`session.sample_temperature`).
Reads `Evaluation.metrics` loss, bits_per_char, accuracy and `details` sample,
sample_temperature, unigram_entropy.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from descent.engine.errors import DescentError
from descent.tui.app.panels import ScenarioPanel, focus_now

PROMPT_CHARS = 300
TEMPERATURES = (0.0, 2.0)


def header(record, temperature: float) -> Text:
    """One or two lines: the figures of the newest evaluation and the temperature."""
    out = Text()
    if record is None:
        out.append("A sample appears at every evaluation.", style="bold")
    else:
        m, d = record.metrics, record.details
        out.append(f"step {record.step}  ", style="bold")
        out.append(f"val loss {m['loss']:.3f} nats = {m['bits_per_char']:.3f} bits/char", style="bold")
        entropy = d.get("unigram_entropy")
        if entropy:
            out.append(f"  (letter counts alone: {entropy:.2f})", style="dim")
    out.append(f"\ntemperature {temperature:.1f}", style="bold cyan")
    out.append("  ← → turn it (0 = always the likeliest)", style="dim")
    return out


class TextgenPanel(ScenarioPanel):
    title = "Text"
    can_focus = True
    DEFAULT_CSS = """
    TextgenPanel #tg-head { height: auto; padding: 0 1; }
    TextgenPanel #tg-prompt { margin: 0 1; }
    TextgenPanel #tg-scroll { height: 1fr; padding: 0 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = None            # (step, sample) of the first evaluation, to compare
        self.temperature = 0.8

    def compose(self) -> ComposeResult:
        yield Static(header(None, self.temperature), id="tg-head")
        yield Input(placeholder="type an opening, press enter: the model goes on (esc leaves)", id="tg-prompt")
        with VerticalScroll(id="tg-scroll"):
            yield Static("", id="tg-continued")
            yield Static("", id="tg-sample")

    def bind(self, session) -> None:
        super().bind(session)
        self.temperature = getattr(session, "sample_temperature", self.temperature)

    def entered(self) -> None:
        focus_now(self.query_one("#tg-prompt", Input))

    def browse(self, delta: int) -> None:
        lo, hi = TEMPERATURES
        self.temperature = round(min(hi, max(lo, self.temperature + 0.1 * delta)), 1)
        if self.session is not None:
            self.session.sample_temperature = self.temperature
        self.query_one("#tg-head", Static).update(header(self.last_eval, self.temperature))

    def evaluated(self, record) -> None:
        super().evaluated(record)
        if self.first is None and record.details.get("sample"):
            self.first = (record.step, record.details["sample"])

    def show_sample(self) -> None:
        self.query_one("#tg-head", Static).update(header(self.last_eval, self.temperature))
        out = Text()
        d = self.last_eval.details if self.last_eval else {}
        if d.get("sample"):
            out.append(f"sample at step {self.last_eval.step} "
                       f"(temperature {d.get('sample_temperature', self.temperature):.1f}):\n", style="bold")
            out.append(d["sample"].strip("\n") + "\n")
        if self.first and self.last_eval and self.first[0] != self.last_eval.step:
            out.append(f"\nthe first sample, at step {self.first[0]}:\n", style="bold dim")
            out.append(self.first[1].strip("\n") + "\n", style="dim")
        self.query_one("#tg-sample", Static).update(out)

    @on(Input.Submitted, "#tg-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.continue_prompt(event.value)

    def continue_prompt(self, prompt: str) -> None:
        out = self.query_one("#tg-continued", Static)
        if self.session is None or self.session.trainer is None:
            out.update("the model is not ready yet")
            return
        session, temperature = self.session, self.temperature
        out.update(Text("writing…", style="dim"))

        def compute():
            try:
                return session.generate(prompt, PROMPT_CHARS, temperature, None, 0)
            except DescentError as e:
                return DescentError(str(e))

        def show(result):
            if result is None or isinstance(result, DescentError):
                out.update(str(result) if result else "the model is not ready yet")
                return
            text = Text(prompt, style="bold")
            text.append(result)
            out.update(text)

        self.predict(compute, show)
