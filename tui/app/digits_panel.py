"""The digits panel: a test digit in 256-colour greys with the model's top-3 guesses (left/right
browse), the compact heat-coloured confusion matrix, and `d` to draw your own digit
(tui.app.draw). Shade characters replace the greys under NO_COLOR.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from descent.tui.app.panels import BrowsePanel, focus_now
from descent.tui.app.pixels import (cell_width, confusion_grid, confusion_heatmap, confusion_width, fit,
                                    normalized, pixel_lines)


def guess_bars(probs: np.ndarray, names: list[str], top: int = 3, width: int = 10) -> Text:
    """The `top` most likely classes, one short line each: name, bar, percent (width + 6 + the
    longest name's columns)."""
    out = Text()
    name_w = max(len(n) for n in names)
    for rank, c in enumerate(np.argsort(-probs)[:top]):
        p = float(probs[c])
        out.append(f"{names[c]:>{name_w}} ", style="bold" if rank == 0 else "")
        out.append(f"{'█' * int(round(p * width)):<{width}}", style="green" if rank == 0 else "dim")
        out.append(f"{100 * p:4.0f}%\n")
    return out


class DigitsPanel(BrowsePanel):
    title = "Digits"
    BINDINGS = [Binding("d", "draw", "Draw a digit")]

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static("The test digits appear once the data is loaded.", id="digit-view", classes="sample")
            with VerticalScroll(classes="side", id="confusion-side"):
                yield Static("The confusion matrix appears after the first evaluation.", id="confusion")

    def on_mount(self) -> None:
        side = self.query_one("#confusion-side")
        side.styles.scrollbar_size_vertical = 1
        self.query_one("#confusion").styles.text_wrap = "nowrap"      # a row never breaks
        side.styles.width = confusion_width(10) + 3          # padding and a thin scroll bar

    def entered(self) -> None:
        """Focus, so that `d` and the arrows reach this panel."""
        focus_now(self)

    def action_draw(self) -> None:
        from descent.tui.app.draw import DrawScreen

        if self.session is None or self.session.trainer is None:
            self.notify("The model is not ready yet.", timeout=3)
            return
        self.app.push_screen(DrawScreen(self.session))

    def show_sample(self) -> None:
        if self.session is None or self.session.dataset is None:
            return
        ds = self.session.dataset
        i = self.index
        raw = ds.extra_test.get("images")      # unstandardized pixels, where the loader keeps them
        image = normalized(raw[i] if raw is not None else ds.x_test[i])
        view = self.query_one("#digit-view", Static)
        cols = view.size.width - 2 if view.size.width else 40
        rows = max(4, view.size.height - 1 if view.size.height else 16)
        name_w = max(len(n) for n in ds.class_names)
        pixels = fit(image, cols - name_w - 11, rows)      # the guesses beside need a bar of 4 at least
        side_by_side = pixels.shape[1] >= min(image.shape[1], 20)
        if not side_by_side:
            pixels = fit(image, cols, rows)
        bar = min(10, max(4, cols - pixels.shape[1] - name_w - 7)) if side_by_side else 10
        picture = pixel_lines(pixels, plain=self.app.no_color)
        head = Text(f"test digit {i + 1} of {ds.n_test}  ←→ browse, d draws\n" if cols >= 40
                    else f"digit {i + 1}/{ds.n_test} ←→ d\n", style="bold")
        true = Text(f"true: {ds.class_names[int(ds.y_test[i])]}", style="bold")
        session, x = self.session, ds.x_test[i:i + 1]

        def show(probs):
            side = [true, Text("")]
            if probs is not None:
                side += guess_bars(probs[0], ds.class_names, width=bar).split("\n")
            text = head.copy()
            if side_by_side:              # the guesses beside the picture, from its second row
                side = [Text("")] + side
                for r in range(max(len(picture), len(side))):
                    text.append_text(picture[r] if r < len(picture) else Text(" " * picture[0].cell_len))
                    text.append(" ")
                    text.append_text(side[r] if r < len(side) else Text(""))
                    text.append("\n")
            else:
                text.append_text(Text("\n").join(picture + side))
            view.update(text)

        self.predict(lambda: session.predict_proba(x), show)
        if self.last_eval and "confusion" in self.last_eval.details:
            matrix = self.last_eval.details["confusion"]
            side = self.query_one("#confusion-side")
            if side.size.height and side.size.height < len(matrix) + 3 and not self.app.no_color:
                grid = confusion_heatmap(matrix, ds.class_names)        # 80x24: shades, no numbers
                side.styles.width = 2 * len(matrix) + 6
            else:
                cell = cell_width(matrix)
                if self.size.width and self.size.width - confusion_width(len(matrix), cell) < 40:
                    cell = 3                # the digit keeps its room; colours keep the cells apart
                side.styles.width = confusion_width(len(matrix), cell) + 3
                grid = confusion_grid(matrix, ds.class_names, plain=self.app.no_color, cell=cell)
            self.query_one("#confusion", Static).update(grid)
