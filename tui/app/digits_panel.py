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

from descent.tui.app.panels import BrowsePanel
from descent.tui.app.pixels import (confusion_grid, confusion_heatmap, confusion_width, fit,
                                    normalized, pixel_lines)


def guess_bars(probs: np.ndarray, names: list[str], top: int = 3, width: int = 10) -> Text:
    """The `top` most likely classes, one short line each: name, bar, percent."""
    out = Text()
    for rank, c in enumerate(np.argsort(-probs)[:top]):
        p = float(probs[c])
        out.append(f"{names[c]:>2} ", style="bold" if rank == 0 else "")
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
        side.styles.width = confusion_width(10) + 3          # padding and a thin scroll bar

    def entered(self) -> None:
        """Focus, so that `d` and the arrows reach this panel."""
        self.focus()

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
        cols = max(8, view.size.width - 2 or 40)
        rows = max(4, (view.size.height or 16) - 1)
        side_by_side = cols >= min(2 * image.shape[1], 28) + 18
        picture = pixel_lines(fit(image, cols - 18 if side_by_side else cols, rows), plain=self.app.no_color)
        head = Text(f"test digit {i + 1} of {ds.n_test}  ←→ browse, d draws\n", style="bold")
        true = Text(f"true: {ds.class_names[int(ds.y_test[i])]}", style="bold")
        session, x = self.session, ds.x_test[i:i + 1]

        def show(probs):
            side = [true, Text("")]
            if probs is not None:
                side += guess_bars(probs[0], ds.class_names).split("\n")
            text = head.copy()
            if side_by_side:              # the guesses beside the picture, from its second row
                side = [Text("")] + side
                for r in range(max(len(picture), len(side))):
                    text.append_text(picture[r] if r < len(picture) else Text(" " * picture[0].cell_len))
                    text.append("  ")
                    text.append_text(side[r] if r < len(side) else Text(""))
                    text.append("\n")
            else:
                text.append_text(Text("\n").join(picture + side))
            view.update(text)

        self.predict(lambda: session.predict_proba(x), show)
        if self.last_eval and "confusion" in self.last_eval.details:
            matrix = self.last_eval.details["confusion"]
            room = self.query_one("#confusion-side").size.height
            if room and room < len(matrix) + 3 and not self.app.no_color:
                grid = confusion_heatmap(matrix, ds.class_names)        # 80x24: shades, no numbers
            else:
                grid = confusion_grid(matrix, ds.class_names, plain=self.app.no_color)
            self.query_one("#confusion", Static).update(grid)
