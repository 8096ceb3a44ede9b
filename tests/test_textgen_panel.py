"""The text panel in the real dashboard: samples at evaluation, the prompt box, the temperature."""

from __future__ import annotations

import asyncio
import time

import pytest

from descent.engine.data import data_dir
from descent.engine.scenario import bundled_dir, load


def shakespeare_present() -> bool:
    try:
        return (data_dir(None) / "tinyshakespeare" / "input.txt").is_file()
    except Exception:
        return False


async def until(pilot, condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.skipif(not shakespeare_present(), reason="Tiny Shakespeare not found: set DESCENT_DATA")
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_prompt_sample_and_temperature(tmp_path, size):
    asyncio.run(_drive(tmp_path, size))


async def _drive(tmp_path, size):
    from textual.widgets import Input, Static

    from descent.tui.app import make_app

    scenario = load(bundled_dir() / "textgen.toml", ["training.steps=40", "evaluation.every=20",
                                                      "data.max_chars=50000", "evaluation.max_samples=120",
                                                      "model.layers[1].hidden=32"])
    app = make_app(scenario, runs_dir=tmp_path / "runs")
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await until(pilot, lambda: getattr(app.screen, "state", "") == "ready", 120, "the session")
        screen = app.screen
        await pilot.press("space")
        await until(pilot, lambda: screen.session.step >= 40 and screen.state != "running", 120, "training")
        await pilot.press("3")                           # gradients, time gradients, text
        await pilot.pause(0.2)
        panel = screen.query_one("#panel")
        box = screen.query_one("#tg-prompt", Input)
        assert app.focused is box
        await until(pilot, lambda: "sample at step" in str(screen.query_one("#tg-sample", Static).render()), 30,
                    "the evaluation's sample")
        assert "bits/char" in str(screen.query_one("#tg-head", Static).render())
        await pilot.press(*"ROMEO:", "enter")
        out = screen.query_one("#tg-continued", Static)
        await until(pilot, lambda: str(out.render()).startswith("ROMEO:") and len(str(out.render())) > 40, 30,
                    "the continuation")
        await pilot.press("escape", "right", "right")
        assert panel.temperature == 1.0 and screen.session.sample_temperature == 1.0
        assert "temperature 1.0" in str(screen.query_one("#tg-head", Static).render())
