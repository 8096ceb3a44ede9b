"""The dashboard through Textual's Pilot: every interaction, with small fast scenarios.

Scenarios: tests/data/tui_digits.toml (8x8 digits, no download) and tests/data/tui_nile.toml
(gap 5, a small RNN). The spam test needs the SMS data ($DESCENT_DATA) and skips without it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from descent.engine.alarms import GradMonitor
from descent.engine.records import Compiling, Diverged, Step, Stopped
from descent.engine.scenario import load, with_values

DATA = Path(__file__).parent / "data"
DIGITS = DATA / "tui_digits.toml"
NILE = DATA / "tui_nile.toml"
BROKEN = DATA / "tui_broken.toml"
SIZE = (120, 40)
LONG = ["training.steps=1000000"]      # for tests that pause a run: it must not finish first


def sync(test):
    """Run an async test with asyncio.run (no pytest-asyncio needed); fixtures still resolve."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))
    return run


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user scenarios, runs and crash reports written under tmp_path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)


def app_for(scenario, tmp_path, **kwargs):
    from descent.tui.app import make_app

    return make_app(scenario, runs_dir=tmp_path / "runs", **kwargs)


async def until(pilot, condition, timeout: float = 30.0, what: str = "condition"):
    """Let the app run until `condition()` holds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


CHARS = {"enter": "\r", "space": " ", "escape": "\x1b", "full_stop": "."}


async def keys(pilot, *names: str):
    """Key presses delivered as the terminal delivers them, without Pilot.press's wait for an idle
    CPU (which never comes while training runs, so each press would take two seconds)."""
    from textual import events

    for name in names:
        key = "full_stop" if name == "." else name
        pilot.app.post_message(events.Key(key, CHARS.get(key, name if len(name) == 1 else None)))
        await asyncio.sleep(0.01)
    await pilot.pause(0.05)


async def ready(pilot):
    """Wait until the dashboard's session is prepared; a session error fails at once."""
    def prepared():
        state = getattr(pilot.app.screen, "state", "")
        if state == "error":
            raise AssertionError(f"the session failed: {pilot.app.screen.status.info.detail}")
        return state == "ready"

    await until(pilot, prepared, 120, "the session to be ready")
    return pilot.app.screen


def notes(app, monkeypatch) -> list[str]:
    """Every notification's title and text, recorded as they are made."""
    seen: list[str] = []
    original = app.notify

    def record(message, *args, title="", **kwargs):
        seen.append(f"{title}: {message}")
        return original(message, *args, title=title, **kwargs)

    monkeypatch.setattr(app, "notify", record)
    return seen


# ---- pure helpers -----------------------------------------------------------------------------------
def test_decimate_and_smooth():
    from descent.tui.app.history import decimate, smooth

    xs = list(range(1000))
    dx, dy = decimate(xs, [float(x) for x in xs], 100)
    assert len(dx) == 100 and dx[-1] == 999
    assert dy[0] == pytest.approx(4.5)                     # mean of the first bucket of 10
    assert decimate([1, 2], [3.0, 4.0], 100) == ([1, 2], [3.0, 4.0])
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])   # no start-up bias


def test_long_curves_stay_bounded():
    from descent.tui.app.history import SERIES_CAP, Series

    s = Series()
    for i in range(1, 20001):
        s.add(i, 1.0)
    assert len(s) <= SERIES_CAP and s.xs[-1] == 20000 and s.xs[-100:] == list(range(19901, 20001))
    assert all(a < b for a, b in zip(s.xs, s.xs[1:])) and set(s.ys) == {1.0}


def test_time_heatmap_ramp_shades_and_marks():
    from descent.tui.app.history import History
    from descent.tui.app.timegrads import (FLOOR_DECADES, TimeGradients, heat_row, legend, level, marks_line, ramp,
                                           shade, squeeze)

    assert level(1.0) == 1.0 and level(2.0) == 1.0 and level(0.0) == 0.0
    assert level(10.0 ** -FLOOR_DECADES) == 0.0 and level(1e-6) == pytest.approx(0.5)
    assert ramp(0.0) == "#440154" and ramp(1.0) == "#fde725"               # viridis ends
    assert shade(1.0) == "█" and shade(0.0) == " " and shade(0.5) == "▓" and shade(0.01) == "░"
    assert squeeze([1.0, 100.0], 1) == pytest.approx([10.0])                # geometric mean
    assert squeeze([1.0, 2.0], 4) == [1.0, 1.0, 2.0, 2.0]
    vanishing = [10.0 ** -(2 * d) for d in range(8)]                       # by words back: 1 .. 1e-14
    row = heat_row(vanishing, 8)
    assert row[-1] == 1.0 and row[0] == 0.0                                # answer at the right

    marks = marks_line(12, 12, (2, 4))
    assert marks[-1] == "?" and marks[-3:-1] == "--" and "F" in marks[:-3]
    assert "≥1e-12" in legend(False).plain and "1e-6" in legend(True).plain
    history = History()
    from descent.engine.records import Step
    history.add(Step(10, 0.0, 1.0, 0.1, 1.0, 1.0, {}, {}, None, 1.0, 1.0, time_grad_ratio={"1": vanishing}))
    view = TimeGradients()
    view.draw(history, (1, 2))
    text = view.render_rows(40, 10, colour=False).plain
    assert "words back" in text and "answer" in text and "█" in text and "1e-12" in text


def test_digit_lines_draw_blocks():
    from descent.tui.app.pixels import digit_lines

    img = np.zeros((4, 4))
    img[0, :2] = 1.0          # top row left half
    img[3, 2:] = 1.0          # bottom row right half
    assert digit_lines(img) == ["▀▀  ", "  ▄▄"]
    assert len(digit_lines(np.ones((8, 8)), scale=2)) == 8


def test_knob_parsing_and_nudging():
    from descent.engine.scenario import Knob
    from descent.tui.app.knobs import nudge, parse_knob

    lr = Knob("training.lr", "learning rate", "float", 1e-5, 1.0, True, None, True, 1e-3)
    assert parse_knob(lr, " 0.01 ") == 0.01
    with pytest.raises(ValueError, match="between"):
        parse_knob(lr, "3")
    with pytest.raises(ValueError, match="expected a number"):
        parse_knob(lr, "fast")
    assert nudge(lr, 1e-3, 1) == pytest.approx(2e-3)
    assert nudge(lr, 2e-3, 1) == pytest.approx(5e-3)
    assert nudge(lr, 1e-3, -1) == pytest.approx(5e-4)
    assert nudge(lr, 1.0, 1) == 1.0                       # clamped
    units = Knob("model.layers[1].units", "units", "int", 2, 256, False, None, False, 32)
    assert nudge(units, 32, 1) == 33 and nudge(units, 2, -1) == 2


def test_throttle_interval_and_share():
    from descent.tui.app.throttle import Throttle

    gate = Throttle(every=0.5)
    assert gate.allows(10.0)                            # never happened: allowed at once
    gate.mark(10.0)
    assert not gate.allows(10.4) and gate.allows(10.5)
    budget = Throttle(share=0.1, overhead=1.0)
    budget.paid_at = 0.0
    budget.spend(0.2)                                   # 0.2 s of drawing is repaid in 2 s at 10%
    assert not budget.allows(1.0) and budget.allows(2.0)


def test_grad_monitor_alarms():
    def step(i, g, loss=1.0):
        return Step(i, 0.0, loss, 1e-3, g, 1.0, {}, {}, None, 0.0, 0.0)

    m = GradMonitor(recurrent=True)
    assert all(m.check(step(i, 1.0)) is None for i in range(10))
    alert = m.check(step(11, 5e3))
    assert alert.what == "exploding" and "step 11" in alert.text and "LSTM or GRU" in alert.text
    assert m.check(step(12, 6e3)) is None                 # fires once per streak
    assert m.check(step(13, 1e-9)).what == "vanishing"
    assert GradMonitor().check(step(1, 1e-9, loss=1e-5)) is None    # converged, not vanishing
    converged = GradMonitor()
    for i, g in enumerate([5.0, 1.0] + [1e-4] * 20):
        converged.check(step(i, g))
    assert converged.check(step(30, 0.5)) is None      # a hard batch late in training: no alarm


def test_status_text_and_ticks():
    from descent.tui.app.charts import log_ticks, step_ticks
    from descent.tui.app.status import StatusInfo, status_text

    text = status_text(StatusInfo("running", "", 1234, 5000, 2.5, 0.1234, 0.931, 812.0, 75.0)).plain
    for part in ("running", "step 1,234/5,000", "epoch 2.50", "loss 0.1234", "val acc 93.1%", "812 steps/s",
                 "1:15"):
        assert part in text
    assert "compiling kernels" in status_text(StatusInfo()).plain
    assert step_ticks(10, 270)[0] == [50, 100, 150, 200, 250]
    assert log_ticks(-3.2, 0.1)[1] == ["1e-3", "1e-2", "1e-1", "1e0"]


# ---- picker ---------------------------------------------------------------------------------------
@sync
async def test_picker_shows_broken_file_and_opens_a_scenario(tmp_path, monkeypatch):
    from textual.widgets import OptionList, Static

    from descent.tui.app.dashboard import DashboardScreen
    from descent.tui.app.picker import PickerScreen

    app = app_for(None, tmp_path, extra_paths=[DIGITS, BROKEN])
    said = notes(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, PickerScreen)
        names = [str(p.name) for p, _ in app.screen.found]
        assert "tui_digits.toml" in names and "tui_broken.toml" in names
        assert "digits.toml" in names                      # a bundled one too
        lst = app.screen.query_one(OptionList)
        broken = names.index("tui_broken.toml")
        lst.highlighted = broken
        await pilot.press("enter")
        detail = str(app.screen.query_one("#detail", Static).render())
        assert "training.lr: must be > 0" in detail
        assert any("training.lr: must be > 0" in s for s in said)
        assert isinstance(app.screen, PickerScreen)        # still here, no crash
        lst.highlighted = names.index("tui_digits.toml")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), 10, "the dashboard")
        screen = await ready(pilot)
        assert screen.scenario.name == "TUI test: 8x8 digits"


@sync
async def test_a_warning_while_preparing_is_a_notification_that_stays(tmp_path, monkeypatch):
    """DESCENT_THREADS=2 under OMP_WAIT_POLICY=PASSIVE: the status line moves on to loading the
    data at once, so the warning is a notification, not only a status."""
    from descent.engine import threads

    monkeypatch.setenv(threads.ENV, "2")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    app = app_for(load(DIGITS), tmp_path)
    said = notes(app, monkeypatch)
    with threads.using(1):                                  # the session's setting ends with the test
        async with app.run_test(size=SIZE) as pilot:
            screen = await ready(pilot)
            assert [s for s in said if "OMP_WAIT_POLICY=PASSIVE" in s and "DESCENT_THREADS=1" in s]
            assert "OMP_WAIT_POLICY" not in screen.status.info.detail


# ---- dashboard: training controls -------------------------------------------------------------------
@sync
async def test_compiling_then_start_pause_and_one_step(tmp_path):
    from descent.tui.app.messages import Preparing

    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    seen = []
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        screen = await ready(pilot)
        assert any(isinstance(m, Preparing) and "compiling kernels" in m.text for m in seen)
        assert screen.session.out_dir.parent == tmp_path / "runs"
        await keys(pilot, "space")
        assert screen.state == "running"
        await until(pilot, lambda: screen.status.info.step >= 10, 60, "ten steps")
        shown = []
        screen.status.show = lambda _show=screen.status.show, **kw: (shown.append(kw.get("state")), _show(**kw))
        await keys(pilot, "space")                          # a visible response at once (bench/dashboard.py times it)
        assert screen.state in ("pausing", "paused")
        assert shown and shown[0] in ("pausing", "paused")  # the key itself redrew the status line
        await until(pilot, lambda: screen.state == "paused", 30, "the pause")
        step = screen.session.step
        assert screen.status.info.step == step              # the status line caught up
        await pilot.press("n")
        await until(pilot, lambda: screen.state == "paused" and screen.session.step == step + 1, 30, "one step")
        assert screen.history.loss.xs[-1] == step + 1       # the single step was logged and charted
        assert "paused" in str(screen.status.render())


@sync
async def test_live_knob_applies_at_next_step_with_a_marker(tmp_path):
    from textual.widgets import Input

    from descent.tui.app.charts import LossChart

    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        calls = []
        original = screen.session.set_knob
        screen.session.set_knob = lambda key, value: (calls.append((key, value)), original(key, value))
        await keys(pilot, "space")
        await until(pilot, lambda: screen.session.step >= 5, 60, "training to start")
        box = screen.query_one("#knob-training-lr", Input)
        box.focus()
        box.value = ""
        await keys(pilot, *"0.0005", "enter")
        await until(pilot, lambda: calls, 10, "set_knob")
        assert calls == [("training.lr", 0.0005)]
        await until(pilot, lambda: screen.history.markers, 30, f"the knob to take effect {screen.state} {screen.session.step} {screen.session.live}")
        marker_step = screen.history.markers[0][0]
        assert screen.history.markers[0][1] == "lr=0.0005"
        await keys(pilot, "escape")
        await until(pilot, lambda: screen.session.step > marker_step + 5, 60, "more steps")
        await keys(pilot, "space")
        await until(pilot, lambda: screen.state == "paused", 30, "the pause")
        assert screen.session.base_lr == 0.0005
        note = str(screen.query_one(".knob-note").render())
        assert f"since step {marker_step}" in note
        chart = screen.query_one(LossChart)
        screen.redraw(force=True)
        assert chart.marker_steps == [marker_step]                     # a vertical line at that step


@sync
async def test_reset_applies_reset_knobs(tmp_path, monkeypatch):
    from textual.widgets import Checkbox, Input

    app = app_for(load(DIGITS), tmp_path)
    said = notes(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        first_dir = screen.session.out_dir
        await pilot.press("n")
        await until(pilot, lambda: screen.session.step == 1 and screen.state == "paused", 30, "one step")
        box = screen.query_one("#knob-model-layers-1--units", Input)
        box.focus()
        box.value = ""
        await pilot.press(*"48", "enter", "escape")
        assert any("applies on reset" in s for s in said)
        assert "applies on reset" in str(box.parent.parent.query_one(".knob-note").render())
        assert screen.scenario.model.layers[1]["units"] == 32       # not yet
        check = screen.query_one("#knob-data-standardize", Checkbox)
        check.focus()
        await pilot.press("space", "escape")                        # toggles the box, not training
        assert check.value and str(check.label) == "on" and screen.state == "paused"
        await pilot.press("r", "y")                                 # the run has a step: r asks first
        await until(pilot, lambda: screen.session.out_dir != first_dir, 10, "the new session")
        screen = await ready(pilot)
        assert screen.scenario.model.layers[1]["units"] == 48
        assert screen.scenario.data.options["standardize"] is True
        assert screen.session.step == 0 and screen.session.out_dir != first_dir
        assert screen.session.trainer.state_dict()["1.weight"].shape == (48, 64)
        assert not len(screen.history.loss)                       # fresh curves


@sync
async def test_pin_keeps_curves_for_comparison(tmp_path):
    from descent.tui.app.charts import LossChart

    app = app_for(load(DIGITS), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        for _ in range(3):
            await pilot.press("n")
            await until(pilot, lambda: screen.state == "paused", 30, "a step")
        await pilot.press("c")
        assert len(screen.pinned) == 1
        label = screen.pinned[0].label
        assert label == "dense 32-10 adam lr3e-3"
        assert screen.pinned[0].loss[0] == [1, 2, 3]
        screen.redraw(force=True)
        chart = screen.query_one(LossChart)
        assert label[:12] in chart.plt.build()                       # in the legend (cut to fit)
        await pilot.press("l", "m")                                  # log scale, smoothing
        assert "loss (log) smoothed" in chart.plt.build()
        assert chart.log_scale and max(chart.y_seen) < 1 < max(screen.history.loss.ys)   # log10 of ~2.3


@sync
async def test_save_open_checkpoint_and_export(tmp_path):
    from descent.tui.app.dialogs import OpenDialog

    app = app_for(load(DIGITS), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        for _ in range(4):
            await pilot.press("n")
            await until(pilot, lambda: screen.state == "paused", 30, "a step")
        await pilot.press("s")
        await app.workers.wait_for_complete()
        ckpt = screen.session.out_dir / "checkpoint-step4.npz"
        assert ckpt.exists()
        saved = {k: v.copy() for k, v in screen.session.trainer.state_dict().items()}
        await pilot.press("e")
        await app.workers.wait_for_complete()
        exported = screen.session.out_dir / "metrics-step4.jsonl"
        kinds = [json.loads(line)["kind"] for line in exported.read_text().splitlines()]
        assert kinds.count("step") == 4 and "evaluation" in kinds
        for _ in range(2):
            await pilot.press("n")
            await until(pilot, lambda: screen.state == "paused", 30, "a step")
        assert screen.session.step == 6
        await pilot.press("o")
        assert isinstance(app.screen, OpenDialog)
        assert app.screen.query_one("Input").value == str(ckpt)         # the last one saved
        await pilot.press("enter")
        await until(pilot, lambda: screen.session.step == 4, 10, "the checkpoint to load")
        assert app.screen is screen and screen.status.info.step == 4
        assert screen.history.loss.xs[-1] == 4                          # the curves go back there too
        for name, value in screen.session.trainer.state_dict().items():
            np.testing.assert_array_equal(value, saved[name])
        await pilot.press("o")
        box = app.screen.query_one("Input")
        box.value = str(tmp_path / "missing.npz")
        await pilot.press("enter")
        assert screen.state == "paused" and screen.session.step == 4   # an error, not a crash


# ---- scenario panels --------------------------------------------------------------------------------
@sync
async def test_digits_browse_with_arrows(tmp_path):
    from textual.widgets import Static

    from descent.tui.app.digits_panel import DigitsPanel

    app = app_for(load(DIGITS), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("2")                                        # the Digits tab
        panel = screen.query_one(DigitsPanel)
        view = screen.query_one("#digit-view", Static)
        n = screen.session.dataset.n_test
        threads = []
        real = screen.session.predict_proba
        screen.session.predict_proba = lambda *a: (threads.append(threading.current_thread()), real(*a))[1]
        panel.show_sample()
        await until(pilot, lambda: threads and "%" in str(view.render()), 30, "the predictions (from a worker)")
        assert threads and threading.main_thread() not in threads      # never on the UI thread
        first = str(view.render())
        assert f"test digit 1 of {n}" in first and "true:" in first
        await pilot.press("right")
        assert panel.index == 1
        await until(pilot, lambda: f"test digit 2 of {n}" in str(view.render()), 30, "the next digit")
        await pilot.press("left", "left")
        assert panel.index == n - 1                                   # wraps around
        await pilot.press("n")
        await until(pilot, lambda: screen.state == "paused", 30, "a step")
        await pilot.press("n")
        await until(pilot, lambda: panel.last_eval is not None, 30, "an evaluation")
        assert "confusion" in str(screen.query_one("#confusion", Static).render())


@sync
async def test_nile_panel_heatmap_and_gap_curve(tmp_path):
    from textual.widgets import Static

    from descent.tui.app.charts import GapChart
    from descent.tui.app.timegrads import GateChart, RatioChart, TimeGradients

    app = app_for(load(NILE, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await keys(pilot, "space")
        await until(pilot, lambda: screen.history.val_acc.xs, 120, "an evaluation")
        await keys(pilot, "space")
        await until(pilot, lambda: screen.state == "paused", 30, "the pause")
        await pilot.press("2")                                         # Time gradients
        await pilot.pause(0.1)
        heat = str(screen.query_one(TimeGradients).render())
        assert "words back" in heat and "F" in heat and "1e-12" in heat
        assert "this run" in screen.query_one(RatioChart).plt.build()
        assert "gate" in screen.query_one(GateChart).plt.build()           # an LSTM's gates, from the evaluation
        await pilot.press("3")                                         # Nile
        nile = screen.query_one("#nile-view", Static)
        await until(pilot, lambda: "model:" in str(nile.render()), 30, "the predictions (from a worker)")
        view = str(nile.render())
        assert "filler word" in view and "answer:" in view and "model:" in view
        gap = screen.query_one(GapChart)
        assert "accuracy by gap" in gap.plt.build()
        assert screen.query_one("#panel").last_eval.details["by_gap"]["gap"]


def spam_data_present() -> bool:
    from descent.engine.data import data_dir

    try:
        return (data_dir(None) / "sms_spam").is_dir()
    except Exception:
        return False


@pytest.mark.skipif(not spam_data_present(), reason="SMS spam data not found: set DESCENT_DATA or "
                                                     "run `descent data fetch sms_spam`")
@sync
async def test_spam_message_scores(tmp_path):
    from textual.widgets import Input, Static

    from descent.engine.scenario import bundled_dir

    scenario = load(bundled_dir() / "spam.toml", overrides=["training.steps=50"])
    app = app_for(scenario, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("2")
        box = screen.query_one("#spam-input", Input)
        assert app.focused is box                                      # the tab puts the cursor there
        await pilot.press(*"WINNER! claim your free prize now")
        out = screen.query_one("#spam-score", Static)
        await until(pilot, lambda: "now" in str(box.value) and "%" in str(out.render()), 30, "the score")
        score = str(out.render())
        assert "P(spam)" in score and "%" in score
        assert screen.state == "ready"                                 # typing did not start training
        await pilot.press("escape", "n")                               # esc leaves; keys act again
        await until(pilot, lambda: screen.session.step == 1, 30, "one step")


# ---- alerts with a scripted session -----------------------------------------------------------------
class ScriptedSession:
    """A stand-in Session whose run() yields the given records (and honours the stop event); as
    the real one does, it yields an Alarm after a logged Step whose gradients look wrong."""

    def __init__(self, scenario, script):
        self.scenario, self.script = scenario, list(script)
        self.step, self.epoch, self.elapsed, self.total_steps = 0, 0.0, 0.0, 1000
        self.trainer = self.dataset = None
        self.out_dir = None
        self.alarms = GradMonitor()

    def prepare(self, stop=None):
        yield Compiling("compiling kernels")
        self.trainer = object()
        self.dataset = type("D", (), {"summary": lambda self: "scripted data"})()

    def run(self, stop, steps=None, pace=None):
        for rec in self.script:
            if stop.is_set():
                yield Stopped(self.step)
                return
            self.step = rec.step
            yield rec
            alarm = self.alarms.check(rec) if isinstance(rec, Step) else None
            if alarm:
                yield alarm
            if isinstance(rec, Diverged):
                return
        yield Stopped(self.step)

    def set_knob(self, key, value):
        pass

    def close(self):
        pass


def grads(n, g=1.0, start=1):
    return [Step(i, 0.0, 1.0, 1e-3, g, 1.0, {"0.weight": g}, {"0.weight": 1e-3}, None, 100.0, 0.0)
            for i in range(start, start + n)]


@pytest.mark.parametrize("script, kind, text", [
    (grads(10) + grads(1, 1e5, start=11) + grads(5, start=12), "exploding", "exploded at step 11"),
    (grads(3) + grads(1, 1e-9, start=4) + grads(5, start=5), "vanishing", "vanished at step 4"),
    (grads(3) + [Diverged(4, "loss became nan at step 4", "lower the learning rate")], "diverged",
     "diverged at step 4"),
])
@sync
async def test_alerts_pause_and_say_what_to_try(tmp_path, monkeypatch, script, kind, text):
    scenario = with_values(load(DIGITS), {"scenario.panel": "generic"})
    app = app_for(scenario, tmp_path)
    app.new_session = lambda sc: ScriptedSession(sc, script)
    said = notes(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await keys(pilot, "space")
        await until(pilot, lambda: screen.state in ("paused", "diverged"), 10, "the alert")
        await app.workers.wait_for_complete()
        alert = [s for s in said if text in s]
        assert alert, said
        assert "lr" in alert[0] or "learning rate" in alert[0]
        assert screen.state == ("diverged" if kind == "diverged" else "paused")
        if kind != "diverged":
            assert screen.session.step < len(script)                  # it stopped right there


# ---- layout, help, palette, quitting ----------------------------------------------------------------
@sync
async def test_narrow_terminal_knobs_toggle_and_resizes(tmp_path):
    from descent.tui.app.knobs import KnobsPanel

    app = app_for(load(NILE, overrides=LONG), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        knobs = screen.query_one(KnobsPanel)
        assert screen.has_class("-narrow") and not knobs.display
        await pilot.press("k")
        await pilot.pause()
        assert knobs.display and app.focused is not None and knobs in app.focused.ancestors
        await pilot.press("escape")
        await pilot.pause()
        assert not knobs.display and app.focused is None
        await keys(pilot, "space")
        for size in [(40, 12), (200, 60), (20, 8), (100, 30), (80, 24)]:
            await pilot.resize_terminal(*size)
            await asyncio.sleep(0.1)
            screen.redraw(force=True)
            await asyncio.sleep(0.1)
        assert screen.has_class("-narrow") and screen.state == "running"
        await keys(pilot, "space")


@sync
async def test_help_screen_and_command_palette(tmp_path):
    from descent.tui.app.dialogs import HelpScreen

    app = app_for(load(DIGITS), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("Static").render())
        assert "vanishing" in text and "space" in text
        await pilot.press("escape")
        assert app.screen is screen
        titles = [c.title for c in app.get_system_commands(screen)]
        for title in ("Start / pause", "One step", "Reset", "Pin run", "Save checkpoint", "Open checkpoint",
                      "Export metrics", "Help", "Quit descent"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"one step", "enter")                        # through the palette
        await until(pilot, lambda: screen.session.step == 1 and screen.state == "paused", 30, "one step")


@pytest.mark.parametrize("answer", ["k", "d", "escape"])
@sync
async def test_quit_dialog_keeps_or_discards_the_run(tmp_path, answer):
    from descent.tui.app.dialogs import QuitDialog

    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        run_dir = screen.session.out_dir
        await keys(pilot, "space")
        await until(pilot, lambda: screen.session.step >= 3, 60, "a few steps")
        await keys(pilot, "q")
        assert isinstance(app.screen, QuitDialog)
        await keys(pilot, answer)
        if answer == "escape":
            assert app.screen is screen and app.is_running
            await keys(pilot, "space")
            await until(pilot, lambda: screen.state in ("paused", "ready"), 30, "the pause")
            return
        await until(pilot, lambda: not app.is_running, 30, "the app to exit")
    if answer == "k":
        assert (run_dir / "checkpoint.npz").exists() and (run_dir / "metrics.jsonl").exists()
        assert (run_dir / "metrics.jsonl").read_text().count('"kind": "step"') >= 1
    else:
        assert not run_dir.exists() and not run_dir.parent.exists()      # Discard: no empty runs/ left


@sync
async def test_discard_keeps_what_the_user_saved(tmp_path):
    app = app_for(load(DIGITS), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        run_dir = screen.session.out_dir
        await pilot.press("n")
        await until(pilot, lambda: screen.state == "paused", 30, "a step")
        await pilot.press("s")
        await app.workers.wait_for_complete()
        await pilot.press("q", "d")
        await until(pilot, lambda: not app.is_running, 30, "the app to exit")
    assert (run_dir / "checkpoint-step1.npz").exists()


@sync
async def test_quit_before_training_asks_nothing(tmp_path):
    app = app_for(load(DIGITS), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        assert (screen.session.out_dir / "scenario.toml").exists()
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, 10, "the app to exit")
    assert not (tmp_path / "runs").exists()          # no empty run folder left, nor an empty runs/


@sync
async def test_missing_data_shows_the_one_line_error(tmp_path, monkeypatch):
    from descent.engine.scenario import bundled_dir

    monkeypatch.setenv("DESCENT_DATA", str(tmp_path / "empty"))
    app = app_for(load(bundled_dir() / "spam.toml"), tmp_path)
    said = notes(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.state == "error", 60, "the error")
        assert "descent data fetch sms_spam" in str(screen.status.render())
        assert any("Cannot train" in s and "sms_spam" in s for s in said)
        await pilot.press("space")                                    # says why not, no crash
        assert screen.state == "error"
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, 10, "the app to exit")


# ---- the cost of watching is measured by bench/dashboard.py (a script, never a timed test) ----------


@sync
async def test_an_unexpected_worker_error_is_reported_not_fatal(tmp_path, monkeypatch):
    class Broken(ScriptedSession):
        def run(self, stop, steps=None, pace=None):
            yield from grads(2)
            raise RuntimeError("kernel exploded")

    scenario = with_values(load(DIGITS), {"scenario.panel": "generic"})
    app = app_for(scenario, tmp_path)
    app.new_session = lambda sc: Broken(sc, [])
    said = notes(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await keys(pilot, "space")
        await until(pilot, lambda: screen.state == "error", 10, "the error")
        assert any("RuntimeError: kernel exploded" in s for s in said)
        assert app.is_running and "internal error" in str(screen.status.render())


@sync
async def test_sighup_keeps_the_run_and_exits_130(tmp_path):
    """A dropped SSH session: the checkpoint and the metrics are saved, the run can be resumed."""
    import os
    import signal

    from descent.engine import checkpoint

    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        run_dir = screen.session.out_dir
        await keys(pilot, "space")
        await until(pilot, lambda: screen.session.step >= 3, 60, "a few steps")
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        os.kill(os.getpid(), signal.SIGHUP)
        await until(pilot, lambda: not app.is_running, 30, "the app to exit")
    assert app.return_code == 130
    _, meta = checkpoint.load(run_dir / "checkpoint.npz")
    steps = [json.loads(ln)["step"] for ln in (run_dir / "metrics.jsonl").read_text().splitlines()
             if '"kind": "step"' in ln]
    assert meta["step"] >= 3 and steps and steps[-1] <= meta["step"]
    assert not (run_dir / ".descent.lock").exists()


@sync
async def test_the_dashboard_reopens_a_run_folder_and_continues_it(tmp_path):
    from descent.engine.session import Session

    run_dir = tmp_path / "earlier"
    session = Session(load(DIGITS, overrides=["training.steps=5", "training.log_every=1"]), out_dir=run_dir)
    for _ in session.prepare():
        pass
    list(session.run())
    session.close()
    app = app_for(None, tmp_path, resume=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        assert screen.session.out_dir == run_dir and screen.session.step == 5
        await pilot.press("n")
        await until(pilot, lambda: screen.session.step == 6 and screen.state != "running", 30, "one step")
        await keys(pilot, "q")
        await keys(pilot, "k")
        await until(pilot, lambda: not app.is_running, 30, "the app to exit")
    steps = [json.loads(ln)["step"] for ln in (run_dir / "metrics.jsonl").read_text().splitlines()
             if '"kind": "step"' in ln]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert not (tmp_path / "runs").exists()          # nothing new made in the runs folder


def test_status_line_shows_evaluating_only_while_running():
    from descent.tui.app.status import StatusInfo, status_text

    busy = StatusInfo(state="running", detail="", step=20, total=400, loss=0.5, steps_per_s=900.0, evaluating=True)
    text = status_text(busy).plain
    assert "evaluating" in text and "step 20/400" in text and "steps/s" not in text   # no rate while it stalls
    assert "running" in status_text(StatusInfo(state="running", detail="", step=20, steps_per_s=900.0)).plain
    assert "paused" in status_text(StatusInfo(state="paused", detail="", step=20, evaluating=True)).plain


@sync
async def test_a_slow_evaluation_shows_on_the_status_line_and_space_still_pauses(tmp_path, monkeypatch):
    """The worker says an evaluation began (the first always, later ones when the one before took
    0.3 s or more); the status line says "evaluating" until the next step or the evaluation
    arrives, and the keys still treat the run as running."""
    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        real = screen.session.evaluate
        monkeypatch.setattr(screen.session, "evaluate", lambda: (time.sleep(1.0), real())[1])
        seen = []                          # (evaluating, step, the line) at every change, as painted
        show = screen.status.show

        def spy(**changes):
            show(**changes)
            if "evaluating" in changes:
                seen.append((changes["evaluating"], screen.status.info.step, status_text_of(screen)))

        screen.status.show = spy
        await keys(pilot, "space")
        await until(pilot, lambda: sum(e for e, _, _ in seen) >= 2, 60, "two evaluations shown")
        (first, line), (second, _) = [(step, text) for e, step, text in seen if e][:2]
        assert "evaluating" in line and "steps/s" not in line and first > 0 and first % 20 == 0
        assert second > first and second % 20 == 0       # the next one too (the one before took 1 s)
        between = seen[[e for e, _, _ in seen].index(True) + 1:]
        assert not between[0][0] and "running" in between[0][2]      # training again in between
        assert screen.state == "running"
        await until(pilot, lambda: screen.status.info.evaluating, 30, "an evaluation under way")
        await keys(pilot, "space")                       # pausing mid-evaluation: after it, as ever
        assert screen.state == "pausing" and "pausing" in status_text_of(screen)
        await until(pilot, lambda: screen.state == "paused", 30, "the pause")
        assert "paused" in status_text_of(screen) and not screen.status.info.evaluating


def status_text_of(screen) -> str:
    return str(screen.status.render())
