"""Modal screens: quit (keep or discard the run), open a checkpoint, help."""

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

    def __init__(self, run_dir: str, step: int):
        super().__init__()
        self.run_dir, self.step = run_dir, step

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(f"Quit at step {self.step:,}: keep this run?", style="bold"))
            yield Static(Text.assemble(
                ("k", "bold"), f" Keep: save the checkpoint and metrics in {self.run_dir}\n",
                ("d", "bold"), " Discard: quit without saving (files you saved with s or e stay)\n",
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
  [b]space[/b]  start / pause training        [b]n[/b]  one step
  [b]r[/b]      reset (new weights; applies knobs marked "on reset")
  [b]c[/b]      pin this run's curves to compare with the next
  [b]s[/b]      save a checkpoint             [b]o[/b]  open a checkpoint
  [b]e[/b]      export metrics (metrics.jsonl)
  [b]l[/b]      loss on a log scale           [b]m[/b]  smooth the training loss
  [b]k[/b]      knobs (show and focus)        [b]tab[/b] move between controls
  [b]1 2 3 4[/b] switch tabs                  [b]← →[/b] browse test samples
  [b]esc[/b]    leave a text field            [b]?[/b]  this help   [b]q[/b]  quit

[b]Knobs[/b]
  Live knobs (learning rate, momentum, clip norm, ...) apply at the next step and draw a
  red vertical line on the charts where they took effect. Other knobs (layer sizes, cell type)
  say "applies on reset" and take effect when you press r. ↑/↓ in a number field steps
  through sensible values (1, 2, 5, 10, ... for log-scale knobs).

[b]Charts[/b]
  loss: training loss at every logged step and validation loss at each evaluation.
  gradient norm: ||dL/dW|| per parameter tensor, log scale. Healthy training keeps these
  within a few decades of each other; a curve diving toward zero means that layer stopped
  learning (vanishing); a spike of 1000x means exploding gradients.
  update ratio: |ΔW| / |W| per step; around 1e-3 is typical, 1e-1 is too fast, 1e-6 too slow.
  time gradients (recurrent models): ||dL/dh_t|| for each time step t (across) at each logged
  step (down), shaded by decades. A blank left side means the gradient from the answer
  never reaches the start of the sentence: vanishing gradients. Try LSTM or GRU.

[b]Alerts[/b]
  Training pauses by itself when the loss diverges or the gradient norm explodes (over 1000x its
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
