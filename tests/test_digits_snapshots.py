"""Snapshots of the digits panel and the draw-your-own canvas (tests/data/tui_digits.toml after 60
steps trained synchronously, times frozen): the panel at 80x24 (the half-block confusion heat map)
and under NO_COLOR (shade characters, the numbers), and a 7 drawn with the keys at 80x24 and 120x40.

Update after an intended change with `pytest tests/test_digits_snapshots.py --snapshot-update`
and look at the SVGs in tests/__snapshots__/test_digits_snapshots/ before committing them.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from descent.engine.records import Finished, Step
from descent.engine.scenario import load

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)


def make(tmp_path):
    from descent.tui.app import make_app

    return make_app(load(DATA / "tui_digits.toml"), runs_dir=tmp_path / "runs")


def trained(steps: int, keys=()):
    """run_before: prepare, train `steps` steps with times frozen, open the Digits tab, press `keys`."""

    async def run_before(pilot):
        app = pilot.app
        while getattr(app.screen, "state", "") != "ready":
            await pilot.pause(0.05)
        screen = app.screen
        for rec in screen.session.run(threading.Event(), steps=steps):
            if isinstance(rec, (Step, Finished)):
                rec = replace(rec, elapsed=0.0, **({"steps_per_s": 0.0} if isinstance(rec, Step) else {}))
            screen.feed(rec)
        screen.session.elapsed = 0.0
        await pilot.pause()
        await pilot.press("2")
        screen.redraw(force=True)
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen.panel.show_sample()              # once the panel has its size
        await app.workers.wait_for_complete()
        if keys:
            await pilot.press(*keys)
        await app.workers.wait_for_complete()          # predictions come from a worker
        await pilot.pause()

    return run_before


def test_digits_panel_80x24(snap_compare, tmp_path):
    assert snap_compare(make(tmp_path), terminal_size=(80, 24), run_before=trained(60))


def test_digits_panel_no_color(snap_compare, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(make(tmp_path), terminal_size=(80, 24), run_before=trained(60))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_draw_a_seven(snap_compare, tmp_path, size):
    from test_digits import seven_keys

    assert snap_compare(make(tmp_path), terminal_size=size, run_before=trained(60, ["d", *seven_keys(32)]))
