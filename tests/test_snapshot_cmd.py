"""`descent snapshot`: trains N steps through the one Session and writes the dashboard as an SVG;
bad input is one line and exit status 2."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from descent.tui.cli import main

DIGITS = Path(__file__).parent / "data" / "tui_digits.toml"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)


def text_of(svg: Path) -> str:
    return html.unescape(svg.read_text(encoding="utf-8")).replace("\xa0", " ")


def test_snapshot_writes_the_dashboard_after_n_steps(tmp_path, capsys):
    out = tmp_path / "digits.svg"
    assert main(["snapshot", str(DIGITS), "--steps", "30", "--view", "panel",
                 "--set", "training.lr=0.01", "--out", str(out)]) == 0
    svg = text_of(out)
    assert svg.lstrip().startswith("<svg")
    assert "TUI test: 8x8 digits" in svg and "step 30" in svg          # the title
    assert "30/400" in svg and "test digit 1 of 451" in svg            # the status line, the panel
    assert "0.01" in svg                                              # the --set knob value, in the knobs panel (120x40)
    assert f"wrote {out}" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()                            # the run folder was temporary


@pytest.mark.parametrize("args, message", [
    (["--size", "10x5"], "--size 10x5: columns must be 80..400"),
    (["--size", "wide"], "expected COLUMNSxROWS"),
    (["--out", "x.png"], "name it *.svg"),
    (["--out", "nowhere/x.svg"], "does not exist"),
    (["--steps", "-1"], "--steps -1: must be 0 or more"),
    (["--view", "nope", "--steps", "1"], "--view nope: this dashboard has the views grads, panel"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    argv = ["snapshot", str(DIGITS), *args]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "x.svg")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.svg").exists()


def test_unknown_scenario_is_one_line(tmp_path, capsys):
    assert main(["snapshot", "no-such-scenario", "--out", str(tmp_path / "x.svg")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
