"""`descent watch` over ssh against a real sshd of the test's own: loopback, a free port, a
throwaway key, its own config (no PAM, no host keys or settings of the machine). It runs as the
user running the tests (root in CI, so root may log in by key)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from descent.engine.remote import SshTransport
from descent.engine.tail import WatchedRun, WatchError

ROOT = Path(__file__).resolve().parents[1]
SSHD = shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
                                reason="openssh-server is not installed (.ci/run installs it with apt-get)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """(port, ssh options) of a running sshd that lets this user in with a fresh key."""
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = free_port()
    (d / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
PidFile {d / 'sshd.pid'}
AuthorizedKeysFile {d / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
""")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        # sshd's privilege separation folder is compiled in; the package's service makes it at boot
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "wb"))
    options = ["-F", "/dev/null", "-p", str(port), "-i", str(d / "client_key"), "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={d / 'known_hosts'}", "-o", "StrictHostKeyChecking=accept-new",
               "-o", "LogLevel=ERROR"]
    try:
        for _ in range(100):                # until it listens (it starts in well under a second)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()}")
            time.sleep(0.1)
        yield port, options
    finally:
        proc.terminate()
        proc.wait(10)


def descent(*args, env=None, timeout=300):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "descent.tui.cli", *map(str, args)], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def ssh_env(options) -> dict:
    return {"DESCENT_SSH_OPTIONS": " ".join(options)}


def test_once_over_ssh_after_a_headless_run(sshd, tmp_path):
    """The done-when path: a headless run writes a folder; `watch --once host:DIR` over ssh
    prints its step, loss and state."""
    port, options = sshd
    out = tmp_path / "run"
    run = descent("run", "digits8x8", "--steps", 40, "--set", "training.log_every=10", "--out", out)
    assert run.returncode == 0, run.stderr
    p = descent("watch", "--once", f"localhost:{out}", env=ssh_env(options))
    assert p.returncode == 0, p.stderr
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-3])    # the last step line
    assert f"localhost:{out}: Digit recognizer" in p.stdout
    assert "[finished]" in p.stdout
    assert f"step 40/40" in p.stdout and f"loss {last['loss']:.4f}" in p.stdout
    assert "eval at step 40" in p.stdout and "accuracy" in p.stdout
    # ... and the options given one by one reach ssh too
    base = [a for a in options if a not in ("-p", str(port))]
    q = descent("watch", "--once", "-o", f"Port={port}", f"localhost:{out}", env=ssh_env(base))
    assert q.returncode == 0, q.stderr
    assert q.stdout == p.stdout


def test_ssh_failures_are_one_line_exit_2(sshd, tmp_path):
    port, options = sshd
    p = descent("watch", "--once", f"localhost:{tmp_path}/absent", env=ssh_env(options))
    assert p.returncode == 2
    assert p.stderr == f"descent: localhost:{tmp_path}/absent: no such run folder\n"
    p = descent("watch", "--once", f"localhost:{tmp_path}", env=ssh_env(options))
    assert p.returncode == 2 and "not a run folder" in p.stderr and "Traceback" not in p.stderr
    closed = [a if a != str(port) else str(free_port()) for a in options]       # nobody listens there
    p = descent("watch", "--once", f"localhost:{tmp_path}", env=ssh_env(closed))
    assert p.returncode == 2
    assert p.stderr.startswith(f"descent: localhost:{tmp_path}: ssh failed: ") and p.stderr.count("\n") == 1
    assert "refused" in p.stderr


def test_tail_over_ssh_follows_appends_truncation_and_a_dropped_master(sshd, tmp_path):
    """The shared tail logic over the ssh transport; the connection killed between two polls
    comes back by itself."""
    _, options = sshd
    (tmp_path / "scenario.toml").write_text('[scenario]\nname = "x"\n')
    metrics = tmp_path / "metrics.jsonl"
    step = {"kind": "step", "epoch": 0.1, "loss": 1.0, "lr": 0.1, "grad_norm": 1.0, "param_norm": 1.0,
            "grad_norms": {}, "update_ratios": {}, "time_grad_norms": None, "steps_per_s": 10.0, "elapsed": 1.0}
    line = lambda n: json.dumps({**step, "step": n}) + "\n"      # noqa: E731
    metrics.write_text(line(1) + line(2)[:20])
    run = WatchedRun(SshTransport("localhost", str(tmp_path), options))
    try:
        run.open()
        assert [r.step for r in run.poll()[1]] == [1]
        with metrics.open("a") as f:
            f.write(line(2)[20:] + line(3))
        assert [r.step for r in run.poll()[1]] == [2, 3]
        subprocess.run([*run.transport.base(), "-O", "exit", "--", "localhost"], capture_output=True, check=True)
        metrics.write_text(line(1))                              # truncated: a new run in the folder
        restarted, records = run.poll()
        assert restarted and [r.step for r in records] == [1] and run.last_step.step == 1
        run.request("set", "training.lr", 0.01)
        run.request("pause")
        sent = [json.loads(x) for x in (tmp_path / "control.jsonl").read_text().splitlines()]
        assert [(r["op"], r.get("key"), r.get("value")) for r in sent] == [("set", "training.lr", 0.01),
                                                                          ("pause", None, None)]
    finally:
        run.close()
    assert not os.path.exists(run.transport.control_dir)


def test_unreachable_host_fails_fast_in_one_line(tmp_path):
    """No sshd needed: BatchMode and ConnectTimeout make a closed port an error at once."""
    t = SshTransport("127.0.0.1", str(tmp_path), ["-F", "/dev/null", "-p", str(free_port())])
    try:
        with pytest.raises(WatchError, match=r"^127\.0\.0\.1:.*: ssh failed: .*refused"):
            t.check()
    finally:
        t.close()


def test_watch_view_over_ssh_steers_the_remote_folder(sshd, tmp_path, monkeypatch):
    """The view on host:DIR: records arrive over the connection, space and a knob edit land in
    the remote control.jsonl."""
    import asyncio

    from descent.tui.app.watch import make_watch_app
    from descent.tui.cli.watch import open_runs
    from test_watch import line, requests, run_folder, step, until

    _, options = sshd
    folder = run_folder(tmp_path / "r", [step(10), step(20)])
    monkeypatch.setenv("DESCENT_SSH_OPTIONS", " ".join(options))
    runs = open_runs([f"localhost:{folder}"])

    async def watch():
        app = make_watch_app(runs)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            await until(pilot, lambda: screen.status.info.step == 20, "the records over ssh")
            with (folder / "metrics.jsonl").open("a") as f:
                f.write(line(step(30)))
            await until(pilot, lambda: screen.status.info.step == 30, "an appended record")
            await pilot.press("space")
            await until(pilot, lambda: requests(folder) == [("pause", None, None)], "the pause request")
            await pilot.press("q")
        return app.return_code

    try:
        assert asyncio.run(watch()) == 0
    finally:
        for run in runs:
            run.close()


def test_once_over_ssh_while_a_headless_run_trains(sshd, tmp_path):
    """Watched mid-run: running with a step, then stopped once the run is interrupted."""
    import signal

    _, options = sshd
    out = tmp_path / "live"
    proc = subprocess.Popen([sys.executable, "-m", "descent.tui.cli", "run", "digits8x8", "--steps", "10000000",
                             "--set", "training.log_every=200", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        metrics = out / "metrics.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (metrics.exists() and b'"step"' in metrics.read_bytes()[:4096]):
            time.sleep(0.2)
        p = descent("watch", "--once", f"localhost:{out}", env=ssh_env(options))
        assert p.returncode == 0, p.stderr
        assert "[running]" in p.stdout and "  step " in p.stdout and "steps/s" in p.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    p = descent("watch", "--once", f"localhost:{out}", env=ssh_env(options))
    assert p.returncode == 0 and "[stopped]" in p.stdout, p.stdout + p.stderr


def test_a_headless_run_is_watched_and_steered_over_ssh(sshd, tmp_path, monkeypatch):
    """The issue's done-when: `descent run` in one process, the watch view on localhost:DIR in
    another; space pauses the run (it stops stepping and says so), a live knob edit reaches it
    (its metrics record the change), space resumes it, and `x` stops it, exit 0."""
    import asyncio
    import signal

    from descent.tui.app.messages import KnobEdited
    from descent.tui.app.watch import make_watch_app
    from descent.tui.cli.watch import open_runs
    from test_watch import until

    _, options = sshd
    out = tmp_path / "steered"
    proc = subprocess.Popen([sys.executable, "-m", "descent.tui.cli", "run", "digits8x8", "--steps", "10000000",
                             "--set", "training.log_every=50", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"

    def records(kind):
        lines = metrics.read_text().split("\n")[:-1] if metrics.exists() else []    # whole lines only
        return [d for d in map(json.loads, lines) if d.get("kind") == kind]

    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not records("step"):
            time.sleep(0.2)
        monkeypatch.setenv("DESCENT_SSH_OPTIONS", " ".join(options))
        runs = open_runs([f"localhost:{out}"])

        async def watch():
            app = make_watch_app(runs)
            async with app.run_test(size=(120, 40)) as pilot:
                screen = app.screen
                await until(pilot, lambda: screen.status.info.step > 0, "the run's steps over ssh")
                await pilot.press("space")
                await until(pilot, lambda: screen.state == "paused", "the run to answer the pause")
                held = len(records("step"))
                screen.post_message(KnobEdited("training.lr", 0.0005, True))
                await until(pilot, lambda: any(c["op"] == "set" and c["ok"] for c in records("control")),
                            "the run to accept the knob")
                assert len(records("step")) == held            # paused: no step while it was held
                await pilot.press("space")
                await until(pilot, lambda: screen.state == "running", "the run to resume")
                await until(pilot, lambda: records("knobchanged"), "the knob change in its metrics")
                await pilot.press("x")
                await pilot.pause(0.5)
                await pilot.press("y")
                await until(pilot, lambda: screen.state == "stopped", "the run to stop")
                await pilot.press("q")
            return app.return_code

        try:
            assert asyncio.run(watch()) == 0
        finally:
            for run in runs:
                run.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
    changed = records("knobchanged")
    assert changed[0]["key"] == "training.lr" and changed[0]["value"] == 0.0005
    assert [c["op"] for c in records("control") if c["ok"]][:3] == ["pause", "set", "resume"]
