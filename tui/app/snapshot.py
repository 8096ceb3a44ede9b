"""`descent snapshot`: train a scenario for N steps, then write its dashboard as an SVG through
Textual's own screenshot (a headless `run_test`), for docs, bug reports and CI logs.

The dashboard is the one the user gets: its session is prepared by the dashboard's worker, then
trained here step by step through that one Session, each record fed to the screen as the
training worker would route it. The run folder is a temporary one, removed afterwards.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import threading
from pathlib import Path

from descent.engine.errors import DescentError

DEFAULT_STEPS = 200
PREPARE_SECONDS = 600.0          # data loading and kernel compilation, at most


def parse_size(text: str) -> tuple[int, int]:
    """'120x40' -> (120, 40); at least 80x24, the smallest terminal the dashboard is made for."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m:
        raise DescentError(f"--size {text!r}: expected COLUMNSxROWS, e.g. 120x40")
    cols, rows = int(m.group(1)), int(m.group(2))
    if not (80 <= cols <= 400 and 24 <= rows <= 200):
        raise DescentError(f"--size {text}: columns must be 80..400 and rows 24..200")
    return cols, rows


def check_out(out) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".svg":
        raise DescentError(f"--out {out}: the snapshot is an SVG file; name it *.svg")
    if not path.parent.is_dir():
        raise DescentError(f"--out {out}: folder {path.parent} does not exist")
    if path.is_dir():
        raise DescentError(f"--out {out}: is a folder")
    return path


def snapshot(scenario, out, *, steps: int | None = None, view: str | None = None, size=(120, 40),
             data_dir=None, backend=None, seed=None) -> Path:
    """Train `steps` steps (default 200, at most the scenario's budget) and write the dashboard,
    showing the tab `view` (grads, time, panel, ...: the tab ids without "tab-"), to `out`."""
    out = check_out(out)
    steps = DEFAULT_STEPS if steps is None else steps
    if steps < 0:
        raise DescentError(f"--steps {steps}: must be 0 or more")
    with tempfile.TemporaryDirectory(prefix="descent-snapshot-") as runs:
        svg = asyncio.run(_shoot(scenario, steps, view, size, Path(runs), data_dir, backend, seed))
    try:
        out.write_text(svg, encoding="utf-8")
    except OSError as e:
        raise DescentError(f"--out {out}: cannot write ({e.strerror or e})") from None
    return out


async def _shoot(scenario, steps, view, size, runs, data_dir, backend, seed) -> str:
    from textual.widgets import TabbedContent, TabPane

    from descent.tui.app import make_app

    app = make_app(scenario, data_dir=data_dir, backend=backend, seed=seed, runs_dir=runs)
    problem: str | None = None
    svg = ""
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        waited = 0.0
        while screen.state != "ready":
            if screen.state == "error":
                problem = screen.status.info.detail
                break
            if waited > PREPARE_SECONDS:
                problem = f"still preparing after {PREPARE_SECONDS:.0f} s"
                break
            await pilot.pause(0.05)
            waited += 0.05
        tabs = screen.query_one(TabbedContent)
        panes = [pane.id.removeprefix("tab-") for pane in tabs.query(TabPane)]
        if problem is None and view is not None and view not in panes:
            problem = f"--view {view}: this dashboard has the views {', '.join(panes)}"
        if problem is None:
            session = screen.session
            for record in session.run(threading.Event(), steps=steps):
                screen.feed(record)
                if session.step % 50 == 0:
                    await pilot.pause()          # let the screen take in what was fed so far
            await pilot.pause()
            if view is not None:
                tabs.active = f"tab-{view}"
                await pilot.pause()
            screen.redraw(force=True)
            await app.workers.wait_for_complete()     # the panel's predictions come from a worker
            await pilot.pause()
            app.clear_notifications()
            await pilot.pause()
            svg = app.export_screenshot(title=f"descent · {scenario.name} · step {session.step:,}")
        await app.workers.wait_for_complete()
        if screen.session is not None:
            screen.session.close()
    if problem is not None:
        raise DescentError(problem)
    return svg
