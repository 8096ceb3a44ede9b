"""control.jsonl: the reader (offsets, partial, malformed and repeated lines), the `set` check,
and a session acting on requests in-process and inside the dashboard. The real processes
(`descent run` steered by `descent control`) are in tests/test_control_cli.py."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from pathlib import Path

import pytest

from descent.engine.control import (FILE, MAX_LINE, Control, ControlReader, Malformed, Request, Steering,
                                    append_request, check_set, parse_line, request_line)
from descent.engine.errors import SpecError
from descent.engine.records import KnobChanged, Step, Stopped
from descent.engine.scenario import load, resolve_name

DATA = Path(__file__).parent / "data"


def add(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


# ---- the reader -------------------------------------------------------------------------------------
def test_reader_starts_at_the_size_it_found(tmp_path):
    f = tmp_path / FILE
    old = append_request(tmp_path, "stop")
    reader = ControlReader(f)
    assert reader.poll() == []                              # the earlier run's stop is not ours
    new = append_request(tmp_path, "set", "training.lr", 0.1)
    assert reader.poll() == [Request(new, "set", "training.lr", 0.1)]
    assert reader.poll() == []
    everything = ControlReader(f, from_end=False).poll()
    assert [r.id for r in everything] == [old, new]


def test_reader_waits_for_a_partial_line(tmp_path):
    f = tmp_path / FILE
    reader = ControlReader(f)
    line = request_line("pause")
    add(f, line[:10])
    assert reader.poll() == []
    add(f, line[10:-1])
    assert reader.poll() == []
    add(f, "\n")
    assert reader.poll() == [Request(json.loads(line)["id"], "pause")]


def test_reader_reports_malformed_lines_and_reads_on(tmp_path):
    f = tmp_path / FILE
    reader = ControlReader(f)
    add(f, "not json\n")
    add(f, "[1, 2]\n")
    add(f, '{"op": "pause"}\n')
    add(f, '{"id": "a1", "op": "explode"}\n')
    add(f, '{"id": "a2", "op": "set", "key": "training.lr"}\n')
    add(f, "\n")
    with open(f, "ab") as raw:
        raw.write(b"\xff\xfe\n")                         # not UTF-8
    add(f, request_line("resume"))
    found = reader.poll()
    assert [type(x) for x in found] == [Malformed] * 6 + [Request]
    assert "not a JSON line" in found[0].reason and "not a JSON object" in found[1].reason
    assert found[2].reason == "no id"
    assert found[3].id == "a1" and "unknown op 'explode'" in found[3].reason
    assert found[4].id == "a2" and "needs a key and a value" in found[4].reason
    assert found[6].op == "resume"


def test_reader_applies_each_id_once(tmp_path):
    f = tmp_path / FILE
    reader = ControlReader(f)
    line = request_line("checkpoint")
    add(f, line + line)                    # a watcher that retried after a dropped connection
    assert len(reader.poll()) == 1
    add(f, line)
    assert reader.poll() == []


def test_reader_starts_over_on_a_truncated_or_replaced_file(tmp_path):
    f = tmp_path / FILE
    reader = ControlReader(f)
    first = append_request(tmp_path, "pause")
    second = append_request(tmp_path, "resume")
    assert [r.id for r in reader.poll()] == [first, second]
    f.write_text(request_line("stop"))                     # truncated, then shorter than the offset
    assert [r.op for r in reader.poll()] == ["stop"]
    other = tmp_path / "other.jsonl"
    other.write_text("".join(request_line("pause") for _ in range(3)) + json.dumps({"id": first, "op": "pause"}) + "\n")
    os.replace(other, f)                                   # another inode, longer than the offset
    found = reader.poll()
    assert [r.op for r in found] == ["pause"] * 3           # `first` was acted on already
    f.unlink()
    assert reader.poll() == []
    third = append_request(tmp_path, "checkpoint")          # a new file is read from its start
    assert [r.id for r in reader.poll()] == [third]


def test_reader_drops_an_endless_line(tmp_path):
    f = tmp_path / FILE
    reader = ControlReader(f)
    add(f, "x" * (MAX_LINE + 1))
    found = reader.poll()
    assert len(found) == 1 and "without a newline" in found[0].reason
    add(f, "tail of the garbage\n" + request_line("pause"))
    ops = [getattr(x, "op", None) for x in reader.poll()]
    assert ops == [None, "pause"]                          # the garbage's end is malformed, then on


def test_request_line_round_trips():
    for op, key, value in (("set", "training.lr", 0.01), ("pause", None, None), ("stop", None, None)):
        item = parse_line(request_line(op, key, value).encode())
        assert isinstance(item, Request) and (item.op, item.key, item.value) == (op, key, value)
    with pytest.raises(ValueError):
        request_line("set")


# ---- the `set` check --------------------------------------------------------------------------------
def test_check_set_follows_the_live_knob_rules():
    sc = load(resolve_name("neuron"))
    assert check_set(sc, "training.lr", 1) == ("training.lr", 1.0)
    assert check_set(sc, "training.batch_size", 64) == ("training.batch_size", 64)
    cases = {("training.optimizer", "adam"): "applies only on reset",
             ("data.x_range", "0..9"): "applies only on reset",
             ("training.lrr", 0.1): "did you mean 'lr'",
             ("training.lr", -1): "must be > 0",
             ("training.lr", "fast"): "expected a number",
             ("training.", 1): "not a key like"}
    for (key, value), text in cases.items():
        with pytest.raises(SpecError) as err:
            check_set(sc, key, value)
        assert text in str(err.value) and "\n" not in str(err.value)
        assert "neuron.toml" not in str(err.value)          # the reason, not where the file is


# ---- a session acting on requests ---------------------------------------------------------------------
def neuron_session(out: Path, steps: int = 10_000):
    from descent.engine.session import Session

    sc = load(resolve_name("neuron"), overrides=[f"training.steps={steps}", "evaluation.every=100000"])
    session = Session(sc, out_dir=out)
    list(session.prepare())
    return session


def test_session_acts_on_requests_and_records_each(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    append_request(out, "stop")                             # stale: before the session opened the folder
    session = neuron_session(out)
    try:
        lr_id = append_request(out, "set", "training.lr", 0.1)
        bad_id = append_request(out, "set", "training.optimizer", "adam")
        add(out / FILE, "garbage\n")
        seen, sent = [], {}
        for rec in session.run(steps=50):
            seen.append(rec)
            if isinstance(rec, Step) and rec.step == 10 and not sent:
                sent["ck"] = append_request(out, "checkpoint")
                sent["stop"] = append_request(out, "stop")
                session.steering.next_poll = 0.0             # read now, not in up to POLL_SECONDS
    finally:
        session.close()
    controls = [r for r in seen if isinstance(r, Control)]
    assert [(c.id, c.op, c.ok) for c in controls[:3]] == [(lr_id, "set", True), (bad_id, "set", False),
                                                          (None, None, False)]
    assert "applies only on reset" in controls[1].message and "malformed" in controls[2].message
    assert controls[0].step == 0
    knobs = [r for r in seen if isinstance(r, KnobChanged)]
    assert knobs == [KnobChanged(0, "training.lr", 0.1)]
    steps = [r for r in seen if isinstance(r, Step)]
    assert steps[0].lr == 0.1 and steps[0].step == 1
    assert [(c.id, c.op, c.ok, c.step) for c in controls[3:]] == [(sent["ck"], "checkpoint", True, 10),
                                                                  (sent["stop"], "stop", True, 10)]
    assert isinstance(seen[-1], Stopped) and seen[-1].step == 10
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if r["kind"] == "control"]
    assert [r["id"] for r in logged] == [lr_id, bad_id, None, sent["ck"], sent["stop"]]
    assert {"kind": "knobchanged", "step": 0, "key": "training.lr", "value": 0.1} in records
    assert json.loads((out / "summary.json").read_text())["status"] == "stopped"


def test_a_paused_session_holds_until_resumed_and_still_stops(tmp_path):
    out = tmp_path / "run"
    session = neuron_session(out, steps=1_000_000)
    got: queue.Queue = queue.Queue()
    stop = threading.Event()

    def consume():
        for rec in session.run(stop):
            got.put(rec)
        got.put(None)

    def next_control(timeout: float = 60.0) -> Control:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rec = got.get(timeout=timeout)
            if isinstance(rec, Control):
                return rec
        raise AssertionError("no control record came")

    worker = threading.Thread(target=consume)
    worker.start()
    try:
        append_request(out, "pause")
        paused = next_control()
        assert paused.op == "pause" and paused.ok
        append_request(out, "set", "training.lr", 0.2)
        assert next_control().step == paused.step           # read while paused: no step in between
        append_request(out, "checkpoint")
        assert next_control().step == paused.step
        append_request(out, "resume")
        assert next_control().message == f"resumed at step {paused.step}"
        after = got.get(timeout=60)
        assert after == KnobChanged(paused.step, "training.lr", 0.2)   # the set applies on resume
        append_request(out, "pause")
        again = next_control()
        assert again.op == "pause" and again.step > paused.step
        stop.set()                                          # Ctrl-C while paused
        rest = []
        while (rec := got.get(timeout=60)) is not None:
            rest.append(rec)
        assert rest == [Stopped(again.step)]
    finally:
        stop.set()
        worker.join(timeout=60)
        session.close()
    assert not worker.is_alive()
    assert json.loads((out / "summary.json").read_text())["status"] == "stopped"


# ---- the dashboard's session honours control.jsonl too -------------------------------------------------
def test_the_dashboard_follows_control_requests(tmp_path, monkeypatch):
    import asyncio

    from test_tui import DIGITS, LONG, app_for, keys, ready, until

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)

    async def drive():
        app = app_for(load(DIGITS, overrides=LONG), tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await ready(pilot)
            out = screen.session.out_dir
            await keys(pilot, "space")
            await until(pilot, lambda: screen.session.step >= 3, 60, "training to start")
            append_request(out, "set", "training.lr", 0.0005)
            await until(pilot, lambda: screen.history.markers, 30, "the knob change")
            assert screen.history.markers[0][1] == "lr=0.0005" and screen.session.base_lr == 0.0005
            await until(pilot, lambda: "= 0.0005 since step" in str(screen.query_one(".knob-note").render()), 30,
                        "the knob's note")
            append_request(out, "pause")
            await until(pilot, lambda: screen.session.steering.paused, 30, "the remote pause")
            await keys(pilot, "space")                       # the dashboard's own pause still works
            await until(pilot, lambda: screen.state == "paused", 30, "the pause")
            await keys(pilot, "space")                       # and so does going on
            step = screen.session.step
            await until(pilot, lambda: screen.session.step > step, 60, "training again")
            append_request(out, "stop")                      # in the dashboard, a stop pauses
            await until(pilot, lambda: screen.state == "paused", 30, "the stop")
        return out

    out = asyncio.run(drive())
    kinds = [json.loads(line)["kind"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert kinds.count("control") == 3 and "knobchanged" in kinds


# ---- the headless printers ------------------------------------------------------------------------------
def test_the_progress_bar_says_paused_and_refusals_go_to_stderr(capsys):
    import io

    from rich.console import Console

    from descent.tui.cli.headless import BarPrinter, PlainPrinter

    buf = io.StringIO()
    bar = BarPrinter(Console(file=buf, force_terminal=True, width=120))
    bar.total = 100
    bar.step(Step(7, 0.1, 0.5, 1e-3, 1.0, 1.0, {}, {}, None, 50.0, 0.1), None)
    bar.control(Control(7, "a", "pause", True, "paused at step 7"), "runs/x")
    assert bar.bar.tasks[0].fields["line"] == "paused at step 7"
    bar.clear()
    assert "`descent control runs/x resume` continues" in buf.getvalue()
    plain = PlainPrinter()
    plain.control(Control(7, "b", "set", False, "training.optimizer: applies only on reset"), "runs/x")
    plain.control(Control(7, "c", "checkpoint", True, "checkpoint.npz written at step 7"), "runs/x")
    said = capsys.readouterr()
    assert said.err == "descent: control request refused: training.optimizer: applies only on reset\n"
    assert said.out == "control: checkpoint.npz written at step 7\n"


def test_a_torchrun_session_takes_checkpoint_and_stop_only(tmp_path):
    """Only rank 0 reads control.jsonl: a knob change or a pause there alone would split the
    processes, so they are refused; stop goes through the agreed stop, checkpoint is rank 0's."""
    from types import SimpleNamespace

    steering = Steering(tmp_path)
    session = SimpleNamespace(step=7, world=object(), save=lambda: tmp_path / "checkpoint.npz")
    stop = threading.Event()
    for op, key in (("set", "training.lr"), ("pause", None), ("resume", None)):
        out = steering._act(Request("a" + op, op, key, 0.1 if key else None), session, stop)
        assert not out.ok and "checkpoint and stop only" in out.message
    assert not steering.paused
    assert steering._act(Request("c", "checkpoint"), session, stop).ok
    assert steering._act(Request("s", "stop"), session, stop).ok and stop.is_set()
