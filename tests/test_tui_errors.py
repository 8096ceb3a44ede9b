"""Issue 9, item 8: the dashboard never shows a traceback. A bad scenario is refused before the
terminal switches over (exit 2, one line); anything unexpected inside the app ends it with one
line naming the error and the crash report written for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from descent.tui.cli import main

BROKEN = Path(__file__).resolve().parent / "data" / "broken"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("args", [["panel_nile_on_csv.toml"], ["panel_digits_on_csv.toml"],
                                  ["good_digits.toml", "--seed", "-1"], ["data_nonnumeric.toml"]])
def test_tui_refuses_a_bad_start_in_one_line(args, capsys):
    rc = main(["tui", str(BROKEN / args[0]), *args[1:]])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and str(BROKEN / args[0]) in err, err
    assert "Traceback" not in err and "internal error" not in err, err


def test_an_unexpected_error_in_the_app_ends_it_with_one_line_and_a_report(tmp_path, capsys):
    from descent.tui.app import make_app

    app = make_app(None, runs_dir=tmp_path / "runs")

    async def go():
        async with app.run_test(size=(100, 30)) as pilot:
            app.call_later(lambda: 1 / 0)
            await pilot.pause(0.2)

    with pytest.raises(ZeroDivisionError):        # run_test re-raises what ended the app
        asyncio.run(go())
    line = app.crash_message
    assert app.return_code == 1 and "\n" not in line and "ZeroDivisionError: division by zero" in line, line
    report = Path(line.split("details in ")[1].split(";")[0])
    assert report.is_file() and report.is_relative_to(tmp_path / "state")
    assert "ZeroDivisionError" in report.read_text(encoding="utf-8")
    err = capsys.readouterr().err
    assert line in err.splitlines() and "Traceback" not in err, err      # whole, on one line
