"""The seq2seq panel: its renderers, and the panel at 80x24's and 120x40's panel sizes."""

from __future__ import annotations

import asyncio

import numpy as np
from textual.app import App

from descent.engine.records import Evaluation
from descent.tui.app.history import History, Pinned
from descent.tui.app.seq2seq_panel import LengthChart, Seq2SeqPanel, render_attention, render_samples

SRC = "red fox jumps over the lazy dog and runs far away now".split()
LENGTHS = list(range(1, 41))


def details():
    weights = (np.eye(13, 12)[:, ::-1] * 0.9 + 0.01).tolist()
    wrong = {"length": 4, "source": SRC[:4], "target": SRC[:4][::-1], "output": ["over", "cat", "fox", "red"],
             "right": [True, False, True, True, True]}
    right = {"length": 2, "source": SRC[:2], "target": ["fox", "red"], "output": ["fox", "red"],
             "right": [True, True, True]}
    return {"by_length": {"length": LENGTHS, "accuracy": [1.0] * 40}, "samples": [right, wrong],
            "attention": {"source": SRC, "output": SRC[::-1], "weights": weights}}


def test_attention_heatmap_rows_columns_and_crop():
    att = details()["attention"]
    text = render_attention(att, 60, 20, colour=False).plain.splitlines()
    assert text[1].split()[:2] == ["re", "fo"]                    # the source words head the columns
    assert text[2].split()[0] == "now" and text[2].rstrip().endswith("██")   # wrote "now" reading the last word
    assert text[-1].split()[0] == "</s>"
    small = render_attention(att, 30, 8, colour=False).plain.splitlines()
    assert len(small) == 8 and "not shown" in small[-1]
    coloured = render_attention(att, 60, 20, colour=True)
    assert any("on #" in str(span.style) for span in coloured.spans)
    assert "after the first evaluation" in render_attention(None, 40, 10).plain


def test_samples_colour_each_word():
    text = render_samples(details()["samples"], 60, 6)
    styles = {text.plain[s.start:s.end]: str(s.style) for s in text.spans}
    assert styles["cat"] == "bold red underline" and styles["over"] == "green"
    assert "✓" in text.plain and "✗" in text.plain


def test_history_pins_the_accuracy_by_length():
    h = History()
    h.add(Evaluation(5, 1.0, "test", {"accuracy": 0.5}, {"by_length": {"length": [1, 2], "accuracy": [1.0, 0.0]}}))
    assert h.pin("none").by_length == {"length": [1, 2], "accuracy": [1.0, 0.0]}


class PanelApp(App):
    def compose(self):
        yield Seq2SeqPanel(id="panel")


def shown(size):
    """The panel drawn with one evaluation and one pinned run: (its chart's legend, the heatmap's region)."""
    pin = Pinned("none", ([], []), ([], []), ([], []), (), {"length": LENGTHS, "accuracy": [0.0] * 40})

    async def run():
        app = PanelApp()
        async with app.run_test(size=size) as pilot:
            app.screen.pinned = [pin]
            panel = app.query_one(Seq2SeqPanel)
            panel.evaluated(Evaluation(10, 1.0, "test", {"accuracy": 1.0}, details()))
            await pilot.pause()
            panel.show_sample()
            await pilot.pause()
            return " ".join(app.query_one(LengthChart).legend), panel.query_one("#s2s-attention").region

    return asyncio.run(run())


def test_panel_fits_both_sizes():
    for size in ((76, 12), (116, 30)):            # the panel area of an 80x24 and a 120x40 dashboard
        legend, region = shown(size)
        assert "this run" in legend and "none" in legend
        assert region.right <= size[0] and region.height <= size[1]
