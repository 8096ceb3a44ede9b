"""The digits panel and the draw-your-own canvas: the half-block renderer, the compact confusion
matrix, MNIST-style preprocessing, and, through Pilot, a 7 drawn with the keys and recognised.

The 8x8 test trains tests/data/tui_digits.toml for its 400 steps (a few seconds); the MNIST test
trains a small MLP for 600 steps on 10,000 images and skips without the MNIST files.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from descent.engine.scenario import load
from descent.tui.app.pixels import (GREYS, PixelImage, confusion_grid, confusion_width, digit_lines, fit,
                                    mnist_like, optdigits_like, resize)

DATA = Path(__file__).parent / "data"


def rendered(renderable, width: int = 80, color: bool = True) -> tuple[str, list]:
    console = Console(width=width, color_system="256" if color else None, record=True, force_terminal=color)
    segments = list(console.render(renderable))
    text = "".join(s.text for s in segments)
    return text, segments


# ---- pure rendering and preprocessing -----------------------------------------------------------------
def test_half_blocks_give_the_right_aspect_and_greys():
    img = np.zeros((28, 28))
    img[0, 0], img[1, 0] = 1.0, 0.0          # top white, bottom black
    text, segments = rendered(PixelImage(img))
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 14 and all(len(line) == 28 for line in lines)       # 28 columns by 14 rows
    first = next(s for s in segments if s.text == "▀")
    assert first.style.color.number == GREYS[-1] and first.style.bgcolor.number == GREYS[0]


def test_plain_fallback_uses_shades_and_no_colour():
    img = np.zeros((8, 8))
    img[:2, :4] = 1.0
    text, segments = rendered(PixelImage(img, plain=True), color=False)
    assert text.split("\n")[0] == "████    "
    assert all(s.style is None or s.style.color is None for s in segments if s.text.strip())


def test_digit_lines_draw_blocks():
    img = np.zeros((4, 4))
    img[0, :2] = 1.0
    img[3, 2:] = 1.0
    assert digit_lines(img) == ["▀▀  ", "  ▄▄"]


def test_fit_scales_to_the_space():
    assert fit(np.ones((8, 8)), 40, 10).shape == (16, 16)      # small images are doubled
    assert fit(np.ones((28, 28)), 40, 14).shape == (28, 28)
    small = fit(np.ones((28, 28)), 20, 7)
    assert small.shape[1] <= 20 and small.shape[0] <= 14
    assert resize(np.ones((28, 28)), 14, 14) == pytest.approx(np.ones((14, 14)))   # area kept


def test_confusion_grid_is_compact_and_never_wraps():
    m = np.full((10, 10), 7)
    np.fill_diagonal(m, 1135)                # MNIST-sized counts
    grid = confusion_grid(m, [str(d) for d in range(10)])
    lines = grid.plain.split("\n")
    assert max(len(line) for line in lines[1:-1]) == confusion_width(10) == 32
    assert len(lines) == 13
    text, _ = rendered(grid, width=34)
    assert len(text.rstrip("\n").split("\n")) == 13          # 34 columns: no line wraps
    cells = [span for span in grid.spans if getattr(span.style, "bgcolor", None) is not None]
    assert len({str(span.style.bgcolor) for span in cells}) >= 2          # a heat shade per share


def stroke_seven(size: int) -> np.ndarray:
    ink = np.zeros((size, size))
    ink[4:6, 6:22] = 1.0
    for r in range(6, 24):
        c = 21 - (r - 6) * 10 // 18
        ink[r, c - 1:c + 1] = 1.0
    return ink


def test_mnist_preprocessing_box_and_centre_of_mass():
    image = mnist_like(stroke_seven(28))
    assert image.shape == (28, 28) and image.max() <= 1.0
    rows, cols = np.nonzero(image > 0.05)
    assert rows.max() - rows.min() + 1 <= 21 and cols.max() - cols.min() + 1 <= 21
    ys, xs = np.indices(image.shape)
    com = ((ys * image).sum() / image.sum(), (xs * image).sum() / image.sum())
    assert com == pytest.approx((13.5, 13.5), abs=0.75)
    assert mnist_like(np.zeros((28, 28))) is None


def test_optdigits_preprocessing_counts_blocks():
    image = optdigits_like(stroke_seven(32))
    assert image.shape == (8, 8) and 0.0 <= image.min() and image.max() <= 1.0
    assert image[0].max() > 0.5 and image[-1].max() > 0.2              # fills the box top to bottom
    assert optdigits_like(np.zeros((32, 32))) is None


def test_model_input_matches_the_loader_standardization():
    from descent.engine.data.images import load_digits8x8
    from descent.tui.app.draw import model_input

    ds = load_digits8x8(standardize=True)
    x = model_input(ds, ds.extra_test["images"][3, 0])
    assert x.shape == (1, 1, 8, 8) and x == pytest.approx(ds.x_test[3:4], abs=1e-5)
    plain = load_digits8x8(standardize=False)
    assert model_input(plain, plain.extra_test["images"][3, 0]) == pytest.approx(plain.x_test[3:4])


# ---- as a user: train, open the canvas, draw a 7 with the keys -----------------------------------
def seven_keys(size: int, crossbar: bool = False) -> list[str]:
    """Keys that draw a 7 on a size x size canvas (size columns by size/2 rows), cursor at the centre;
    `crossbar`: the European 7 with a bar across its middle."""
    rows = size // 2
    left, right, top, bottom = size // 4, 3 * size // 4, rows // 8, rows - 1 - rows // 8
    keys = ["left"] * (size // 2 - left) + ["up"] * (rows // 2 - top) + ["space"]
    keys += ["shift+right"] * (right - left)                        # the bar
    across = right - size // 2 + 1
    for step in range(bottom - top):                                # the stem, down and to the left
        keys.append("shift+down")
        if step * across // (bottom - top) != (step + 1) * across // (bottom - top):
            keys.append("shift+left")
    if crossbar:                                                    # back up to the middle, then across
        half = (bottom - top) // 2
        keys += ["up"] * (bottom - top - half) + ["right"] * (across // 2 + 3) + ["space"]
        keys += ["shift+left"] * 7
    return keys


def train_and_draw(scenario, tmp_path, steps: int | None, data_dir=None) -> list[tuple[str, float]]:
    from descent.engine.records import Evaluation
    from descent.tui.app import make_app
    from descent.tui.app.draw import DrawScreen

    async def go():
        app = make_app(scenario, data_dir=data_dir, runs_dir=tmp_path / "runs")
        async with app.run_test(size=(120, 40)) as pilot:
            while getattr(app.screen, "state", "") != "ready":
                assert getattr(app.screen, "state", "") != "error", app.screen.status.info.detail
                await pilot.pause(0.05)
            screen = app.screen
            for rec in screen.session.run(threading.Event(), steps=steps):
                if isinstance(rec, Evaluation):
                    screen.feed(rec)
            await pilot.press("2")                               # the Digits tab
            await pilot.press("d")
            assert isinstance(app.screen, DrawScreen)
            size = app.screen.size_px
            await pilot.press(*seven_keys(size))
            await app.workers.wait_for_complete()
            await pilot.pause()
            top = list(app.screen.top)
            assert "7" in str(app.screen.query_one("#draw-guess").render())
            await pilot.press("escape")
            assert not isinstance(app.screen, DrawScreen)
            return top

    return asyncio.run(go())


def test_a_seven_drawn_with_keys_is_recognised_8x8(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scenario = load(DATA / "tui_digits.toml", overrides=["data.standardize=true"])
    top = train_and_draw(scenario, tmp_path, None)
    assert top[0][0] == "7", top


def test_a_seven_drawn_with_keys_is_recognised_mnist(tmp_path, monkeypatch):
    root = Path(os.environ.get("DESCENT_DATA", Path.home() / ".local/share/descent/data"))
    if not (root / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"no MNIST files in {root / 'mnist'} (descent data fetch mnist)")
    monkeypatch.chdir(tmp_path)
    scenario = load(Path(__file__).parents[1] / "scenarios" / "digits.toml",
                    overrides=["data.limit_train=10000", "data.limit_test=500", "model.layers[1].units=128",
                               "training.steps=600", "evaluation.every=600"])
    top = train_and_draw(scenario, tmp_path, None, data_dir=str(root))
    assert top[0][0] == "7", top


def test_the_mouse_draws_and_the_guesses_follow(tmp_path, monkeypatch):
    """Click and drag on the canvas paints a stroke; a right-button drag erases; each change asks
    the model (in a worker, never on the UI thread)."""
    from textual import events

    from descent.tui.app.draw import DigitCanvas, DrawScreen

    monkeypatch.chdir(tmp_path)

    async def go(app, pilot):
        session = app.screen.session
        threads = []
        real = session.predict_proba
        session.predict_proba = lambda *a: (threads.append(threading.current_thread()), real(*a))[1]
        await pilot.press("2", "d")
        assert isinstance(app.screen, DrawScreen)
        canvas = app.screen.query_one(DigitCanvas)
        await pilot.mouse_down(canvas, offset=(4, 3))
        for x in range(5, 25):
            await pilot._post_mouse_events([events.MouseMove], canvas, offset=(x, 3), button=1)
        await pilot.mouse_up(canvas, offset=(24, 3))
        await app.workers.wait_for_complete()
        await pilot.pause()
        painted = canvas.ink[6:8].max(axis=0)
        assert painted[4:25].min() > 0.9 and painted[30:].max() == 0.0      # one row of cells, 4..24
        assert threads and threading.main_thread() not in threads
        assert len(app.screen.top) == 3
        await pilot.mouse_down(canvas, offset=(10, 3), button=3)            # right button erases
        await pilot.mouse_up(canvas, offset=(10, 3))
        assert canvas.ink[6:8, 10].max() < 0.1
        await pilot.press("c")
        assert canvas.ink.max() == 0.0 and app.screen.top == []
        await pilot.press("escape")

    on_ready_8x8(tmp_path, (80, 24), go)


def on_ready_8x8(tmp_path, size, body) -> None:
    """The dashboard on tests/data/tui_digits.toml at `size`, once its model is ready: body(app, pilot)."""
    from descent.tui.app import make_app

    async def go():
        app = make_app(load(DATA / "tui_digits.toml"), runs_dir=tmp_path / "runs")
        async with app.run_test(size=size) as pilot:
            while getattr(app.screen, "state", "") != "ready":
                await pilot.pause(0.05)
            await body(app, pilot)

    asyncio.run(go())


def test_keys_typed_at_once_reach_the_tab_they_open(tmp_path, monkeypatch):
    """"2" then "d" delivered together (a quick typist, tmux's send-keys): the "d" goes to the
    Digits panel that "2" opened, not to whatever had the keys before (it was lost while the
    panel's focus waited behind it in the app's queue)."""
    from textual import events

    from descent.tui.app.draw import DrawScreen

    monkeypatch.chdir(tmp_path)

    async def go(app, pilot):
        for key in ("2", "d"):                         # both queued before either is handled
            app.post_message(events.Key(key, key))
        for _ in range(20):
            await pilot.pause(0.05)
            if isinstance(app.screen, DrawScreen):
                break
        assert isinstance(app.screen, DrawScreen)

    on_ready_8x8(tmp_path, (120, 40), go)
