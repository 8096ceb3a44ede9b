"""The cost of watching: training throughput with the dashboard open against the same session
training headless, the share of time the UI thread is busy, and how soon the status line shows
a pause after the space key (the longest of the windows; it should stay under 0.1 s). Prints a
table.

    python bench/dashboard.py [SCENARIO] [--windows N] [--seconds S] [--set KEY=VALUE ...]

Alternating windows in one process: the dashboard trains (A), then the same session trains in a
plain thread while the dashboard idles (B, the headless speed); on a shared machine load swings
between windows, so the windows alternate and the figure is sum(A) / sum(B).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from descent.engine.scenario import load, resolve_name  # noqa: E402
from descent.tui.app import make_app  # noqa: E402


async def until(pilot, condition, timeout=120.0):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the dashboard did not get there in time")
        await pilot.pause(0.05)


async def measure(scenario, windows: int, seconds: float, runs_dir: Path):
    from textual import events

    rates = {"dashboard": [], "headless": []}
    ui_share, pause_latency = [], []
    app = make_app(scenario, runs_dir=runs_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: getattr(app.screen, "state", "") == "ready")
        screen = app.screen
        session = screen.session
        session.alarms.check = lambda rec: None          # no alarm may pause a window
        shown = []
        screen.status.show = lambda _show=screen.status.show, **kw: (shown.append(time.perf_counter()), _show(**kw))
        for _ in range(windows):
            app.post_message(events.Key("space", " "))
            await asyncio.sleep(0.3)
            s0, t0, c0 = session.step, time.perf_counter(), time.thread_time()
            await asyncio.sleep(seconds)
            wall = time.perf_counter() - t0
            rates["dashboard"].append((session.step - s0) / wall)
            ui_share.append((time.thread_time() - c0) / wall)
            shown.clear()
            pressed = time.perf_counter()
            app.post_message(events.Key("space", " "))
            await until(pilot, lambda: screen.state in ("pausing", "paused"), 30)
            pause_latency.append(shown[0] - pressed)
            await until(pilot, lambda: screen.state == "paused", 30)
            stop = threading.Event()
            worker = threading.Thread(target=lambda: [None for _ in session.run(stop)])
            worker.start()
            await asyncio.sleep(0.3)
            s0, t0 = session.step, time.perf_counter()
            await asyncio.sleep(seconds)
            rates["headless"].append((session.step - s0) / (time.perf_counter() - t0))
            stop.set()
            worker.join()
    return rates, ui_share, pause_latency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="nile")
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    scenario = load(resolve_name(args.scenario), overrides=args.overrides + ["training.steps=100000000"])
    with tempfile.TemporaryDirectory() as tmp:
        rates, ui, latency = asyncio.run(measure(scenario, args.windows, args.seconds, Path(tmp)))
    a, b = sum(rates["dashboard"]), sum(rates["headless"])
    print("| scenario | dashboard steps/s | headless steps/s | ratio | UI thread busy | pause shown after |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.scenario} {' '.join(args.overrides)} | {a / len(rates['dashboard']):.0f} | "
          f"{b / len(rates['headless']):.0f} | {a / b:.2f} | {100 * sum(ui) / len(ui):.1f}% | {1000 * max(latency):.0f} ms |")


if __name__ == "__main__":
    main()
