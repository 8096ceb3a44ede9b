"""Snapshots of the main screens at 80x24 and 120x40: the picker, the dashboard for digits and
Nile after exactly N steps trained synchronously (times frozen), and the help screen.

Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs in tests/__snapshots__/test_tui_snapshots/ before committing them.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from descent.engine.records import Finished, Step
from descent.engine.scenario import load

DATA = Path(__file__).parent / "data"
FIXTURES = ("tui_digits.toml", "tui_nile.toml", "tui_broken.toml")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Only the test scenarios in the picker; runs written under tmp_path."""
    import descent.engine.scenario

    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name in FIXTURES:
        shutil.copy(DATA / name, folder / name)
    monkeypatch.setattr(descent.engine.scenario, "search_dirs", lambda: [folder])
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return folder


def make(scenario, tmp_path):
    from descent.tui.app import make_app

    return make_app(scenario, runs_dir=tmp_path / "runs")


def trained(steps: int, tab: str | None = None):
    """run_before: prepare, train `steps` steps synchronously with times frozen, show `tab`."""

    async def run_before(pilot):
        app = pilot.app
        while getattr(app.screen, "state", "") != "ready":
            await pilot.pause(0.05)
        screen = app.screen
        session = screen.session
        for rec in session.run(threading.Event(), steps=steps):
            if isinstance(rec, (Step, Finished)):
                rec = replace(rec, elapsed=0.0, **({"steps_per_s": 0.0} if isinstance(rec, Step) else {}))
            screen.feed(rec)
        session.elapsed = 0.0
        for _ in range(5):                  # every posted message handled before the picture
            await pilot.pause(0.05)
        if tab:
            await pilot.press(tab)
        screen.redraw(force=True)
        await app.workers.wait_for_complete()          # the panel's predictions come from a worker
        for _ in range(5):
            await pilot.pause(0.05)

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_picker(snap_compare, tmp_path, size):
    from descent.tui.app import make_app

    # the broken file comes first (sorted) and is highlighted: its error shows
    assert snap_compare(make_app(None, runs_dir=tmp_path / "runs"), terminal_size=size)


@pytest.mark.parametrize("size, tab", [((80, 24), None), ((120, 40), "2")])
def test_dashboard_digits(snap_compare, tmp_path, size, tab):
    app = make(load(DATA / "tui_digits.toml"), tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=trained(60, tab))


# (120, 40) on the time tab: its pixels once changed between runs; the cause was plotext
# ordering ticks by string hash (tui/app/charts.py `_brush`)
@pytest.mark.parametrize("size, tab", [((80, 24), "3"), ((120, 40), "2")])
def test_dashboard_nile(snap_compare, tmp_path, size, tab):
    app = make(load(DATA / "tui_nile.toml"), tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=trained(50, tab))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_help(snap_compare, tmp_path, size):
    app = make(load(DATA / "tui_digits.toml"), tmp_path)

    async def run_before(pilot):
        while getattr(pilot.app.screen, "state", "") != "ready":
            await pilot.pause(0.05)
        await pilot.press("question_mark")
    assert snap_compare(app, terminal_size=size, run_before=run_before)


# Each cell's time tab by content (the picture of one is test_dashboard_nile).
@pytest.mark.parametrize("cell, inside", [("lstm", "forget"), ("gru", "update"), ("attention", "attention")])
def test_time_gradients_view(tmp_path, cell, inside):
    """The time tab of each cell: answer-aligned heatmap with its log legend and the fact marked,
    the ratio chart, and the gate (or attention) chart."""
    import asyncio

    from descent.tui.app.timegrads import GateChart, RatioChart, TimeGradients

    async def run():
        app = make(load(DATA / "tui_nile.toml", overrides=[f"model.layers[1].type={cell}"]), tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await trained(50, "2")(pilot)
            screen = app.screen
            heat = screen.query_one(TimeGradients)
            text = heat.render_rows(100, 30, colour=False).plain
            assert "words back" in text and "answer" in text and "1e-3" in text and "F fact" in text
            ratio, gates = screen.query_one(RatioChart), screen.query_one(GateChart)
            assert ratio.display and gates.display
            assert screen.history.ratio_rows(1), "no answer-aligned ratio rows were recorded"
            assert screen.history.inside and inside in str(screen.history.inside).lower()

    asyncio.run(run())
