"""The seq2seq lesson's panel: the bottleneck and what attention does about it.

- Accuracy by input length: exact-sequence accuracy per source length from the newest
  evaluation, with every pinned run's (`Pinned.by_length`) overlaid: pin a run without
  attention, reset with attention on, and the two curves part at the long sentences.
- The attention alignment of one test sentence as a heatmap: one row per decoder step (the
  word it wrote), one column per source word; the viridis ramp (shades under NO_COLOR) from 0 to 1.
  Reversal draws the anti-diagonal.
- Sample outputs from short to long, each written word green where it is the target's word at
  that position and red (underlined, so NO_COLOR shows it too) where not.

Everything comes from `Evaluation.details` ("by_length", "samples", "attention"; see
engine/seq2seq_eval.py), which the session computes in the training thread: the panel itself
never runs the model, so nothing here blocks the UI thread.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from descent.tui.app.charts import COLORS, MARKERS, Chart, pin_style
from descent.tui.app.panels import ScenarioPanel
from descent.tui.app.timegrads import ramp, shade, use_colour

LABEL = 6                   # characters of a row label (the decoder's word)


class LengthChart(Chart):
    """Exact-sequence accuracy % against source length; pinned runs overlaid."""

    def draw(self, by_length: dict | None, pinned: list) -> None:
        self.start("exact % by input length")
        drawn = []
        for i, p in enumerate(pinned):
            by = getattr(p, "by_length", None)
            if by and by.get("length"):
                drawn += self.line(list(by["length"]), [100 * a for a in by["accuracy"]], label=p.label,
                                   **pin_style(i))
        if by_length and by_length.get("length"):
            drawn += self.line(list(by_length["length"]), [100 * a for a in by_length["accuracy"]],
                               label="this run", marker=MARKERS[1], color=COLORS[1])
            self.legend = self.legend[-1:] + self.legend[:-1]                    # this run first
        if not drawn:
            self.placeholder("after the first evaluation")
        else:
            self.plt.ylim(-4, 104)                  # 0 and 100 off the frame, where plotext would hide them
            self.plt.yticks([0, 50, 100] if self.size.height < 12 else [0, 25, 50, 75, 100])
        self.finish("source length (words)")


def render_attention(att: dict | None, width: int, height: int, colour: bool = True) -> Text:
    """The alignment heatmap in at most width x height cells (rows cut from the bottom, columns
    from the right, where it does not fit)."""
    if not att or not att.get("weights"):
        return Text("The attention alignment appears after the first evaluation\n(with attention on).",
                    style="italic")
    src, out, weights = att["source"], list(att["output"]) + ["</s>"], att["weights"]
    cell = 3 if LABEL + 1 + 3 * len(src) <= width else 2
    cols = max(1, min(len(src), (width - LABEL - 1) // cell))
    cut = cols < len(src) or len(weights) + 2 > height                        # a line says what is cut
    rows = max(1, min(len(weights), height - 2 - cut))
    text = Text("attention: rows wrote, columns read\n", style="bold", no_wrap=True, overflow="crop")
    text.append(" " * (LABEL + 1))
    for j in range(cols):
        text.append(f"{src[j][:cell - 1]:<{cell}}", style="dim" if j % 2 else "")
    text.append("\n")
    for i in range(rows):
        word = out[i] if i < len(out) else "?"
        text.append(f"{word[:LABEL]:>{LABEL}} ", style="dim")
        for j in range(cols):
            w = float(weights[i][j])
            if colour:
                text.append(" " * cell, style=f"on {ramp(w)}")
            else:
                text.append(shade(w) * cell)
        text.append("\n")
    more = [f"{len(weights) - rows} more rows" if rows < len(weights) else "",
            f"{len(src) - cols} more columns" if cols < len(src) else ""]
    if any(more):
        text.append("(" + ", ".join(m for m in more if m) + " not shown)", style="dim")
    return text


def render_samples(samples: list | None, width: int, rows: int) -> Text:
    """One line per sample: its length, ✓/✗ for the whole sentence, the words written."""
    if not samples:
        return Text("Sample outputs appear after the first evaluation.", style="italic")
    text = Text(no_wrap=True, overflow="ellipsis")                          # a sentence never wraps
    text.append("samples  green right · red wrong\n", style="bold")
    for s in samples[-max(1, rows - 1):]:
        right = s["right"]
        exact = all(right) and len(s["output"]) == len(s["target"])
        line = Text(f"{s['length']:>2} ", style="dim")
        line.append("✓ " if exact else "✗ ", style="bold green" if exact else "bold red")
        words = s["output"] or ["(nothing)"]
        for k, word in enumerate(words):
            ok = k < len(right) and right[k] and k < len(s["target"])
            line.append(word, style="green" if ok else "bold red underline")
            line.append(" ")
        if len(s["output"]) < len(s["target"]):
            line.append(f"(+{len(s['target']) - len(s['output'])} missing)", style="red")
        line.truncate(max(8, width - 1), overflow="ellipsis")
        text.append_text(line)
        text.append("\n")
    return text


class Seq2SeqPanel(ScenarioPanel):
    title = "Seq2seq"
    DEFAULT_CSS = """
    Seq2SeqPanel #s2s-left { width: 1fr; height: 1fr; }
    Seq2SeqPanel #length-chart { height: 1fr; min-height: 6; }
    Seq2SeqPanel #s2s-samples { height: auto; max-height: 45%; padding: 0 1; }
    Seq2SeqPanel #s2s-attention { width: auto; max-width: 55%; height: 1fr; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="s2s-left"):
                yield LengthChart(id="length-chart")
                yield Static(render_samples(None, 40, 1), id="s2s-samples")
            yield Static(render_attention(None, 40, 10), id="s2s-attention")

    def show_sample(self) -> None:
        if not self.is_mounted:
            return
        details = self.last_eval.details if self.last_eval else {}
        pinned = list(getattr(self.screen, "pinned", []) or [])
        self.query_one(LengthChart).draw(details.get("by_length"), pinned)
        w, h = self.content_size.width or 76, self.content_size.height or 12
        att = self.query_one("#s2s-attention", Static)
        att.update(render_attention(details.get("attention"), max(20, w * 55 // 100 - 2), h, use_colour(self)))
        left = max(20, w - (att.content_size.width or 0) - 2)
        rows = max(2, h * 45 // 100)
        self.query_one("#s2s-samples", Static).update(render_samples(details.get("samples"), left, rows))
