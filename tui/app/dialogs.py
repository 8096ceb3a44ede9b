"""Modal screens: quit (keep or discard the run), a yes/no question, open a checkpoint, help."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class QuitDialog(ModalScreen[str | None]):
    """Returns "keep", "discard", or None (stay)."""

    BINDINGS = [
        Binding("k", "choose('keep')", "Keep"),
        Binding("d", "choose('discard')", "Discard"),
        Binding("escape", "choose(None)", "Cancel"),
    ]

    def __init__(self, run_dir: str, step: int, verb: str = "Quit"):
        super().__init__()
        self.run_dir, self.step, self.verb = run_dir, step, verb

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(f"{self.verb} at step {self.step:,}: keep this run?", style="bold"))
            yield Static(Text.assemble(
                ("k", "bold"), f" Keep: save the checkpoint and metrics in {self.run_dir}\n",
                ("d", "bold"), " Discard: leave without saving (files you saved with s or e stay)\n",
                ("esc", "bold"), " Cancel: back to the dashboard"))
            with Horizontal(classes="buttons"):
                yield Button("Keep", id="keep", variant="primary")
                yield Button("Discard", id="discard", variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; y or enter says yes, n or esc no."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str, detail: str = ""):
        super().__init__()
        self.question, self.detail = question, detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question, style="bold"))
            if self.detail:
                yield Static(self.detail, markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class OpenDialog(ModalScreen[str | None]):
    """Asks for a checkpoint path; returns it, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: str):
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("[b]Open checkpoint[/b] (.npz); enter opens, esc cancels", markup=True)
            yield Input(value=self.default, placeholder="path/to/checkpoint.npz", id="path")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """\
[b]descent[/b]: train a network and watch it learn.

[b]Keys[/b] (also in the command palette, ctrl+p)
  [b]space[/b]  start / pause        [b]n[/b]  train one step
  [b]r[/b]      reset: new weights; knobs marked "on reset" apply
  [b]c[/b]      pin this run's curves to compare with the next
  [b]s[/b]      save a checkpoint    [b]o[/b]  open a checkpoint
  [b]e[/b]      export metrics       [b]k[/b]  show and focus the knobs
  [b]l[/b]      log-scale loss       [b]m[/b]  smooth the training loss
  [b]a[/b]      accuracy: zoomed % or error % on a log axis
  [b][ ][/b]    slower / faster (1, 10, 100 steps/s, max)   [b]f[/b]  full speed or back
  [b]h[/b]      hide / show the knobs: the charts get the width
  [b]g[/b]      time tab: the gates in place of the gradient curve
  [b]p[/b]      back to the scenario picker (keep or discard the run)
  [b]1-4[/b]    switch tabs          [b]← →[/b] browse test samples
  [b]tab[/b]    next control         [b]esc[/b] leave a field: the keys above work again
  [b]?[/b]      this help            [b]q[/b]  quit (keep or discard the run)

[b]Knobs[/b]
Live knobs (learning rate, momentum, clip norm, batch size) apply at the next step and draw a red \
vertical line on the charts where they took effect. The others (layer sizes, cell type, data) say \
"on reset" and take effect when you press r. In a number field, ↑ and ↓ step through sensible \
values (1, 2, 5, 10, ... for log-scale knobs) and apply at once.

[b]Charts[/b]
[b]loss[/b]: training loss at every logged step, validation loss at each evaluation.
[b]gradient norm[/b]: ||dL/dW|| per parameter tensor, log scale. A curve diving toward zero means \
that layer stopped learning (vanishing gradients); a jump of 1000x means exploding gradients.
[b]update/weight[/b]: |ΔW| / |W| per step; about 1e-3 is typical, 1e-1 too fast, 1e-6 too slow.
[b]time gradients[/b] (sequence models): ||dL/dh|| at each word (||dL/dx||, at the layer's input, \
where torch trained: its fused layers hide dL/dh), divided by its value at the answer, by words back from the answer (the answer at the right) at each logged step (down), on a \
log colour scale from 1 down to 1e-12. Dark on the left means the gradient dies before it reaches \
the fact (F): vanishing gradients. Try an LSTM or GRU cell. Beside it: the same as a curve, with \
pinned runs (c pins), and inside the cell: LSTM/GRU gate means or attention weights.

[b]Alerts[/b]
Training pauses by itself when the loss diverges, or the gradient norm explodes (over 1000x its \
running median) or vanishes (below 1e-7); a notification says what to try.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static(HELP, markup=True)
            yield Label("[dim]esc closes[/dim]", markup=True)

    def action_close(self) -> None:
        self.dismiss(None)
