"""The time tab's chart column: one chart at a time where two do not fit (80x24), `g` swaps
them; the gate axis zoomed to the data; ratio ticks on distinct rows; ticks in a fixed order."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

from descent.engine.scenario import load
from tests.test_tui_snapshots import DATA, isolated, make, trained  # noqa: F401  (isolated: autouse)


def test_gate_range_zooms_to_the_data():
    from descent.tui.app.timegrads import gate_range

    assert gate_range([0.77, 0.84, 0.9]) == (0.75, 0.95)
    assert gate_range([0.5, 0.51]) == (0.45, 0.55)                  # at least 0.1 wide
    assert gate_range([0.0, 1.0]) == (0.0, 1.0)
    assert gate_range([0.99, 1.0]) == (0.9, 1.0)
    assert gate_range([]) == (0.0, 1.0)


def test_ratio_ticks_land_on_distinct_rows():
    from descent.tui.app.timegrads import decade_ticks

    assert decade_ticks(3)[1] == ["1e-12", "1e-6", "1e0"]
    assert decade_ticks(12)[1] == ["1e-12", "1e-9", "1e-6", "1e-3", "1e0"]
    assert decade_ticks(1)[1] == ["1e-12", "1e0"]


def test_tick_labels_do_not_depend_on_the_hash_seed():
    """Two ticks on one row: the label shown is the same in every process (plotext dedupes
    ticks through a set; tui.app.charts keeps their order)."""
    code = ("import descent.tui.app.charts\n"
            "from textual_plotext.plot import Plot\n"
            "p = Plot(); p.plot([0, 1], [0, 1]); p.ylim(0, 1); p.plotsize(20, 6); p._set_size(20, 6)\n"
            "p.yticks([0, 0.1, 0.2, 0.9], ['aa', 'bb', 'cc', 'dd']); print(p.build())\n")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert len(outs) == 1


def test_80x24_shows_one_chart_and_g_swaps_in_the_gates(tmp_path):
    from descent.tui.app.timegrads import GateChart, RatioChart, TimeCharts

    async def run():
        app = make(load(DATA / "tui_nile.toml", overrides=["model.layers[1].type=lstm"]), tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await trained(50, "2")(pilot)
            screen = app.screen
            column, ratio, gates = screen.query_one(TimeCharts), screen.query_one(RatioChart), screen.query_one(GateChart)
            assert column.has_class("-one") and ratio.display and not gates.display
            assert "g gates" in ratio.plt.build()
            await pilot.press("g")
            await app.workers.wait_for_complete()
            for _ in range(5):
                await pilot.pause(0.05)
            assert gates.display and not ratio.display and gates.size.height >= 8
            built = gates.plt.build()
            assert re.search(r"f \.\d\d .*i \.\d\d .*o \.\d\d", built) and "g back" in built
            await pilot.press("g")
            await pilot.pause(0.1)
            assert ratio.display and not gates.display

    asyncio.run(run())


def test_120x40_shows_both_charts(tmp_path):
    from descent.tui.app.timegrads import GateChart, RatioChart, TimeCharts

    async def run():
        app = make(load(DATA / "tui_nile.toml", overrides=["model.layers[1].type=gru"]), tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await trained(30, "2")(pilot)
            screen = app.screen
            assert not screen.query_one(TimeCharts).has_class("-one")
            assert screen.query_one(RatioChart).display and screen.query_one(GateChart).display
            assert "update 0." in screen.query_one(GateChart).plt.build()

    asyncio.run(run())


def test_heatmap_rows_line_up_in_an_svg_screenshot():
    """Step labels of different widths (990, 1000) and the fact marks: no SVG text run starts with
    a blank before what it draws. rsvg-convert drops such a blank, which drew every row with a
    shorter label, and the marks line, a column or more left of the others."""
    import re

    from rich.console import Console

    from descent.tui.app.timegrads import TimeGradients

    widget = TimeGradients()
    widget.rows = [(step, {"rnn": [1.0, 0.5, 0.1, 1e-4]}) for step in (980, 990, 1000)]
    widget.layout_marks = (1, 2)
    text = widget.render_rows(30, 10, colour=False)
    rows = text.plain.split("\n")
    assert [row.split()[0] for row in rows[1:4]] == ["980", "990", "1000"]
    assert len({len(row) for row in rows[1:4]}) == 1 and rows[1].startswith(" ")    # right-aligned
    console = Console(record=True, width=30, color_system="truecolor", file=open(os.devnull, "w"))
    console.print(text)
    runs = re.findall(r"<text [^>]*>([^<]*)</text>", console.export_svg())
    assert any("990" in r for r in runs) and any("F" in r for r in runs)
    assert not [r for r in runs if r.startswith("&#160;") and r.replace("&#160;", "")]


def test_a_torch_run_names_the_input_gradient(tmp_path):
    """With the torch backend the heatmap and the curve say ||dL/dx|| (what torch's fused layers
    let us measure), and the gate chart says why it stays empty; our engine's runs say ||dL/dh||."""
    from descent.tui.app.timegrads import GateChart, RatioChart, TimeGradients

    from descent.tui.app import make_app

    async def run(backend):
        # as `descent tui --backend torch` does: the scenario file still says numba
        app = make_app(load(DATA / "tui_nile.toml", overrides=["model.layers[1].type=lstm"]),
                       runs_dir=tmp_path / backend / "runs", backend=backend)
        async with app.run_test(size=(120, 40)) as pilot:
            await trained(30, "2")(pilot)
            screen = app.screen
            heat = screen.query_one(TimeGradients).render_rows(100, 20, colour=False).plain
            return heat, screen.query_one(RatioChart).plt.build(), screen.query_one(GateChart).plt.build()

    heat, curve, gates = asyncio.run(run("torch"))
    assert "‖dL/dx‖ ÷ answer's" in heat and "‖dL/dx‖" in curve and "torch backend: no gates" in gates
    heat, curve, gates = asyncio.run(run("numba"))
    assert "‖dL/dh‖ ÷ answer's" in heat and "‖dL/dh‖" in curve and "torch backend" not in gates
