"""Draw your own digit: a canvas the mouse draws on (click and drag), or the keys (arrows move a
cursor, space paints, shift+arrows draw a line, x erases, c clears), and the model's top-3 guesses
for it, updated as you draw.

The drawing goes through the preprocessing of the data set the model was trained on
(tui.app.pixels: MNIST's 20x20 box and centre of mass; the 8x8 set's 32x32 box counted in 4x4
blocks, then the dataset's standardization, if any), and the screen shows that model input too.
Predictions run in a thread worker: `predict_proba` takes the session lock, which the training
thread holds during each step.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Static

from descent.engine.errors import DescentError
from descent.tui.app.pixels import PixelImage, mnist_like, optdigits_like


def canvas_spec(dataset) -> tuple[int, float, callable]:
    """(canvas size in pixels, brush radius in pixels, preprocessing) for this dataset's images."""
    h, w = dataset.in_shape[-2:]
    if (h, w) == (8, 8):
        return 32, 2.6, optdigits_like          # the 8x8 set was made from 32x32 bitmaps, thick strokes
    return 28, 1.4, mnist_like


def model_input(dataset, image: np.ndarray) -> np.ndarray:
    """A preprocessed image in [0, 1] as one batch of the model's input: its shape, and the
    dataset's standardization if the loader applied one."""
    x = np.asarray(image, dtype=np.float32).reshape((1, *dataset.in_shape))
    mean, std = dataset.extra_test.get("pixel_mean"), dataset.extra_test.get("pixel_std")
    if mean is not None and std is not None:
        # a pixel almost always blank in training has a tiny std: ink there would swamp the rest
        x = np.clip((x - mean) / std, dataset.x_train.min(axis=0), dataset.x_train.max(axis=0))
    return x.astype(np.float32)


class DigitCanvas(Widget, can_focus=True):
    """An ink image (size x size, floats in [0, 1]) drawn two pixel rows per terminal row."""

    BINDINGS = [
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("shift+up", "move(0, -1, True)", "Draw up", show=False),
        Binding("shift+down", "move(0, 1, True)", "Draw down", show=False),
        Binding("shift+left", "move(-1, 0, True)", "Draw left", show=False),
        Binding("shift+right", "move(1, 0, True)", "Draw right", show=False),
        Binding("space,enter", "paint", "Paint"),
        Binding("x", "erase", "Erase"),
        Binding("c", "clear", "Clear"),
    ]

    def __init__(self, size: int = 28, radius: float = 1.4, **kwargs):
        super().__init__(**kwargs)
        self.pixels = size
        self.radius = radius
        self.ink = np.zeros((size, size))
        self.cursor = (size // 2, size // 4)        # (column, terminal row)
        self.pressed = 0                    # the mouse button held down, 0 for none

    def render(self):
        return PixelImage(self.ink, plain=self.app.no_color, cursor=self.cursor if self.has_focus else None)

    def get_content_width(self, container, viewport) -> int:
        return self.pixels

    def get_content_height(self, container, viewport, width) -> int:
        return (self.pixels + 1) // 2

    def dab(self, col: int, row: int, value: float = 1.0) -> None:
        """Paint (value 1) or erase (0) a soft round brush at terminal cell (col, row)."""
        cy, cx = 2 * row + 1.0, col + 0.5            # a cell's centre in pixel coordinates
        ys, xs = np.indices(self.ink.shape) + 0.5
        weight = np.clip(self.radius + 0.5 - np.hypot(ys - cy, xs - cx), 0.0, 1.0)
        if value:
            np.maximum(self.ink, weight, out=self.ink)
        else:
            self.ink *= 1.0 - weight
        self.changed()

    def changed(self) -> None:
        self.refresh()
        self.post_message(self.Changed(self))

    class Changed(Message):
        def __init__(self, canvas: "DigitCanvas"):
            super().__init__()
            self.canvas = canvas

    def _clamp(self, col: int, row: int) -> tuple[int, int]:
        return (min(max(col, 0), self.pixels - 1), min(max(row, 0), (self.pixels + 1) // 2 - 1))

    def action_move(self, dx: int, dy: int, draw: bool = False) -> None:
        self.cursor = self._clamp(self.cursor[0] + dx, self.cursor[1] + dy)
        if draw:
            self.dab(*self.cursor)
        self.refresh()

    def action_paint(self) -> None:
        self.dab(*self.cursor)

    def action_erase(self) -> None:
        self.dab(*self.cursor, value=0.0)

    def action_clear(self) -> None:
        self.ink[:] = 0.0
        self.changed()

    def _mouse_paint(self, event, button: int) -> None:
        col, row = event.x, event.y
        if 0 <= col < self.pixels and 0 <= row < (self.pixels + 1) // 2:
            self.cursor = (col, row)
            self.dab(col, row, 0.0 if button == 3 else 1.0)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self.pressed = event.button         # a drag paints with the button pressed here (3 erases)
        self.capture_mouse()
        self.focus()
        self._mouse_paint(event, self.pressed)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self.pressed:
            self._mouse_paint(event, self.pressed)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        self.pressed = 0
        self.release_mouse()


class DrawScreen(ModalScreen):
    """The canvas, what the model sees, and its top-3 guesses. Esc (or d) goes back."""

    BINDINGS = [Binding("escape,d", "dismiss", "Back")]
    DEFAULT_CSS = """
    DrawScreen { align: center middle; }
    #draw-box { width: auto; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
                border: round $primary; background: $surface; }
    #draw-help { width: 64; max-width: 100%; height: auto; color: $text-muted; }
    #draw-row { width: auto; height: auto; }
    DigitCanvas { width: auto; height: auto; margin-right: 2; }
    DigitCanvas:focus { outline: none; }
    #draw-side { width: 30; height: auto; }
    #draw-input { height: auto; }
    #draw-guess { height: auto; margin-top: 1; }
    """

    def __init__(self, session, **kwargs):
        super().__init__(**kwargs)
        self.session = session
        self.size_px, self.radius, self.prepare = canvas_spec(session.dataset)
        self.asked = 0
        self.top: list[tuple[str, float]] = []      # the latest guesses shown, best first

    def compose(self) -> ComposeResult:
        with Vertical(id="draw-box"):
            yield Static("Draw a digit: mouse drag, or arrows + space (shift+arrows draw, x erases, "
                         "c clears); esc goes back", id="draw-help")
            with Horizontal(id="draw-row"):
                yield DigitCanvas(self.size_px, self.radius, id="canvas")
                with Vertical(id="draw-side"):
                    yield Static("", id="draw-input")
                    yield Static("The guesses appear as you draw.", id="draw-guess")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(DigitCanvas).focus()

    def on_digit_canvas_changed(self, message: DigitCanvas.Changed) -> None:
        image = self.prepare(message.canvas.ink)
        shown = self.query_one("#draw-input", Static)
        if image is None:
            shown.update("")
            self.query_one("#draw-guess", Static).update("The guesses appear as you draw.")
            self.top = []
            return
        scale = 2 if image.shape[0] <= 8 else 1
        header = Text(f"what the model sees ({image.shape[1]}x{image.shape[0]})\n", style="dim")
        shown.update(_stack(header, PixelImage(np.kron(image, np.ones((scale, scale))), self.app.no_color)))
        self.asked += 1
        self._predict(model_input(self.session.dataset, image), self.asked)

    @work(thread=True, group="draw", exit_on_error=False)
    def _predict(self, x: np.ndarray, ticket: int) -> None:
        try:
            probs = self.session.predict_proba(x)[0]
        except (DescentError, RuntimeError, AttributeError):
            probs = None
        try:
            self.app.call_from_thread(self._show, probs, ticket)
        except RuntimeError:        # the app closed meanwhile
            pass

    def _show(self, probs, ticket: int) -> None:
        if ticket != self.asked or not self.is_mounted:
            return
        out = self.query_one("#draw-guess", Static)
        if probs is None:
            out.update("the model is not ready yet")
            return
        names = self.session.dataset.class_names
        order = np.argsort(-probs)[:3]
        self.top = [(names[c], float(probs[c])) for c in order]
        text = Text("the model's guesses\n", style="bold")
        for rank, (name, p) in enumerate(self.top):
            text.append(f"{name:>2} ", style="bold" if rank == 0 else "")
            text.append(f"{'█' * int(round(p * 12)):<12}", style="green" if rank == 0 else "dim")
            text.append(f" {100 * p:5.1f}%\n")
        out.update(text)


def _stack(*parts):
    from rich.console import Group

    return Group(*parts)
