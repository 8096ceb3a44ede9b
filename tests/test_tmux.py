"""Once, the real thing: `descent tui nile` in a tmux terminal, keys sent, the screen read back."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def descent_command() -> list[str]:
    """The installed console script beside this Python, else `python -m tui.cli`."""
    script = Path(sys.executable).parent / "descent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "descent.tui.cli"]


class Tmux:
    def __init__(self, name: str, cwd: Path, env: dict):
        self.name, self.cwd, self.env = name, cwd, env

    def run(self, *args: str) -> str:
        """A tmux command on a server of our own (-L), so no running tmux or its settings matter."""
        return subprocess.run(["tmux", "-L", self.name, *args], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=20).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(pattern, self.screen())
            if m:
                return m
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} on the screen after {timeout:.0f} s:\n{self.screen()}")


def status(screen: str) -> tuple[int, str] | None:
    """(step, loss) from the status line, when it shows both."""
    m = re.search(r"step ([\d,]+)/[\d,]+.*?loss ([\d.e+-]+)", screen)
    return (int(m.group(1).replace(",", "")), m.group(2)) if m else None


def test_dashboard_in_tmux(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "DESCENT_RUNS": str(tmp_path / "runs")}
    env.pop("TMUX", None)
    cmd = " ".join(["env", f"PYTHONPATH={ROOT}"] + descent_command()
                   + ["tui", "nile", "--set", "data.gap=8", "--set", "data.min_gap=4", "--set", "data.train_size=500",
                      "--set", "data.test_size=200", "--set", "evaluation.every=20"])
    tmux = Tmux(f"descent-test-{os.getpid()}", tmp_path, env)
    tmux.run("new-session", "-d", "-s", tmux.name, "-x", "120", "-y", "40",
             f"{cmd}; echo DESCENT-EXIT=$?; sleep 60")
    try:
        tmux.wait_for(r"ready", 120)                       # data loaded, kernels compiled
        tmux.keys("space")
        end, first = time.monotonic() + 60, None
        while time.monotonic() < end:                      # the step counter and the loss move
            now = status(tmux.screen())
            if now and now[0] > 0:
                if first is None:
                    first = now
                elif now[0] > first[0] and now[1] != first[1]:
                    break
            time.sleep(0.3)
        else:
            raise AssertionError(f"training did not show progress:\n{tmux.screen()}")
        tmux.keys("2")                                     # the time-gradient tab
        tmux.wait_for(r"words back", 10)
        screen = tmux.wait_for(r"F fact at gap 4 and 8", 10).string
        assert "1e-12" in screen and "this run" in screen, screen     # the log legend, the ratio chart
        tmux.keys("g")                                     # the gates in place of the ratio chart
        tmux.wait_for(r"inside the cell.*g back", 10)
        tmux.wait_for(r"f(orget)? 0?\.\d\d", 30)              # an LSTM's forget gate, its mean
        tmux.keys("q")
        tmux.wait_for(r"keep this run\?", 10)
        tmux.keys("k")
        tmux.wait_for(r"DESCENT-EXIT=0", 30)
    finally:
        tmux.run("kill-server")
    runs = list((tmp_path / "runs").glob("nile-*"))
    assert len(runs) == 1, runs
    assert (runs[0] / "checkpoint.npz").exists() and (runs[0] / "metrics.jsonl").stat().st_size > 0


def seven(size: int) -> list[str]:
    """tmux key names for tests/test_digits.py's keyed 7 (shift+arrows draw)."""
    from tests.test_digits import seven_keys

    names = {"left": "Left", "right": "Right", "up": "Up", "down": "Down", "space": "Space"}
    return [("S-" + names[k[6:]]) if k.startswith("shift+") else names[k] for k in seven_keys(size)]


def test_a_seven_drawn_with_keys_in_tmux(tmp_path):
    """The 8x8 digits trained at full speed, then a 7 drawn on the canvas with the arrow keys:
    the model's first guess, read off the screen, is 7."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "DESCENT_RUNS": str(tmp_path / "runs")}
    env.pop("TMUX", None)
    scenario = ROOT / "tests" / "data" / "tui_digits.toml"
    cmd = " ".join(["env", f"PYTHONPATH={ROOT}"] + descent_command()
                   + ["tui", str(scenario), "--set", "data.standardize=true"])
    tmux = Tmux(f"descent-draw-{os.getpid()}", tmp_path, env)
    tmux.run("new-session", "-d", "-s", tmux.name, "-x", "120", "-y", "40", f"{cmd}; sleep 60")
    try:
        tmux.wait_for(r"ready", 120)
        tmux.keys("space")
        tmux.keys("f")                                     # full speed: the whole budget in seconds
        tmux.wait_for(r"budget of [\d,]+ steps done", 120)
        tmux.keys("2")                                     # the Digits tab
        tmux.keys("d")                                     # the canvas
        tmux.wait_for(r"guesses appear as you", 10)
        tmux.keys(*seven(32))                              # the 8x8 set's canvas is 32 pixels (tui.app.draw)
        tmux.wait_for(r"the model's guesses", 20)
        screen, end = tmux.screen(), time.monotonic() + 20
        while time.monotonic() < end:                      # every key handled: the screen settles
            time.sleep(1.0)
            now, screen = screen, tmux.screen()
            if now == screen:
                break
        first = re.search(r"the model's guesses.*\n.*?\b(\d) █+ +[\d.]+%", screen)
        assert first and first.group(1) == "7", screen
        tmux.keys("Escape")
        tmux.wait_for(r"budget of [\d,]+ steps done", 10)
    finally:
        tmux.run("kill-server")


def test_a_dropped_terminal_keeps_the_run(tmp_path):
    """Killing the tmux server hangs up the dashboard's terminal (SIGHUP), as a dropped SSH session
    does: the checkpoint, the metrics and a "stopped" summary are saved, the lock is released."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "DESCENT_RUNS": str(tmp_path / "runs")}
    env.pop("TMUX", None)
    scenario = ROOT / "tests" / "data" / "tui_digits.toml"
    cmd = " ".join(["env", f"PYTHONPATH={ROOT}"] + descent_command()
                   + ["tui", str(scenario), "--set", "training.steps=1000000"])
    tmux = Tmux(f"descent-hup-{os.getpid()}", tmp_path, env)
    tmux.run("new-session", "-d", "-s", tmux.name, "-x", "120", "-y", "40", cmd)
    try:
        tmux.wait_for(r"ready", 120)
        tmux.keys("space")
        tmux.wait_for(r"running", 30)
        time.sleep(1)
        pids = tree(int(tmux.run("display-message", "-p", "-t", tmux.name, "#{pane_pid}").strip()))
    finally:
        tmux.run("kill-server")
    end = time.monotonic() + 60
    summaries = []
    while time.monotonic() < end and not summaries:
        summaries = list((tmp_path / "runs").glob("*/summary.json"))
        time.sleep(0.3)
    assert len(summaries) == 1, list((tmp_path / "runs").rglob("*"))
    run = summaries[0].parent
    deadline = time.monotonic() + 30
    while (run / ".descent.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert json.loads(summaries[0].read_text())["status"] == "stopped"
    assert (run / "checkpoint.npz").exists() and not (run / ".descent.lock").exists()
    deadline = time.monotonic() + 30          # and the process ends: no dashboard left behind
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.3)
    assert not any(alive(p) for p in pids), f"still running after the hang-up: {[p for p in pids if alive(p)]}"


def tree(pid: int) -> list[int]:
    """pid and its descendants (the pane's shell may or may not exec the dashboard)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            todo += [int(c) for c in task.read_text().split()]
    return out


def alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False
