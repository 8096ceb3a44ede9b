"""Issue 9: the run-folder lock, crash reports, OS-error messages and load-time checks
(engine/runlock.py, crashlog.py, ioerrors.py, checks.py), each on its own."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from descent.engine import checks, crashlog, ioerrors, runlock
from descent.engine.errors import DescentError, SpecError

BROKEN = Path(__file__).resolve().parent / "data" / "broken"
EXPECT = tomllib.loads((BROKEN / "EXPECT.toml").read_text(encoding="utf-8"))


# ---- runlock --------------------------------------------------------------------------------
def test_lock_is_exclusive_names_folder_and_pid_and_is_released(tmp_path):
    run = tmp_path / "run"
    with runlock.acquire(run) as lock:
        assert (run / runlock.LOCK_NAME).exists() and lock.info.pid == os.getpid()
        with pytest.raises(runlock.RunLocked) as e:
            runlock.acquire(run)
        assert isinstance(e.value, DescentError) and e.value.exit_code == 2
        line = str(e.value)
        assert str(run) in line and f"pid {os.getpid()}" in line and "\n" not in line
    assert not (run / runlock.LOCK_NAME).exists()
    runlock.acquire(run).release()


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with runlock.acquire(tmp_path):
            1 / 0
    assert not (tmp_path / runlock.LOCK_NAME).exists()


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def plant(folder: Path, pid: int, host: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runlock.LOCK_NAME).write_text(json.dumps(
        {"pid": pid, "host": host or socket.gethostname(), "started": 1.0}))


def test_a_lock_whose_process_died_is_taken_over(tmp_path):
    plant(tmp_path, dead_pid())
    with runlock.acquire(tmp_path) as lock:
        assert runlock.read_lock(tmp_path) == lock.info
    assert list(tmp_path.iterdir()) == []     # no stale lock left aside


def test_a_live_lock_and_a_lock_from_another_host_are_kept(tmp_path):
    plant(tmp_path / "a", os.getppid())
    plant(tmp_path / "b", dead_pid(), host="elsewhere.invalid")
    for name in ("a", "b"):
        with pytest.raises(runlock.RunLocked):
            runlock.acquire(tmp_path / name)
        assert (tmp_path / name / runlock.LOCK_NAME).exists()


def test_release_leaves_a_lock_taken_over_by_another_run(tmp_path):
    lock = runlock.acquire(tmp_path)
    plant(tmp_path, os.getppid())            # as if another run had found ours stale
    lock.release()
    assert runlock.read_lock(tmp_path).pid == os.getppid()


def test_holds_run_and_refuse_existing_run(tmp_path):
    assert not runlock.holds_run(tmp_path / "missing") and not runlock.holds_run(tmp_path)
    runlock.refuse_existing_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    assert runlock.holds_run(tmp_path)
    with pytest.raises(runlock.RunExists) as e:
        runlock.refuse_existing_run(tmp_path)
    assert str(tmp_path) in str(e.value) and "descent resume" in str(e.value) and e.value.exit_code == 2
    runlock.refuse_existing_run(tmp_path, force=True)


# ---- crashlog -------------------------------------------------------------------------------
def test_crash_report_goes_to_xdg_state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    try:
        raise ValueError("boom")
    except ValueError as e:
        path = crashlog.crash_report(e)
    assert path.parent == tmp_path / "state" / "descent"
    text = path.read_text()
    assert "ValueError: boom" in text and "Traceback" in text
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_a_relative_xdg_state_home_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert crashlog.state_dir() == tmp_path / ".local" / "state" / "descent"


def test_crash_report_never_follows_a_planted_symlink(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(crashlog.time, "strftime", lambda fmt, *a: "20260101-000000")
    for n in ("", "-1", "-2"):     # every name the report would try first points at the victim
        (run / f"crash-20260101-000000-{os.getpid()}{n}.txt").symlink_to(victim)
    path = crashlog.write_crash_report("traceback text", run)
    assert victim.read_text() == "precious"
    assert path.parent == run and not path.is_symlink() and path.read_text() == "traceback text"


def test_crash_report_refuses_a_run_folder_that_is_a_symlink(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "run").symlink_to(elsewhere)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = crashlog.write_crash_report("x", tmp_path / "run")
    assert path.parent == tmp_path / "state" / "descent" and list(elsewhere.iterdir()) == []


def test_two_reports_in_one_second_get_two_files(tmp_path):
    a = crashlog.write_crash_report("a", tmp_path)
    b = crashlog.write_crash_report("b", tmp_path)
    assert a != b and a.read_text() == "a" and b.read_text() == "b"


# ---- ioerrors -------------------------------------------------------------------------------
def test_io_guard_names_path_and_os_error(tmp_path):
    target = tmp_path / "runs" / "x" / "checkpoint.npz"
    with pytest.raises(ioerrors.IOFailure) as e:
        with ioerrors.io_guard(target, "write"):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
    assert str(e.value) == f"cannot write {target}: {os.strerror(errno.ENOSPC)}"
    assert e.value.exit_code == 2 and e.value.errno == errno.ENOSPC


def test_a_path_under_a_file_names_the_file(tmp_path):
    (tmp_path / "plain").write_text("")
    target = tmp_path / "plain" / "run" / "metrics.jsonl"
    with pytest.raises(ioerrors.IOFailure) as e:
        with ioerrors.io_guard(target):
            target.parent.mkdir(parents=True)
    line = str(e.value)
    assert str(target) in line and os.strerror(errno.ENOTDIR) in line and f"{tmp_path / 'plain'} is a file" in line


def test_io_guard_lets_other_errors_and_closed_pipes_through(tmp_path):
    with pytest.raises(BrokenPipeError):
        with ioerrors.io_guard(tmp_path):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
    with pytest.raises(KeyError):
        with ioerrors.io_guard(tmp_path):
            raise KeyError("x")


# ---- checks: output against task and loss ---------------------------------------------------
@pytest.mark.parametrize("shape, task, classes, loss, key", [
    ((1,), "classification", 3, "auto", "model.layers[2].units"),
    ((1,), "classification", 3, "bce", "training.loss"),
    ((3,), "classification", 3, "mse", "training.loss"),
    ((5,), "classification", 3, "auto", "model.layers[2].units"),
    ((1,), "classification", 3, "cross_entropy", "model.layers[2].units"),
    ((2,), "classification", 2, "bce", "model.layers[2].units"),
    ((8, 6, 6), "classification", 10, "auto", "model.layers[2]"),
    ((2,), "regression", 0, "auto", "model.layers[2].units"),
    ((1,), "regression", 0, "cross_entropy", "training.loss"),
    ((1,), "regression", 0, "bce", "training.loss"),
])
def test_output_that_does_not_fit_names_the_key(shape, task, classes, loss, key):
    with pytest.raises(SpecError) as e:
        checks.check_output_fits(shape, task, classes, loss, "model.layers[2]", file="x.toml")
    assert e.value.key == key and str(e.value).startswith("x.toml: ")


@pytest.mark.parametrize("shape, task, classes, loss, used", [
    ((3,), "classification", 3, "auto", "cross_entropy"),
    ((1,), "classification", 2, "auto", "bce"),
    ((2,), "classification", 2, "cross_entropy", "cross_entropy"),
    ((1,), "regression", 0, "auto", "mse"),
])
def test_output_that_fits_gives_the_loss(shape, task, classes, loss, used):
    assert checks.check_output_fits(shape, task, classes, loss, "model.layers[0]") == used


def test_panel_must_fit_the_source():
    checks.check_panel("nile", "nile", "classification")
    checks.check_panel("generic", "csv", "regression")
    for panel, source in (("nile", "csv"), ("digits", "csv"), ("spam", "digits8x8")):
        with pytest.raises(SpecError) as e:
            checks.check_panel(panel, source, "classification")
        assert e.value.key == "scenario.panel"


def test_400_nested_residual_blocks_are_a_spec_error_not_a_recursion_error():
    layers = [{"type": "dense", "units": 4}]
    for _ in range(400):
        layers = [{"type": "residual", "layers": layers}]
    with pytest.raises(SpecError) as e:
        checks.check_nesting(layers)
    assert e.value.key.startswith("model.layers[0].layers[0]")
    checks.check_nesting([{"type": "residual", "layers": [{"type": "dense", "units": 4}]}])


def test_regular_file_says_what_the_path_is_instead(tmp_path):
    (tmp_path / "f.csv").write_text("a,b\n")
    assert checks.check_regular_file(tmp_path / "f.csv") == tmp_path / "f.csv"
    for path, says in ((tmp_path, "is a folder"), ("/dev/zero", "not a regular file"),
                       (tmp_path / "nope.csv", "file not found"), (tmp_path / "f.csv" / "x", "is a file")):
        with pytest.raises(SpecError) as e:
            checks.check_regular_file(path)
        assert e.value.key == "data.path" and says in str(e.value)


# ---- checks: the data content of the broken fixtures ----------------------------------------
def csv_cases():
    for name, e in sorted(EXPECT.items()):
        if "args" in e or not (BROKEN / name).is_file() or not name.endswith(".toml"):
            continue
        try:
            data = tomllib.loads((BROKEN / name).read_text(encoding="utf-8")).get("data", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
            continue
        if data.get("source") in ("csv", "text") and name.startswith("data_") and e["key"].startswith("data."):
            yield pytest.param(name, data, e["key"], id=name)


@pytest.mark.parametrize("name, data, key", list(csv_cases()))
def test_data_checks_catch_every_broken_data_fixture(name, data, key):
    path = Path(data["path"]) if Path(data.get("path", "")).is_absolute() else BROKEN / data.get("path", "")
    with pytest.raises(SpecError) as e:
        if data["source"] == "csv":
            checks.check_csv(path, data["label"], data.get("task", "classification"), data.get("delimiter"),
                             file=str(BROKEN / name))
        else:
            checks.check_text_table(path, data.get("text_column", "text"), data.get("label", "label"),
                                    data.get("delimiter"), file=str(BROKEN / name))
    assert e.value.key == key, str(e.value)
    assert str(e.value).startswith(str(BROKEN / name)) and "\n" not in str(e.value)


@pytest.mark.parametrize("csv, label, task", [("d_three_class.csv", "kind", "classification"),
                                               ("d_regress.csv", "y", "regression")])
def test_data_checks_pass_good_tables(csv, label, task):
    checks.check_csv(BROKEN / csv, label, task)
    checks.check_text_table(BROKEN / "d_text.tsv", "message", "label")
