"""Charts and pace (issue 10, items 4 and 5): legends above the plot with a marker per series that
survives NO_COLOR, axis titles, the accuracy axis zoomed (or error % on a log axis), a divergence
marked on the loss chart, a key that hides the knobs, every tensor at 80x24, and a speed control
for the dashboard that headless runs never see."""

from __future__ import annotations

import re
import threading

import pytest

from descent.engine.records import Diverged, Evaluation, Step
from descent.engine.scenario import load, resolve_name
from descent.tui.app.charts import AccuracyChart, LossChart, TensorChart, fit_legend, spark_rows, zoom
from descent.tui.app.pace import LEVELS, Pacer, auto_rate
from test_tui import DIGITS, LONG, SIZE, app_for, isolated, keys, ready, sync, until  # noqa: F401

TENSORS = [f"{i}.{kind}" for i in range(4) for kind in ("weight", "bias")][:7]


def step(i: int, loss: float = 1.0, g: float = 1.0) -> Step:
    norms = {name: g * 10.0 ** -k for k, name in enumerate(TENSORS)}
    return Step(i, 0.0, loss, 1e-3, g, 1.0, norms, {n: 1e-3 for n in TENSORS}, None, 100.0, 0.0)


def evaluation(i: int, acc: float) -> Evaluation:
    return Evaluation(i, 0.0, "test", {"loss": 0.1, "accuracy": acc})


def plain(widget) -> list[str]:
    """The chart as a user sees it, without colour."""
    return widget.render().plain.splitlines()


def feed(screen, records) -> None:
    for rec in records:
        screen.history.add(rec)
    screen.redraw(force=True)


# ---- pure helpers ---------------------------------------------------------------------------------
def test_zoom_and_legend_fitting():
    assert zoom([96.0, 99.0]) == (95.0, 100.0)                  # not 0-100: the curve still moves
    assert zoom([10.0, 50.0]) == (6.0, 54.0)
    entries = ["⣿ train", "• val", "x dense 32-10 adam lr3e-3"]
    assert fit_legend(entries, 80) == "  ".join(entries)
    short = fit_legend(entries, 34)
    assert len(short) <= 34 and "…" in short and short.startswith("⣿ train")
    assert fit_legend(entries, 12).endswith("+2")


def test_spark_rows_share_a_log_scale_and_say_how_many_more():
    curves = {name: ([1, 2, 3], [10.0 ** -k] * 3) for k, name in enumerate(TENSORS)}
    rows = spark_rows(curves, 60, 8)
    assert len(rows) == 7 and rows[0].split()[1] == "███" and rows[-1].split()[1] == "▁▁▁"
    rows = spark_rows(curves, 60, 4)
    assert len(rows) == 4 and rows[-1].startswith("+4 more")
    assert rows[0].startswith("0.weight")                      # the largest by newest norm


# ---- the charts on the dashboard ------------------------------------------------------------------
@sync
async def test_legend_above_the_plot_markers_without_colour_and_step_axis(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        feed(screen, [step(i, loss=2.0 / i) for i in range(1, 40)] + [evaluation(20, 0.9)])
        await keys(pilot, "c")                                  # pin this run
        label = screen.pinned[0].label
        screen.history = type(screen.history)()
        feed(screen, [step(i, loss=1.0 / i) for i in range(1, 30)])
        await pilot.pause()
        lines = plain(screen.query_one(LossChart))
        top = next(i for i, line in enumerate(lines) if "┌" in line)
        bottom = next(i for i, line in enumerate(lines) if "└" in line)
        legend = " ".join(lines[:top] + lines[bottom + 1:])     # above or below the plot, never in it
        assert "⣿ train" in legend and "• val" in legend and "x " + label[:5] in legend
        plot = "\n".join(lines[top:bottom])
        assert "x" in plot and re.search("[⠁-⣿]", plot)           # pinned: x marks; current: braille
        assert lines[-1].strip().startswith("step")
        assert "step" in plain(screen.query_one(AccuracyChart))[-1] or not screen.history.val_acc.xs


@sync
async def test_accuracy_axis_zooms_and_a_toggles_error_on_a_log_axis(tmp_path):
    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        feed(screen, [evaluation(i * 20, 0.96 + 0.001 * i) for i in range(1, 30)])
        await pilot.pause()
        chart = screen.query_one(AccuracyChart)
        ticks = [float(m) for line in plain(chart) for m in re.findall(r"^\s*([\d.]+)\s*┤", line)]
        assert ticks and min(ticks) >= 90, ticks                # zoomed: not 0-100
        await keys(pilot, "a")
        assert chart.error_log and "error % (log)" in plain(chart)[0]
        assert any(re.match(r"^\s*[\d.]+%┤", line) for line in plain(chart))      # ticks read "2%"
        assert all(0 < y < 1 for y in chart.y_seen)            # log10 of errors of 1-4 %
        await keys(pilot, "a")
        assert not chart.error_log


@sync
async def test_divergence_is_marked_on_the_loss_chart(tmp_path):
    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        chart = screen.query_one(LossChart)
        # diverged before the first logged step (every training.log_every): why the chart was empty
        feed(screen, [Diverged(3, "loss became nan at step 3", "lower the learning rate")])
        await pilot.pause()
        text = "\n".join(plain(chart))
        assert "diverged at step 3" in text and "before the first logged step" in text
        screen.history = type(screen.history)()
        feed(screen, [step(i, loss=1.5 ** i) for i in range(5, 35, 5)] + [Diverged(32, "loss blew up", "")])
        await pilot.pause()
        text = plain(chart)
        top = next(i for i, line in enumerate(text) if "┌" in line)
        bottom = next(i for i, line in enumerate(text) if "└" in line)
        assert "✗ diverged at 32" in " ".join(text[:top] + text[bottom + 1:])
        assert any("✗" in line for line in text[top:bottom])       # the mark at its step
        assert max(chart.x_seen) == 32


@sync
async def test_divergence_of_a_real_run_draws_its_loss(tmp_path):
    app = app_for(load(DIGITS, overrides=LONG + ["training.lr=50", "training.optimizer=sgd",
                                                     "training.diverge_factor=2"]), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        for _ in range(5):          # a gradient alarm may pause it first: space goes on
            await keys(pilot, "space")
            await until(pilot, lambda: screen.state in ("diverged", "paused"), 60, "the divergence")
            await app.workers.wait_for_complete()
            if screen.state == "diverged":
                break
        assert screen.state == "diverged"
        await pilot.pause()
        chart = screen.query_one(LossChart)
        assert f"✗ diverged at step {screen.history.diverged_at:,}" in "\n".join(plain(chart)) \
            or f"✗ diverged at {screen.history.diverged_at:,}" in "\n".join(plain(chart))


@sync
async def test_h_hides_the_knobs_and_the_charts_get_the_width(tmp_path):
    app = app_for(load(DIGITS), tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        knobs, chart = screen.query_one("#knobs"), screen.query_one(LossChart)
        before = chart.size.width
        await keys(pilot, "h")
        await pilot.pause()
        assert not knobs.display and chart.size.width > before + 10
        await keys(pilot, "h")
        await pilot.pause()
        assert knobs.display and chart.size.width == before


@sync
async def test_every_tensor_is_drawn_at_80x24(tmp_path):
    app = app_for(load(DIGITS, overrides=LONG), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        feed(screen, [step(i) for i in range(1, 50)])
        await pilot.pause()
        grads = screen.query_one("#grad-chart", TensorChart)
        assert grads.compact()
        text = "\n".join(plain(grads))
        drawn = [name for name in TENSORS if name in text]
        more = re.search(r"\+(\d+) more", text)
        assert len(drawn) > 2 and len(drawn) + (int(more.group(1)) if more else 0) == len(TENSORS), text


# ---- pace -----------------------------------------------------------------------------------------
def test_pacer_keeps_a_schedule(monkeypatch):
    """At 10 steps/s, ten steps that take no time wait 1 s in all (the clock is simulated)."""
    clock = [100.0]
    waited = []
    pacer = Pacer(10.0)

    def wait(seconds):
        waited.append(seconds)
        clock[0] += seconds
        return False

    monkeypatch.setattr("descent.tui.app.pace.time.monotonic", lambda: clock[0])
    monkeypatch.setattr(pacer.stop, "wait", wait)
    for _ in range(10):
        clock[0] += 0.01                        # the step itself
        pacer()
    assert sum(waited) + 0.1 == pytest.approx(1.0 + 0.01, abs=0.02)
    pacer.set(1.0)
    waited.clear()
    for _ in range(3):
        pacer()
    assert sum(waited) == pytest.approx(3.0, abs=0.01)
    pacer.set(None)
    waited.clear()
    pacer()
    assert not waited                           # full speed never waits


def test_pace_levels_keys_and_auto_rate():
    pacer = Pacer(None)
    assert pacer.shift(-1) == LEVELS[-1] and pacer.shift(-1) == 10.0 and pacer.shift(-1) == 1.0
    assert pacer.shift(-1) == 1.0 and pacer.toggle_max() is None and pacer.toggle_max() == 1.0
    assert auto_rate(100_000) is None                          # big runs: as fast as they go
    from descent.engine.session import Session

    for name in ("digits8x8", "spam"):
        session = Session(load(resolve_name(name)), out_dir=None)
        try:
            list(session.prepare())
        except Exception as e:                                 # spam needs its data ($DESCENT_DATA)
            assert name == "spam", e
            continue
        total = session.total_steps
        assert 20 <= total / auto_rate(total) <= 60, (name, total)     # a whole run takes 20-60 s


def test_headless_runs_are_unaffected_by_pace():
    """A pace changes when steps happen, never what they compute; without one nothing waits."""
    from descent.engine.session import Session

    losses = []
    for pace in (None, lambda: calls.append(1)):
        calls: list = []
        s = Session(load(DIGITS, overrides=["training.steps=30"]), out_dir=None)
        list(s.prepare())
        losses.append([r.loss for r in s.run(threading.Event(), pace=pace) if isinstance(r, Step)])
        if pace is not None:
            assert len(calls) == 29                            # after every step but the last
    assert losses[0] == losses[1]


@sync
async def test_pace_keys_knob_and_auto_pace_on_the_dashboard(tmp_path):
    from textual.widgets import Select

    app = app_for(load(DIGITS), tmp_path, pace="auto")
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        auto = auto_rate(screen.session.total_steps)
        assert screen.pacer.rate == auto == 10.0                # 400 steps in 40 s
        assert "pace 10/s" in str(screen.status.render())
        pace = screen.query_one("#pace", Select)
        assert pace.value == 10.0
        await keys(pilot, "f")                                  # max: one key away
        assert screen.pacer.rate is None and pace.value == 0.0
        await keys(pilot, "f")
        assert screen.pacer.rate == 10.0
        await keys(pilot, "right_square_bracket")
        assert screen.pacer.rate == 100.0 and pace.value == 100.0
        await keys(pilot, "left_square_bracket", "left_square_bracket")
        assert screen.pacer.rate == 1.0
        pace.value = 0.0                                        # the knob
        await pilot.pause()
        assert screen.pacer.rate is None
        await keys(pilot, "space")
        await until(pilot, lambda: screen.state == "finished", 60, "the run at full speed")
