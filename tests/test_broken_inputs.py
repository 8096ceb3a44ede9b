"""Issue 9: every broken scenario or data file under tests/data/broken/ gives exit 2 and one line
naming the file and the key, never a traceback or an "internal error".

`EXPECT.toml` there says, per file, the key the line must name; `xfail` / `xfail_run` mark what
today's code does not do yet (strict, so a fix that lands turns the mark into a failure: remove
the mark then). `validate` takes every file in one process, which keeps this file fast; `run`
is called in-process through `main`, which is the same code path as the console script.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import tomllib
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "data" / "broken"
EXPECT: dict[str, dict] = tomllib.loads((BROKEN / "EXPECT.toml").read_text(encoding="utf-8"))
FILES = sorted(name for name, e in EXPECT.items() if "args" not in e)


def cli(*args, timeout: float = 300, limit_memory: bool = False) -> subprocess.CompletedProcess:
    """`python -m descent.tui.cli ARGS`, stdout and stderr merged in the order they were written."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def cap():  # /dev/zero read to the end would take all memory; make that a MemoryError instead
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([sys.executable, "-m", "descent.tui.cli", *map(str, args)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          timeout=timeout, preexec_fn=cap if limit_memory else None)


@lru_cache(maxsize=1)
def validated() -> dict[str, tuple[int, list[str]]]:
    """name -> (exit code of its `validate` process, the output lines that belong to it).

    Files are checked in order and each prints one line starting with its path; should a file's
    error still end the process, the files after it go to a new one."""
    out: dict[str, tuple[int, list[str]]] = {}
    left = list(FILES)
    while left:
        p = cli("validate", *(BROKEN / n for n in left))
        idx, lines = 0, [ln for ln in p.stdout.splitlines() if ln.strip()]
        owned: dict[int, list[str]] = {}
        for line in lines:
            hit = next((j for j in range(idx, len(left)) if line.startswith(f"{BROKEN / left[j]}:")), None)
            if hit is None:
                owned.setdefault(idx, []).append(line)
                continue
            owned.setdefault(hit, []).append(line)
            idx = hit + 1
        # every file up to the last one that printed its line is done; a file that printed no
        # such line stopped the process (or printed a line without its path): it is done too
        done = min(idx + 1, len(left))
        for j in range(done):   # the exit code is the process's only for the file that stopped it
            out[left[j]] = (p.returncode if j == idx else 2, owned.get(j, []))
        left = left[done:]
    return out


def problems(name: str, rc: int, lines: list[str], combined: str, where: str) -> list[str]:
    """What is wrong with one command's outcome for `name` (empty: all is well)."""
    e = EXPECT[name]
    found = []
    if rc != 2:
        found.append(f"exit code {rc}, not 2")
    for bad in ("Traceback", "internal error"):
        if bad in combined:
            found.append(f"output holds {bad!r}")
    if len(lines) != 1:
        found.append(f"{len(lines)} lines, not 1")
    line = lines[-1] if lines else ""
    if ": ok" in line:
        found.append("said ok")
    if where not in line:
        found.append(f"line does not name {where}")
    if e["key"] and e["key"] not in line:
        found.append(f"line does not name {e['key']!r}")
    if "says" in e and e["says"].lower() not in line.lower():
        found.append(f"line does not say {e['says']!r}")
    for wrong in e.get("not_says", []):
        if wrong.lower() in line.lower():
            found.append(f"line says {wrong!r}")
    return found


def marked(name: str, field: str):
    reason = EXPECT[name].get(field)
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=f"issue 9: {reason}")) if reason else name


@pytest.mark.parametrize("name", [marked(n, "xfail") for n in FILES])
def test_validate_rejects_in_one_line(name):
    rc, lines = validated()[name]
    found = problems(name, rc, lines, "\n".join(lines), str(BROKEN / name))
    assert not found, f"{name}: {'; '.join(found)}: {lines}"


def run_in_process(args: list[str], tmp_path, capsys, monkeypatch) -> tuple[int, list[str], str]:
    """`descent ARGS` through `main`: exit code, stderr lines, stdout + stderr."""
    from descent.tui.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # today's crash log lands here, not in /tmp
    capsys.readouterr()
    rc = main(args)
    cap = capsys.readouterr()
    return rc, [ln for ln in cap.err.splitlines() if ln.strip()], cap.out + cap.err


RUNS = sorted(n for n, e in EXPECT.items() if e.get("run") or "args" in e)


@pytest.mark.parametrize("name", [marked(n, "xfail_run") for n in RUNS])
def test_run_rejects_in_one_line(name, tmp_path, capsys, monkeypatch):
    e = EXPECT[name]
    if "args" in e:
        args = [str(BROKEN / a) if (BROKEN / a).is_file() else a for a in e["args"]]
        where = args[1]
    else:
        args, where = ["run", str(BROKEN / name), "--steps", "5"], str(BROKEN / name)
    if args[0] == "run":
        args += ["--out", str(tmp_path / "out")]
    rc, lines, combined = run_in_process(args, tmp_path, capsys, monkeypatch)
    found = problems(name, rc, lines, combined, where)
    assert not found, f"{name}: {'; '.join(found)}: {combined[-2000:]}"


def test_validate_dev_zero_is_not_a_scenario_file():
    p = cli("validate", "/dev/zero", timeout=120, limit_memory=True)
    assert p.returncode == 2 and "internal error" not in p.stdout and "Traceback" not in p.stdout, p.stdout
    assert "/dev/zero" in p.stdout and "no such" not in p.stdout.lower(), p.stdout


def test_run_dev_zero_is_not_a_scenario_file(tmp_path, capsys, monkeypatch):
    rc, lines, combined = run_in_process(["run", "/dev/zero", "--out", str(tmp_path / "o")], tmp_path, capsys,
                                         monkeypatch)
    assert rc == 2 and len(lines) == 1 and "/dev/zero" in lines[0], combined
    assert "no such" not in lines[0].lower() and "not found" not in lines[0].lower(), combined


def test_the_fixtures_cover_the_issue():
    assert len(EXPECT) >= 80
    for name, e in EXPECT.items():
        assert "args" in e or (BROKEN / name).exists(), f"{name} is in EXPECT.toml but not in {BROKEN}"
    listed = set(EXPECT) | {n for e in EXPECT.values() for n in e.get("args", [])}
    data = {p.name for p in BROKEN.iterdir() if p.suffix in (".csv", ".tsv")}
    for p in BROKEN.glob("*.toml"):
        if p.name != "EXPECT.toml":
            assert p.name in listed, f"{p.name} has no entry in EXPECT.toml"
    used = "".join(p.read_text(encoding="utf-8", errors="replace") for p in BROKEN.glob("*.toml") if p.is_file())
    assert all(d in used for d in data), sorted(d for d in data if d not in used)
