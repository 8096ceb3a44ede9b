"""What keeps a slip of the keyboard from costing a run: which keys count as shortcuts while a
field has focus, the smallest usable terminal, and a divergence's advice in this scenario's knobs."""

from __future__ import annotations

from textual.containers import ScrollableContainer
from textual.widgets import Checkbox, Input, Select

from descent.engine.records import Diverged

MIN_SIZE = (80, 24)

# the dashboard's actions bound to printable keys: off while a field or control has focus
SHORTCUTS = frozenset({
    "toggle_run", "one_step", "reset", "pin", "save", "open", "export", "knobs", "toggle_log",
    "toggle_smooth", "quit", "tab", "slower", "faster", "full_speed", "hide_knobs", "picker",
    "toggle_error", "gates",
})


def typing(focused, screen) -> bool:
    """Whether the focus is on a control of `screen` that takes keys itself (a text or number
    field, a choice, a checkbox, a scroll area, anything in the knobs panel): printable
    shortcuts then do nothing, so a key typed after Tab left a field cannot reset or toggle
    anything. Esc gives the keys back. The tab bar and the sample panels keep the shortcuts."""
    if focused is None or focused.screen is not screen:
        return False
    if isinstance(focused, (Input, Select, Checkbox, ScrollableContainer)):
        return True
    return any(getattr(node, "id", None) == "knobs" for node in focused.ancestors)


def too_small_text(width: int, height: int) -> str:
    return (f"descent needs a terminal of at least {MIN_SIZE[0]}x{MIN_SIZE[1]}; this one is {width}x{height}.\n"
            "Make the window larger (training goes on meanwhile), or press q to quit.")


# (knob key, what to do with it) in the order a divergence is best fixed
REMEDIES = (
    ("training.lr", "lower the {label} (now {value}, try {lower})"),
    ("training.clip_norm", "set {label} (now {value}, try 1)"),
    ("model.layers[1].type", "switch {label} to lstm or gru"),
    ("training.batch_size", "raise the {label} (now {value})"),
)


def divergence_advice(scenario, record: Diverged, values: dict) -> str:
    """What to do about a divergence, in the knobs this scenario has: `values` are the knobs'
    current values (key -> value)."""
    steps = []
    for knob in scenario.knobs:
        for key, words in REMEDIES:
            if knob.key != key and not (key.endswith(".type") and knob.key.endswith(".type")
                                        and "lstm" in (knob.choices or ())):
                continue
            value = values.get(knob.key, knob.default)
            lower = f"{value / 10:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "?"
            steps.append(words.format(label=f"'{knob.label}' knob", value=value, lower=lower))
            break
    todo = "; ".join(steps[:2]) if steps else "lower training.lr in the scenario file (it has no knob for it)"
    return (f"Training diverged at step {record.step:,}: {record.reason}. To fix: {todo}, then press r "
            "to reset (new weights). Space does not continue a diverged run.")
