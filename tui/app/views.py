"""The dashboard's view keys (a mixin of DashboardScreen): the knobs panel, chart modes, tabs,
sample browsing, the pace; and which keys count while a field has focus."""

from __future__ import annotations

from textual.widgets import TabbedContent, TabPane

from descent.tui.app.charts import AccuracyChart
from descent.tui.app.guard import SHORTCUTS, typing
from descent.tui.app.knobs import KnobsPanel
from descent.tui.app.pace import label
from descent.tui.app.timegrads import toggle_gates


class ViewActions:
    """Needs the screen's pacer, status, panel and `redraw`."""

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Printable shortcuts are off while a field or control has focus (tui.app.guard.typing),
        and hidden from the footer, which then shows the field's keys and esc."""
        if action == "leave":
            return typing(self.focused, self) or self.has_class("-show-knobs")
        return not (action in SHORTCUTS and typing(self.focused, self))

    def on_descendant_focus(self, event) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self, event) -> None:
        self.refresh_bindings()

    def action_knobs(self) -> None:
        """Show the knobs and focus the first at once: keys typed right after k go into it."""
        self.add_class("-show-knobs")
        self.remove_class("-hide-knobs")
        knobs = self.query_one(KnobsPanel)
        first = next(iter(knobs.query("Input, Select, Checkbox")), None)
        if first is not None:
            self.set_focus(first)

    def action_leave(self) -> None:
        self.set_focus(None)
        self.remove_class("-show-knobs")

    def action_hide_knobs(self) -> None:
        """The knobs panel off (or on again): the charts get the width."""
        hidden = self.has_class("-hide-knobs") or (self.has_class("-narrow") and not self.has_class("-show-knobs"))
        self.set_class(not hidden, "-hide-knobs")
        self.set_class(hidden and self.has_class("-narrow"), "-show-knobs")
        self.call_after_refresh(self.redraw, True)

    def action_gates(self) -> None:
        """The time tab's gate chart in place of its ratio chart, or back."""
        if toggle_gates(self):
            self.call_after_refresh(self.redraw, True)

    def action_toggle_error(self) -> None:
        chart = self.query_one(AccuracyChart)
        chart.error_log = not chart.error_log
        self.redraw(force=True)

    # ---- pace ---------------------------------------------------------------------------------------
    def pace_text(self) -> str:
        return label(self.pacer.rate)

    def paced(self) -> None:
        self.status.show(pace=self.pace_text())
        self.query_one(KnobsPanel).show_pace(self.pacer.rate, self.pacer.levels()[:-1])

    def action_slower(self) -> None:
        self.pacer.shift(-1)
        self.paced()

    def action_faster(self) -> None:
        self.pacer.shift(1)
        self.paced()

    def action_full_speed(self) -> None:
        self.pacer.toggle_max()
        self.paced()

    def on_pace_chosen(self, message) -> None:
        if message.rate != self.pacer.rate:
            self.pacer.set(message.rate)
            self.status.show(pace=self.pace_text())

    def action_toggle_log(self) -> None:
        self.log_loss = not self.log_loss
        self.redraw(force=True)

    def action_toggle_smooth(self) -> None:
        self.smoothed = not self.smoothed
        self.redraw(force=True)

    def action_browse(self, delta: int) -> None:
        self.panel.browse(delta)

    def action_tab(self, index: int) -> None:
        tabs = self.query_one(TabbedContent)
        panes = [pane.id for pane in tabs.query(TabPane)]
        if index < len(panes):
            tabs.active = panes[index]
            if panes[index] == "tab-panel":
                self.panel.entered()      # now, not when TabActivated arrives: a key typed next is the panel's
