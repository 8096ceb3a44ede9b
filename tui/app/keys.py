"""Key bindings the dashboard and the watch view share (each adds its own around them)."""

from __future__ import annotations

from textual.binding import Binding

KNOB_AND_VIEW_KEYS = [
    # priority: handled in key order, so keys typed right behind k reach the field it focuses
    # (a normal binding fires only when k bubbles back up, after them); check_action turns
    # both priority keys off while a field or control has focus, so the field gets them
    Binding("k", "knobs", "Knobs", priority=True),
    Binding("l", "toggle_log", "Log loss", show=False),
    Binding("m", "toggle_smooth", "Smooth", show=False),
    Binding("a", "toggle_error", "Error %", show=False),
    Binding("h", "hide_knobs", "Hide knobs", show=False),
    Binding("g", "gates", "Gates", show=False),
]
CLOSING_KEYS = [
    Binding("question_mark", "app.help", "Help"),
    Binding("q", "quit", "Quit"),
    Binding("escape", "leave", "Leave field"),
    *[Binding(str(i + 1), f"tab({i})", f"Tab {i + 1}", show=False) for i in range(4)],
]
