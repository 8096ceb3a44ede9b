"""The knobs panel: one row per scenario knob (Input for numbers, Select for choices, Checkbox
for booleans, all readable without colour), ranges shown. A valid edit posts `KnobEdited`; live
knobs apply at the next step, the others wait for a reset (`r`)."""

from __future__ import annotations

import math
from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Checkbox, Input, Label, Select, Static

from descent.tui.app.history import format_value
from descent.tui.app.messages import KnobEdited, PaceChosen
from descent.tui.app.pace import LEVELS, label


def parse_knob(knob, text: str):
    """The value typed for a numeric knob, or raise ValueError with a message for the user."""
    text = text.strip()
    try:
        value = int(text) if knob.type == "int" else float(text)
    except ValueError:
        want = "a whole number" if knob.type == "int" else "a number"
        raise ValueError(f"{knob.label}: expected {want}, got {text!r}") from None
    if knob.type == "float" and not math.isfinite(value):
        raise ValueError(f"{knob.label}: must be finite")
    if (knob.min is not None and value < knob.min) or (knob.max is not None and value > knob.max):
        raise ValueError(f"{knob.label}: must be between {knob.min:g} and {knob.max:g}, got {value:g}")
    return value


def nudge(knob, value, direction: int):
    """The next value up (+1) or down (-1): the 1-2-5 series for log knobs, 1/20 of the range
    for linear floats, 1 for ints; clamped to the knob's range."""
    if knob.log and value > 0:
        exponent = math.floor(math.log10(value) + 1e-9)
        ladder = [m * 10.0 ** e for e in (exponent - 1, exponent, exponent + 1) for m in (1, 2, 5)]
        if direction > 0:
            new = min((v for v in ladder if v > value * (1 + 1e-9)), default=value)
        else:
            new = max((v for v in ladder if v < value * (1 - 1e-9)), default=value)
        if knob.type == "int":
            new = int(round(new))
    elif knob.type == "int":
        new = int(value) + direction
    else:
        new = value + direction * (knob.max - knob.min) / 20
    new = max(knob.min, min(knob.max, new))
    return int(new) if knob.type == "int" else float(f"{new:.6g}")


def range_text(knob) -> str:
    if knob.type in ("float", "int"):
        return f"{knob.min:g} .. {knob.max:g}" + (" log" if knob.log else "")
    if knob.type == "choice":
        return " | ".join(str(c) for c in knob.choices)
    return "on / off"


class KnobInput(Input):
    """A numeric knob's input: up/down step through sensible values and apply at once."""

    BINDINGS = [        # shown in the footer while the field has focus (the shortcuts are off then)
        Binding("enter", "submit", "Apply"),
        Binding("up", "nudge(1)", "Up"),
        Binding("down", "nudge(-1)", "Down"),
    ]

    def __init__(self, knob, **kwargs):
        super().__init__(value=format_value(knob.default), type="number" if knob.type == "float" else "integer",
                         **kwargs)
        self.knob = knob

    def action_nudge(self, direction: int) -> None:
        try:
            current = parse_knob(self.knob, self.value)
        except ValueError:
            current = self.knob.default
        self.value = format_value(nudge(self.knob, current, direction))
        self.post_message(Input.Submitted(self, self.value))


class KnobCheckbox(Checkbox):
    """A checkbox whose mark itself shows the state (▐X▌ on, ▐ ▌ off), not only its colour."""

    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802 (Textual's name)
        return "X" if self.value else " "


class KnobRow(Vertical):
    """Label with range and mode, the control, and a line saying what happened to the value."""

    def __init__(self, knob, **kwargs):
        super().__init__(classes="knob", **kwargs)
        self.knob = knob
        self.value = knob.default        # the last valid value the user set

    def compose(self) -> ComposeResult:
        k = self.knob
        mode = ("live", "green") if k.live else ("on reset", "dim")
        yield Label(Text.assemble((k.label, "bold"), " ", mode), classes="knob-label")
        with Horizontal(classes="knob-control"):
            if k.type in ("float", "int"):
                yield KnobInput(k, id=f"knob-{self.safe_id}")
                yield Static(range_text(k), classes="knob-range")
            elif k.type == "choice":
                options = [(str(c), c) for c in k.choices]
                yield Select(options, value=k.default, allow_blank=False, id=f"knob-{self.safe_id}")
            else:
                yield KnobCheckbox("on" if k.default else "off", value=bool(k.default), id=f"knob-{self.safe_id}")
        yield Static("", classes="knob-note")

    @property
    def safe_id(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.knob.key)

    def note(self, text: str, error: bool = False) -> None:
        note = self.query_one(".knob-note", Static)
        note.update(text)
        note.set_class(error, "-error")
        note.display = bool(text)

    def offer(self, value) -> None:
        """A new valid value from the control."""
        if value == self.value and type(value) is type(self.value):
            return
        self.value = value
        k = self.knob
        if k.live:
            self.note(f"→ {format_value(value)} at the next step")
        else:
            changed = value != k.default
            self.note(f"{format_value(value)} applies on reset (r)" if changed else "")
            self.set_class(changed, "-pending")
        self.post_message(KnobEdited(k.key, value, k.live))

    def applied(self, step: int, value) -> None:
        """The session applied `value` (this row's, or one sent through control.jsonl)."""
        self.value = value
        self.note(f"= {format_value(value)} since step {step}")

    def commit(self, default) -> None:
        """After a reset: the new session runs with `default`."""
        self.knob = replace(self.knob, default=default)
        self.value = default
        self.set_class(False, "-pending")
        self.note("")

    def _submit(self, widget: Input) -> None:
        try:
            value = parse_knob(self.knob, widget.value)
        except ValueError as e:
            widget.add_class("-invalid")
            self.note(str(e).split(": ", 1)[-1], error=True)
            return
        widget.remove_class("-invalid")
        self.offer(value)

    @on(Input.Submitted)
    def _on_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(event.input)

    @on(Input.Blurred)
    def _on_blurred(self, event: Input.Blurred) -> None:
        event.stop()
        self._submit(event.input)

    @on(Select.Changed)
    def _on_select(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.BLANK:
            self.offer(event.value)

    @on(Checkbox.Changed)
    def _on_checkbox(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = "on" if event.value else "off"
        self.offer(bool(event.value))


class KnobsPanel(VerticalScroll):
    """Every knob of the scenario, in file order, then the pace. The panel itself never takes
    the focus (its fields do), so the single-key commands stay on when nothing is focused."""

    can_focus = False

    NONE = "This scenario has no knobs. Add [[knobs]] tables to its file."

    def __init__(self, knobs, none: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.knobs = tuple(knobs)
        self.none = none or self.NONE
        self.pace_choices = pace_options(LEVELS)

    def compose(self) -> ComposeResult:
        yield Static("[b]Knobs[/b]  [dim]enter applies · ↑↓ step · esc leaves[/dim]", classes="panel-title",
                     markup=True)
        if not self.knobs:
            yield Static(self.none, classes="dim")
        for knob in self.knobs:
            yield KnobRow(knob)
        with Vertical(classes="knob", id="pace-row"):    # last, so k still focuses the first knob
            yield Label(Text.assemble(("pace", "bold"), " ", ("steps/s · [ ] f", "dim")), classes="knob-label")
            yield Select(self.pace_choices, value=0.0, allow_blank=False, id="pace")

    def show_pace(self, rate: float | None, levels=LEVELS) -> None:
        """Show the pace set by a key (or the scenario's automatic one) in the pace control."""
        select = self.query_one("#pace", Select)
        wanted = pace_options(sorted({*levels, *([rate] if rate else [])}))
        if wanted != self.pace_choices:
            self.pace_choices = wanted
            select.set_options(wanted)
        select.value = rate or 0.0

    @on(Select.Changed, "#pace")
    def _pace(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.BLANK:
            self.post_message(PaceChosen(event.value or None))

    def rows(self) -> list[KnobRow]:
        return list(self.query(KnobRow))

    def row(self, key: str) -> KnobRow | None:
        return next((r for r in self.rows() if r.knob.key == key), None)

    def values(self) -> dict[str, object]:
        """Every knob's current value (what a reset builds the next session from)."""
        return {r.knob.key: r.value for r in self.rows()}


def pace_options(rates) -> list[tuple[str, float]]:
    """The pace control's choices: each rate, then full speed (0.0: a Select value cannot be None)."""
    return [(label(r), float(r)) for r in rates] + [(label(None), 0.0)]
