"""Render the Nile dashboard's time-gradient tab after a few hundred steps of an RNN and of an LSTM,
and its Nile tab (accuracy by gap) a little later, as Textual SVG screenshots and (with
rsvg-convert) PNGs: docs/nile-rnn.png, docs/nile-lstm.png, docs/nile-gap-rnn.png, docs/nile-gap-lstm.png.

    python docs/nile_pictures.py [--steps 200] [--gap-steps 500] [--size 120x40] [--out docs]

Real renders: each run trains synchronously at the bundled Nile defaults (only the cell changes);
the LSTM run is pinned first so the RNN picture overlays it on the ratio chart, and vice versa.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from descent.engine.records import Finished, Step
from descent.engine.scenario import load, resolve_name


async def shoot(cell: str, pin_cell: str | None, steps: int, size: tuple[int, int], runs: Path,
                tab: str = "2") -> str:
    from descent.tui.app import make_app

    async def train(screen, pilot, n):
        for rec in screen.session.run(threading.Event(), steps=n):
            if isinstance(rec, (Step, Finished)):
                rec = replace(rec, elapsed=0.0, **({"steps_per_s": 0.0} if isinstance(rec, Step) else {}))
            screen.feed(rec)
        await pilot.pause()

    svg = ""
    for order, c in enumerate([pin_cell, cell] if pin_cell else [cell]):
        app = make_app(load(resolve_name("nile"), overrides=[f"model.layers[1].type={c}"]), runs_dir=runs)
        async with app.run_test(size=size) as pilot:
            while getattr(app.screen, "state", "") != "ready":
                await pilot.pause(0.05)
            screen = app.screen
            if order == 1:
                screen.pinned.extend(pins)
            await train(screen, pilot, steps)
            if order == 0 and pin_cell:
                pins = [screen.history.pin(f"{c} {steps} steps")]
                continue
            await pilot.press(tab)
            screen.redraw(force=True)
            await app.workers.wait_for_complete()              # the Nile tab's predictions come from a worker
            await pilot.pause(0.2)
            svg = app.export_screenshot(title=f"descent: Nile, {c}, {steps} steps")
    return svg


def main() -> None:
    os.environ.setdefault("COLORTERM", "truecolor")              # the colour ramp, as a modern terminal shows it
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--gap-steps", type=int, default=500, help="steps before the accuracy-by-gap pictures")
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as runs:
        shots = [(f"nile-{cell}", cell, other, args.steps, "2") for cell, other in (("rnn", "lstm"), ("lstm", "rnn"))]
        shots += [(f"nile-gap-{cell}", cell, None, args.gap_steps, "3") for cell in ("rnn", "lstm")]
        for name, cell, other, steps, tab in shots:
            svg = asyncio.run(shoot(cell, other, steps, (w, h), Path(runs), tab))
            base = args.out / name if args.size == "120x40" else args.out / f"{name}-{args.size}"
            base.with_suffix(".svg").write_text(svg, encoding="utf-8")
            if shutil.which("rsvg-convert"):
                subprocess.run(["rsvg-convert", "-o", str(base.with_suffix(".png")), str(base.with_suffix(".svg"))],
                               check=True)
                base.with_suffix(".svg").unlink()
            print(base.with_suffix(".png"))


if __name__ == "__main__":
    main()
