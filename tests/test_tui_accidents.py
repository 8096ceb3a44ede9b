"""No accidents (issue 10, item 6): a stray key never costs a run. Reset and leaving for the picker
ask first, a focused field keeps every key, keys typed fast all arrive, a key pressed while
compiling is acted on once ready, a divergence says what to do in this scenario's knobs, a
too-small terminal says so, and `descent SCENARIO` opens the dashboard."""

from __future__ import annotations

import threading

import pytest
from textual import events
from textual.widgets import Input, Select

from descent.engine.records import Compiling, Diverged
from descent.engine.scenario import load, with_values
from test_tui import (DIGITS, LONG, SIZE, ScriptedSession, app_for, grads, isolated, keys, notes,  # noqa: F401
                      ready, spam_data_present, sync, until)


async def trained_one_step(pilot):
    screen = await ready(pilot)
    await keys(pilot, "n")
    await until(pilot, lambda: screen.state == "paused" and screen.session.step == 1, 30, "one step")
    return screen


async def fast(pilot, text: str):
    """Keys posted back to back with no pause between them (a fast typist, a paste into tmux)."""
    for ch in text:
        pilot.app.post_message(events.Key(ch, ch))
    await pilot.pause(0.2)


# ---- reset and the picker ask first ---------------------------------------------------------------
@sync
async def test_reset_asks_when_the_run_has_progress(tmp_path):
    from descent.tui.app.dialogs import ConfirmDialog

    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await trained_one_step(pilot)
        first = screen.session
        await keys(pilot, "r")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "n")                          # no: the run stays
        assert app.screen is screen and screen.session is first and first.step == 1
        await keys(pilot, "r")
        await keys(pilot, "y")
        await until(pilot, lambda: screen.session is not first and screen.state == "ready", 60, "the new run")
        assert screen.session.step == 0
        await keys(pilot, "r")                          # nothing trained yet: no question
        assert not isinstance(app.screen, ConfirmDialog)


@sync
async def test_picker_key_asks_whether_to_keep_the_run(tmp_path):
    from descent.tui.app.dialogs import QuitDialog
    from descent.tui.app.picker import PickerScreen

    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await trained_one_step(pilot)
        run_dir = screen.session.out_dir
        await keys(pilot, "p")
        assert isinstance(app.screen, QuitDialog) and "picker" in app.screen.verb
        await keys(pilot, "escape")                     # cancel: still on the dashboard
        assert app.screen is screen
        await keys(pilot, "p")
        await keys(pilot, "k")
        await until(pilot, lambda: isinstance(app.screen, PickerScreen), 30, "the picker")
        assert (run_dir / "checkpoint.npz").exists()    # kept


# ---- focused fields keep their keys ---------------------------------------------------------------
@sync
async def test_number_fields_keep_every_key_typed_fast(tmp_path):
    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        # k focuses the first knob at once: the keys right behind it land in the field
        app.post_message(events.Key("k", "k"))
        await fast(pilot, "0.05")
        lr = screen.query("KnobInput").first()
        assert app.focused is lr and lr.value == "0.05"
        await pilot.press("tab")
        units = app.focused
        assert isinstance(units, Input) and units.knob.key == "model.layers[1].units"
        await fast(pilot, "310")
        assert units.value == "310"
        shown = {b.binding.key for b in screen.active_bindings.values() if b.enabled and b.binding.show}
        assert {"enter", "up", "down", "escape"} <= shown and "r" not in shown      # the field's keys
        await pilot.press("enter")                      # over the knob's maximum: said, not clipped
        row = screen.query_one("KnobsPanel").row("model.layers[1].units")
        assert units.value == "310" and "between 2 and 256" in str(row.query_one(".knob-note").render())
        await pilot.press("shift+tab")
        await fast(pilot, "0.01")
        assert lr.value == "0.01" and units.value == "310"


@sync
async def test_tab_out_of_a_field_then_letters_fire_no_shortcut(tmp_path):
    from descent.tui.app.dialogs import ConfirmDialog

    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await trained_one_step(pilot)
        await keys(pilot, "k")
        for _ in range(3):                      # past the number fields, onto a choice and a checkbox
            await pilot.press("tab")
            assert app.focused is not None
            await fast(pilot, "rlmc")
            assert not isinstance(app.screen, ConfirmDialog), f"r reset from {app.focused}"
            assert not screen.log_loss and not screen.smoothed and not screen.pinned
        # the footer shows the field's keys (esc leaves), not the shortcuts
        shown = {b.binding.key for b in screen.active_bindings.values() if b.enabled and b.binding.show}
        assert "escape" in shown and "r" not in shown and "space" not in shown
        await keys(pilot, "escape")
        assert app.focused is None
        await keys(pilot, "l")
        assert screen.log_loss                  # the shortcuts are back


@pytest.mark.skipif(not spam_data_present(), reason="needs the SMS spam data ($DESCENT_DATA)")
@sync
async def test_spam_box_tab_out_does_not_reset_or_toggle(tmp_path):
    from descent.engine.scenario import resolve_name
    from descent.tui.app.dialogs import ConfirmDialog

    app = app_for(load(resolve_name("spam"), overrides=["training.steps=20"]), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await keys(pilot, "space")
        await until(pilot, lambda: screen.state == "finished", 120, "the run to finish")
        await keys(pilot, "2")                          # the Spam tab
        box = screen.query_one("#spam-input", Input)
        await until(pilot, lambda: app.focused is box, 10, "the message box to take the focus")
        await fast(pilot, "free prize")
        assert box.value == "free prize"
        await pilot.press("tab")
        await fast(pilot, "rlm")
        assert not isinstance(app.screen, ConfirmDialog) and screen.state == "finished"
        assert not screen.log_loss and not screen.smoothed


# ---- compiling, divergence, small terminals --------------------------------------------------------
class SlowToCompile(ScriptedSession):
    """Compiling waits for `gate`, as the first start's kernel compilation does."""

    def __init__(self, scenario, script, gate: threading.Event):
        super().__init__(scenario, script)
        self.gate = gate
        self.runs = 0

    def prepare(self, stop=None):
        yield Compiling("compiling kernels")
        self.gate.wait(30)
        yield from super().prepare()

    def run(self, stop, steps=None, pace=None):
        self.runs += 1
        yield from super().run(stop, steps, pace)


@sync
async def test_space_while_compiling_starts_training_once_ready(tmp_path, monkeypatch):
    gate = threading.Event()
    scenario = with_values(load(DIGITS), {"scenario.panel": "generic"})
    app = app_for(scenario, tmp_path)
    made = []
    app.new_session = lambda sc: made.append(SlowToCompile(sc, grads(5), gate)) or made[-1]
    said = notes(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.state == "compiling" and made, 10, "compiling")
        await keys(pilot, "space")
        assert any("Got it: training starts once it is ready. Now " in s for s in said), said      # acknowledged
        assert made[0].runs == 0
        gate.set()
        await until(pilot, lambda: made[0].runs == 1, 10, "training to start by itself")
        await app.workers.wait_for_complete()


@sync
async def test_divergence_says_what_to_do_and_clears_on_reset(tmp_path, monkeypatch):
    from descent.tui.app.dialogs import ConfirmDialog

    scenario = with_values(load(DIGITS), {"scenario.panel": "generic"})
    script = grads(3) + [Diverged(4, "loss became nan at step 4", "lower the learning rate")]
    app = app_for(scenario, tmp_path)
    app.new_session = lambda sc: ScriptedSession(sc, script)
    said = notes(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await keys(pilot, "space")
        await until(pilot, lambda: screen.state == "diverged", 10, "the divergence")
        await app.workers.wait_for_complete()
        alert = next(s for s in said if "diverged at step 4" in s)
        assert "press r" in alert and "'learning rate' knob" in alert and "0.0003" in alert
        assert "clip" not in alert and "lstm" not in alert.lower()        # knobs this scenario lacks
        assert "r resets" in screen.status.info.detail
        runs = screen.session
        await keys(pilot, "space")                      # does not run into the same wall again
        assert screen.state == "diverged" and screen.session is runs
        assert any("r resets" in s for s in said[-1:])
        assert list(app._notifications)
        await keys(pilot, "r")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "y")
        await until(pilot, lambda: screen.session is not runs and screen.state == "ready", 10, "the reset")
        left = [n.message for n in app._notifications]
        assert not [m for m in left if "diverged" in m], left      # the alert was about the old run


@pytest.mark.parametrize("size", [(70, 24), (80, 20)])
@sync
async def test_a_small_terminal_gets_a_message(tmp_path, size):
    app = app_for(load(DIGITS), tmp_path)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        message = screen.query_one("#too-small")
        assert message.display and not screen.query_one("#body").display
        assert f"{size[0]}x{size[1]}" in str(message.render())
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not message.display and screen.query_one("#body").display


@sync
async def test_a_small_terminal_gets_a_message_in_the_picker_too(tmp_path):
    from descent.tui.app import make_app

    app = make_app(None, runs_dir=tmp_path / "runs")
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert app.screen.query_one("#picker-too-small").display
        assert not app.screen.query_one("#picker-body").display


# ---- descent SCENARIO -----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, expect", [
    (["digits8x8"], "tui"), (["digits8x8", "--set", "training.lr=0.01"], "tui"),
    (["run", "digits8x8"], "run"), (["tui", "list"], "tui"), (["list"], "list"),
])
def test_a_scenario_name_alone_opens_the_dashboard(argv, expect):
    from descent.tui.cli import build_parser, shorthand

    parser = build_parser()
    args = parser.parse_args(shorthand(parser, argv))
    assert args.command == expect
    if expect == "tui":
        assert args.scenario == argv[argv.index("tui") + 1 if "tui" in argv else 0]


def test_descent_scenario_runs_the_dashboard_with_auto_pace(monkeypatch, tmp_path):
    import descent.tui.app
    from descent.tui.cli import main

    opened = {}

    class FakeApp:
        return_code = 0

        def run(self):
            opened["ran"] = True

    def fake(**kwargs):
        opened.update(kwargs)
        return FakeApp()

    monkeypatch.setattr(descent.tui.app, "make_app", fake)
    assert main([str(DIGITS)]) == 0
    assert opened["ran"] and opened["scenario"].name == load(DIGITS).name and opened["pace"] == "auto"
    assert main(["no-such-scenario-anywhere"]) != 0          # a one-line error, not a traceback
