"""The teaching panels' renderers (issue 12), read as plain text at the 80x24 panel size with
colour off: every lesson must show in the characters alone."""

import numpy as np
import pytest
from rich.console import Console

from descent.engine.data.toy2d import make_toy2d
from descent.engine.lessons import (boundary_grid, clip_summary, gd_path, mse_and_grad, mse_grid,
                                    stability, surface_window)
from descent.tui.app.lesson_render import (HEIGHT, MAP_COLS, MAP_ROWS, WIDTH, descent_arrow,
                                       linear_map_lines, render_boundary, render_clipping,
                                       render_forecast, render_loss_surface, sparkline)


def as_text(renderable) -> list[str]:
    console = Console(record=True, width=WIDTH, no_color=True, color_system=None)
    console.print(renderable)
    lines = console.export_text().rstrip("\n").split("\n")
    assert len(lines) <= HEIGHT and max(len(line) for line in lines) <= WIDTH, "\n".join(lines)
    return lines


def surface(lr, steps=5):
    x = np.random.default_rng(0).uniform(-1, 1, 64)
    path, _ = gd_path(x, x, lr, steps, w0=-0.5, b0=1.0)
    w_lim, b_lim = surface_window(1.0, 0.0, path)
    loss, _, _ = mse_grid(x, x, w_lim, b_lim, MAP_COLS, MAP_ROWS)
    _, gw, gb = mse_and_grad(x, x, *path[-1])
    return as_text(render_loss_surface(loss, w_lim, b_lim, path, (gw, gb), lr,
                                       stability(x, lr).lr_max, minimum=(1.0, 0.0)))


def test_loss_surface_shows_path_minimum_arrow_and_threshold():
    lines = surface(0.3)
    text = "\n".join(lines)
    assert text.count("@") == 2 and "o path" in text            # the marker and its legend
    assert sum(line[:45].count("o") for line in lines) >= 3     # earlier steps of the path
    assert "+" in "".join(line[:45] for line in lines)          # the minimum
    assert "stable below 2/λmax = 0.9998" in text and "lr OK: converges" in text
    assert any(a in "".join(line[:45] for line in lines) for a in "→↗↑↖←↙↓↘")
    assert "w 0." in text and "░" in text and "▓" in text       # numbers, and loss shading


def test_loss_surface_says_when_the_rate_is_too_big():
    text = "\n".join(surface(1.2, steps=3))
    assert "lr TOO BIG: diverges" in text and "lr 1.2" in text


def test_descent_arrow_points_down_the_gradient_on_screen():
    lim = (-1.0, 1.0)
    assert descent_arrow(1.0, 0.0, lim, lim, 10, 10) == "←"
    assert descent_arrow(0.0, 1.0, lim, lim, 10, 10) == "↓"
    assert descent_arrow(-1.0, -1.0, lim, lim, 10, 10) == "↗"
    assert descent_arrow(0.0, 0.0, lim, lim, 10, 10) == "·"


def test_decision_boundary_shows_regions_points_and_the_collapsed_map():
    x, y = make_toy2d("xor", 200)
    prob = boundary_grid(lambda p: 1 / (1 + np.exp(-8 * p[:, 0] * p[:, 1])), (-1, 1), (-1, 1),
                         MAP_COLS, MAP_ROWS)
    lines = as_text(render_boundary(prob, (-1, 1), (-1, 1), x, y, accuracy=0.98,
                                    collapsed=(np.array([[1.2, -0.3]]), np.array([0.05]))))
    text = "\n".join(lines)
    top_right = "".join(line[25:44] for line in lines[:3])
    top_left = "".join(line[3:18] for line in lines[:3])
    assert "x" in top_right and "o" not in top_right and "░" in top_right   # class 1 quadrant
    assert "o" in top_left and "x" not in top_left                          # class 0 quadrant
    assert "test accuracy 98.0%" in text and "z = 1.2·x1 - 0.3·x2 + 0.05" in text
    assert "· unsure" in text


def test_linear_map_lines_write_each_output():
    assert linear_map_lines(np.array([[1.0, 2.0], [-0.5, 0.0]]), np.array([0.0, -1.0])) == [
        "z0 = 1·x1 + 2·x2 + 0", "z1 = -0.5·x1 + 0·x2 - 1"]


def test_clipping_panel_shows_both_norms_and_the_clipped_share():
    norms = np.concatenate([np.full(100, 0.5), np.logspace(0, 6, 100)])
    after, share, ratio = clip_summary(norms, 1.0)
    lines = as_text(render_clipping(norms, after, 1.0, share, ratio))
    text = "\n".join(lines)
    before = next(line for line in lines if line.startswith("before"))
    after_line = next(line for line in lines if line.startswith("after"))
    assert "█" in before and "█" not in after_line          # one shared log scale
    clipped = next(line for line in lines if line.startswith("clipped │"))
    assert clipped.count("|") > 10 and "·" in clipped
    assert "clipped 50% of 200 steps" in text and "EXPLODING" in text and "clip 1" in text


def test_clipping_panel_marks_non_finite_norms():
    norms = np.array([1.0, 2.0, np.inf, 3.0])
    after, share, ratio = clip_summary(norms, 0.0)
    text = "\n".join(as_text(render_clipping(norms, after, 0.0, share, ratio)))
    assert "!" in text and "clip off" in text and "clipped 0% of 4 steps" in text


def test_forecast_panel_shows_truth_forecast_errors_and_both_maes():
    t = np.sin(np.arange(365) / 58) * 8 + 15
    f = t + np.where(np.arange(365) % 2, 1.0, -1.0)
    p = t + 2.0
    lines = as_text(render_forecast([f"2015-{i:03d}" for i in range(365)], t, f, p, unit="°C"))
    text = "\n".join(lines)
    assert "•" in text or "*" in text
    assert "2015-000" in text and "2015-364" in text
    assert "MAE model 1  persistence 2  model wins" in text
    model = next(line for line in lines if line.strip().startswith("model│"))
    persist = next(line for line in lines if line.strip().startswith("persist│"))
    assert set(persist.split("│")[1]) == {"█"} and "█" not in model


def test_sparkline_levels():
    assert sparkline([0, 1, 2, float("nan")], 0, 2) == "▁▅█!"
    assert sparkline([1, 10, 100], 1, 100, log=True) == "▁▅█"
