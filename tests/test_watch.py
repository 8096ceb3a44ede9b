"""`descent watch` on local run folders: the tail logic (engine.tail), the --once snapshot and its
errors, and the watch view through Textual's Pilot while a folder is being appended to.
Over ssh: tests/test_watch_ssh.py."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from descent.engine import control
from descent.engine.records import Evaluation, Finished, KnobChanged, Step, Stopped, to_json
from descent.engine.remote import parse_target, remote_path
from descent.engine.tail import CHUNK, LocalTransport, Tailer, WatchedRun, WatchError, record_of

ROOT = Path(__file__).resolve().parents[1]
DIGITS = Path(__file__).parent / "data" / "tui_digits.toml"


def step(n: int, loss: float = 1.0, **extra) -> Step:
    fields = dict(step=n, epoch=n / 100, loss=loss, lr=0.01, grad_norm=1.0, param_norm=2.0,
                  grad_norms={"0.weight": 0.5}, update_ratios={"0.weight": 1e-3}, time_grad_norms=None,
                  steps_per_s=250.0, elapsed=n / 250)
    return Step(**{**fields, **extra})


def line(record) -> str:
    return json.dumps(to_json(record)) + "\n"


def run_folder(path: Path, records=(), scenario: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if scenario:
        from descent.engine.scenario import dumps, load

        (path / "scenario.toml").write_text(dumps(load(DIGITS)))
    (path / "metrics.jsonl").write_text("".join(line(r) for r in records))
    return path


def append(path: Path, text: str) -> None:
    with open(path / "metrics.jsonl", "a") as f:
        f.write(text)


# ---- the tailer ---------------------------------------------------------------------------------
def test_tailer_reads_only_new_lines_and_holds_a_partial_one(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("a\nb\nc")
    t = Tailer(LocalTransport(tmp_path))
    assert t.poll() == (False, ["a", "b"])
    assert t.poll() == (False, [])                       # "c" still has no newline
    append(tmp_path, "c continued\n\nd\n")
    assert t.poll() == (False, ["cc continued", "d"])     # the blank line is skipped
    assert t.offset == (tmp_path / "metrics.jsonl").stat().st_size


def test_tailer_starts_over_when_the_file_is_truncated(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("one\ntwo\nthree\n")
    t = Tailer(LocalTransport(tmp_path))
    assert t.poll()[1] == ["one", "two", "three"]
    with open(tmp_path / "metrics.jsonl", "w") as f:     # same inode, shorter: `run --force`
        f.write("new\n")
    assert t.poll() == (True, ["new"])
    assert t.poll() == (False, [])


def test_tailer_starts_over_when_the_file_is_replaced(tmp_path):
    """A resume rewrites metrics.jsonl atomically (a new inode), possibly longer than before."""
    (tmp_path / "metrics.jsonl").write_text("one\n")
    t = Tailer(LocalTransport(tmp_path))
    assert t.poll()[1] == ["one"]
    (tmp_path / "new").write_text("uno\ndos\ntres\n")
    os.replace(tmp_path / "new", tmp_path / "metrics.jsonl")
    assert t.poll() == (True, ["uno", "dos", "tres"])


def test_tailer_waits_for_a_file_not_written_yet_and_notices_one_removed(tmp_path):
    t = Tailer(LocalTransport(tmp_path))
    assert t.poll() == (False, [])
    (tmp_path / "metrics.jsonl").write_text("x\n")
    assert t.poll() == (False, ["x"])
    (tmp_path / "metrics.jsonl").unlink()
    assert t.poll() == (True, [])
    (tmp_path / "metrics.jsonl").write_text("y\n")
    assert t.poll() == (False, ["y"])


def test_tailer_reads_a_big_file_in_slices(tmp_path):
    row = "x" * 999 + "\n"
    n = CHUNK // len(row) * 2 + 3
    (tmp_path / "metrics.jsonl").write_text(row * n)
    t = Tailer(LocalTransport(tmp_path))
    got = 0
    while True:
        got += len(t.poll()[1])
        if t.last_read < CHUNK:
            break
    assert got == n


def test_several_runs_are_followed_independently(tmp_path):
    a = WatchedRun(LocalTransport(run_folder(tmp_path / "a", [step(10)])))
    b = WatchedRun(LocalTransport(run_folder(tmp_path / "b", [step(10), step(20)])))
    for r in (a, b):
        r.open()
        r.poll()
    append(tmp_path / "a", line(step(20)) + line(step(30)))
    assert [s.step for s in a.poll()[1]] == [20, 30]
    assert b.poll() == (False, [])
    assert (a.last_step.step, b.last_step.step) == (30, 20)


# ---- records and state ----------------------------------------------------------------------------
def test_lines_become_the_sessions_records():
    records = [step(5), Evaluation(5, 0.05, "test", {"accuracy": 0.5}), KnobChanged(6, "training.lr", 0.1),
               Stopped(7), Finished(8, 1.0, {"status": "finished"})]
    assert [record_of(line(r)) for r in records] == records
    assert record_of('{"kind": "step", "step": 1}') is None           # fields missing
    assert record_of('{"kind": "from_the_future", "step": 1}') is None
    assert record_of('{"kind": "step", "st') is None                   # torn by a kill
    assert record_of(json.dumps({**to_json(step(1)), "new_field": 1})) == step(1)


def test_state_follows_the_newest_records(tmp_path):
    run = WatchedRun(LocalTransport(run_folder(tmp_path, [])))
    run.open()
    run.poll()
    assert run.state == "starting"
    append(tmp_path, line(step(1)))
    run.poll()
    assert run.state == "running"
    append(tmp_path, line(Stopped(1)))
    run.poll()
    assert run.state == "stopped"
    append(tmp_path, line(step(2)))                     # resumed
    run.poll()
    assert run.state == "running"
    append(tmp_path, line(Finished(2, 1.0, {})))
    run.poll()
    assert run.state == "finished"


def test_control_requests_are_appended_in_the_shared_format(tmp_path):
    run = WatchedRun(LocalTransport(run_folder(tmp_path, [step(1)])))
    run.open()
    ids = [run.request("set", "training.lr", 0.05), run.request("pause"), run.request("checkpoint")]
    sent = [json.loads(x) for x in (tmp_path / control.FILE).read_text().splitlines()]
    assert [r["id"] for r in sent] == ids
    assert [(r["op"], r.get("key"), r.get("value")) for r in sent] == [
        ("set", "training.lr", 0.05), ("pause", None, None), ("checkpoint", None, None)]
    assert (tmp_path / "metrics.jsonl").read_text() == line(step(1))      # run data untouched


def test_targets_tell_hosts_from_local_paths(tmp_path):
    assert parse_target("gpu:runs/a") == ("gpu", "runs/a")
    assert parse_target("me@gpu.lab:/srv/runs/a") == ("me@gpu.lab", "/srv/runs/a")
    assert parse_target("gpu:") == ("gpu", ".")
    assert parse_target("./runs/a:b") is None and parse_target("/abs/x:y") is None
    odd = tmp_path / "host:name"
    odd.mkdir()
    os.chdir(tmp_path)
    assert parse_target("host:name") is None          # an existing local folder wins
    assert remote_path("~/runs/a b") == "\"$HOME\"/'runs/a b'"
    assert remote_path("/srv/x;rm") == "'/srv/x;rm'"


# ---- the command line ------------------------------------------------------------------------------
def descent(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "descent.tui.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_once_prints_a_snapshot_of_each_run(tmp_path):
    a = run_folder(tmp_path / "a", [step(10, 0.9), KnobChanged(11, "training.lr", 0.05), step(20, 0.5),
                                    Evaluation(20, 0.2, "test", {"accuracy": 0.75, "loss": 0.6})])
    append(a, '{"kind": "step", "step": 30, "epo')           # being written right now
    b = run_folder(tmp_path / "b", [step(5), Finished(5, 0.1, {})])
    p = descent("watch", "--once", a, b)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"{a}: TUI test: 8x8 digits [running]"
    assert lines[1].startswith("  step 20/") and "loss 0.5000" in lines[1] and "250 steps/s" in lines[1]
    assert lines[2] == "  eval at step 20 (test): accuracy 0.7500  loss 0.6000"
    assert lines[3] == "  knob training.lr = 0.05 from step 11"
    assert lines[4] == f"{b}: TUI test: 8x8 digits [finished]"


def test_a_run_resumed_past_its_budget_shows_the_grown_one(tmp_path):
    """`descent resume RUN --steps N` past the scenario's steps: watch said "step 70/50"."""
    run = tmp_path / "r"
    assert descent("run", "digits8x8", "--steps", 20, "--out", run).returncode == 0
    assert descent("resume", run, "--steps", 10).returncode == 0
    p = descent("watch", "--once", run)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[1].startswith("  step 30/30  "), p.stdout
    assert WatchedRun(LocalTransport(run)).total_steps() == 30


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent", "no such run folder"),
    (lambda d: d, "not a run folder (no scenario.toml or metrics.jsonl in it)"),
    (lambda d: (d / "f.txt").write_text("x") and d / "f.txt", "is a file, not a run folder"),
])
def test_bad_folders_are_one_line_exit_2(tmp_path, make, message):
    target = make(tmp_path)
    p = descent("watch", "--once", target)
    assert (p.returncode, p.stderr) == (2, f"descent: {target}: {message}\n")
    p = descent("watch", target)                           # the view fails before it opens, the same way
    assert (p.returncode, p.stderr) == (2, f"descent: {target}: {message}\n")


def test_watch_imports_no_textual_for_once(tmp_path):
    run_folder(tmp_path / "r", [step(1)])
    code = ("import sys; from descent.tui.cli import main; main(['watch', '--once', sys.argv[1]]); "
            "print(sorted(m for m in ('textual', 'numpy', 'numba', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"


# ---- the watch view -----------------------------------------------------------------------------------
def sync(test):
    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))
    return run


async def until(pilot, condition, what: str, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def requests(folder: Path) -> list[tuple]:
    path = folder / control.FILE
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    return [(r["op"], r.get("key"), r.get("value")) for r in rows]


@sync
async def test_watch_view_follows_a_folder_and_steers_it(tmp_path):
    from textual.widgets import Input

    from descent.tui.app.watch import make_watch_app
    from descent.tui.app.watch_screen import WatchScreen
    from descent.tui.cli.watch import open_runs

    main = run_folder(tmp_path / "main", [step(10, 2.0), step(20, 1.5)])
    other = run_folder(tmp_path / "other", [step(10, 2.5)])
    app = make_watch_app(open_runs([str(main), str(other)]))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, WatchScreen)
        await until(pilot, lambda: screen.status.info.step == 20, "the first records")
        assert screen.state == "running" and len(screen.history.loss) == 2
        await until(pilot, lambda: [p.label for p in screen.pinned] == ["other"], "the overlay")

        append(main, line(step(30, 1.2))[:25])                      # a partial line is held back ...
        append(other, line(step(20, 2.0)))
        await until(pilot, lambda: len(screen.pinned[0].loss[0]) == 2, "the overlay's new point")
        assert screen.status.info.step == 20
        append(main, line(step(30, 1.2))[25:])                      # ... until its newline comes
        await until(pilot, lambda: screen.status.info.step == 30, "step 30")

        await pilot.press("space")
        await until(pilot, lambda: requests(main) == [("pause", None, None)], "the pause request")
        await pilot.press("space", "s")
        await until(pilot, lambda: len(requests(main)) == 3, "resume and checkpoint")
        assert requests(main)[1:] == [("resume", None, None), ("checkpoint", None, None)]

        await pilot.press("k")                                      # the learning rate's field
        field = app.focused
        assert isinstance(field, Input) and field.id == "knob-training-lr"
        field.value = ""
        await pilot.press(*"0.05", "enter", "escape")
        await until(pilot, lambda: len(requests(main)) == 4, "the knob request")
        assert requests(main)[3] == ("set", "training.lr", 0.05)
        row = screen.query_one("#knobs").row("training.lr")
        assert "asked" in str(row.query_one(".knob-note").render())

        append(main, line(KnobChanged(31, "training.lr", 0.05)) + line(step(40, 1.0)))
        await until(pilot, lambda: "since step 31" in str(row.query_one(".knob-note").render()),
                    "the change taken effect")
        assert screen.history.marker_list() == [(31, "lr=0.05")]

        await pilot.press("x", "y")                                 # stop, confirmed
        await until(pilot, lambda: len(requests(main)) == 5, "the stop request")
        assert requests(main)[4] == ("stop", None, None)

        (main / "metrics.jsonl").write_text(line(step(5, 3.0)))    # a new run in the folder
        await until(pilot, lambda: screen.status.info.step == 5 and len(screen.history.loss) == 1,
                    "the curves to start over")
        append(main, line(Finished(5, 1.0, {})))
        await until(pilot, lambda: screen.state == "finished", "finished")
        await pilot.press("space")                                  # nothing to steer any more
        await pilot.pause(0.2)
        assert len(requests(main)) == 5
        await pilot.press("q")
    assert app.return_code == 0
    assert sorted(p.name for p in other.iterdir()) == ["metrics.jsonl", "scenario.toml"]   # no writes


@sync
async def test_watch_view_of_a_folder_without_a_scenario(tmp_path):
    """Metrics written by something else than a descent session: no knobs, the charts still work."""
    from descent.tui.app.watch import make_watch_app
    from descent.tui.cli.watch import open_runs

    folder = run_folder(tmp_path / "m", [step(1), step(2, time_grad_norms={"1": [0.1, 0.2, 0.4]})],
                        scenario=False)
    app = make_watch_app(open_runs([str(folder)]))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.status.info.step == 2, "the records")
        assert app.screen.query("#tab-time")                        # a stand-in shows the time tab
        assert app.screen.history.heat_rows(5) == [(2, {"1": [0.1, 0.2, 0.4]})]
        assert not app.screen.query("KnobRow")
        await pilot.press("ctrl+c")
    assert app.return_code == 130


def test_a_bad_ssh_option_list_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DESCENT_SSH_OPTIONS", "-p '2222")
    from descent.tui.cli.watch import open_runs

    with pytest.raises(WatchError, match="DESCENT_SSH_OPTIONS"):
        open_runs(["gpu:runs/a"])


@sync
async def test_space_on_a_stopped_run_asks_it_to_resume(tmp_path):
    from descent.tui.app.watch import make_watch_app
    from descent.tui.cli.watch import open_runs

    folder = run_folder(tmp_path / "s", [step(10), Stopped(10)])
    app = make_watch_app(open_runs([str(folder)]))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.screen.state == "stopped", "the stopped state")
        await pilot.press("space")
        await until(pilot, lambda: requests(folder) == [("resume", None, None)], "the resume request")
        await pilot.press("q")


@sync
async def test_help_lists_watchs_own_keys(tmp_path):
    from descent.tui.app.watch import WatchHelp, make_watch_app
    from descent.tui.cli.watch import open_runs

    folder = run_folder(tmp_path / "h", [step(10)])
    app = make_watch_app(open_runs([str(folder)]))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.screen.status.info.step == 10, "the records")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, WatchHelp), "the help")
        text = str(app.screen.query_one("Static").render())
        assert "ask the run to pause" in text and "ask for a checkpoint now" in text
        for dashboard_only in ("train one step", "open a checkpoint", "export metrics", "scenario picker",
                               "slower / faster"):
            assert dashboard_only not in text
        await pilot.press("escape", "q")


@sync
async def test_a_focused_knob_field_shows_the_value_a_remote_set_gave_the_run(tmp_path):
    """After enter the field keeps the focus; when the run then applies another value (sent by
    `descent control`, another watcher), the field shows the run's value. A field holding an
    unsent edit keeps it."""
    from descent.tui.app.watch import make_watch_app
    from descent.tui.cli.watch import open_runs

    main = run_folder(tmp_path / "k", [step(10), step(20)])
    app = make_watch_app(open_runs([str(main)]))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.status.info.step == 20, "the records")
        row = screen.query_one("#knobs").row("training.lr")
        note = row.query_one(".knob-note")
        await pilot.press("k")
        field = app.focused
        field.value = ""
        await pilot.press(*"0.3", "enter")
        await until(pilot, lambda: len(requests(main)) == 1, "the knob request")
        append(main, line(KnobChanged(21, "training.lr", 0.3)) + line(step(30)))
        await until(pilot, lambda: "since step 21" in str(note.render()), "the change taken effect")
        append(main, line(KnobChanged(31, "training.lr", 0.01)) + line(step(40)))    # set from elsewhere
        await until(pilot, lambda: "since step 31" in str(note.render()), "the remote set")
        assert field.has_focus and field.value == "0.01"
        field.value = "0.7"                                          # typed, not sent
        append(main, line(KnobChanged(41, "training.lr", 0.02)) + line(step(50)))
        await until(pilot, lambda: "since step 41" in str(note.render()), "another remote set")
        assert field.value == "0.7"
        await pilot.press("escape", "q")


MONITOR_SCENARIO = """\
[scenario]
name = "Remember"
description = "Remember, a PyTorch model trained by its own script, recorded by descent.Monitor"

[monitor]
model = "Remember"
every = 10
recurrent = ["lstm"]
"""


@sync
async def test_a_monitor_runs_time_tab_has_no_gate_chart(tmp_path):
    """A Monitor run records no gates: no "gates: after an evaluation" promise, the ratio chart
    has the column, and g says why nothing swaps in."""
    from descent.tui.app.timegrads import GateChart, RatioChart, TimeCharts
    from descent.tui.app.watch import make_watch_app
    from descent.tui.cli.watch import open_runs

    folder = run_folder(tmp_path / "m", [step(10, time_grad_norms={"lstm": [0.1, 0.2, 0.4]},
                                              time_grad_ratio={"lstm": [1.0, 0.5, 0.2]})], scenario=False)
    (folder / "scenario.toml").write_text(MONITOR_SCENARIO)
    app = make_watch_app(open_runs([str(folder)]))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.status.info.step == 10, "the records")
        await pilot.press("2")
        await pilot.pause(0.3)
        assert app.screen.query_one(TimeCharts).has_class("-no-gates")
        assert app.screen.query_one(GateChart).region.area == 0
        assert app.screen.query_one(RatioChart).region.area > 0
        assert "g gates" not in app.screen.query_one(RatioChart).heading
        assert "‖dL/dx‖" in app.screen.query_one(RatioChart).heading     # torch measured the input's gradient
        knobs_text = " ".join(str(w.render()) for w in app.screen.query("#knobs Static"))
        assert "Monitor run trains in your own loop" in knobs_text and "[[knobs]]" not in knobs_text
        await pilot.press("g")
        await pilot.pause(0.2)
        assert app.screen.query_one(RatioChart).region.area > 0
        await pilot.press("q")
