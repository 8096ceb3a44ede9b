"""A run folder on another machine, read through the system `ssh` (engine.tail's Transport).

Nothing runs on the remote side but a POSIX shell, `stat`, `tail` and `cat`. All commands share
one ControlMaster connection (its socket in a private temporary folder, kept for a while by
ControlPersist), so a poll costs one round trip, not a login. `ControlMaster=auto` on every
command: when the master has died (a dropped network), the next command makes a new one, so a
watcher reconnects by itself. `BatchMode=yes` makes ssh fail instead of asking for a password
or a host key, and `ConnectTimeout` bounds how long an unreachable host takes to fail.

Extra ssh arguments (a port, a key, a config file) come from `options`, which the command line
fills from `--ssh-option KEY=VALUE` and the DESCENT_SSH_OPTIONS environment variable (shell
words, e.g. "-p 2222 -i ~/.ssh/lab").
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile

from .tail import CHUNK, FileState, WatchError

CONNECT_TIMEOUT = 10            # seconds for ssh to reach the host
COMMAND_TIMEOUT = 60            # seconds for one command over an established connection
PERSIST = 300                   # the master outlives the last command by this long
SSH_FAILED = 255                # ssh's own exit status (connection, authentication)
_TARGET = re.compile(r"^(?P<host>(?:[^@/:\s]+@)?(?:\[[^\]/]+\]|[^@/:\s]+)):(?P<path>.*)$")
# exit codes of our remote scripts, and what they mean
_NO_FOLDER, _NOT_FOLDER, _NOT_RUN = 3, 4, 5


def parse_target(text: str) -> tuple[str, str] | None:
    """`[user@]host:RUN_DIR` as (host, path); None for a local path (one that exists is always
    local, as is anything with a slash before the first colon)."""
    if os.path.exists(text):
        return None
    m = _TARGET.match(text)
    if m is None:
        return None
    return m.group("host"), m.group("path") or "."


def remote_path(path: str) -> str:
    """The path as a shell word; a leading ~/ stays the remote home (quoting would keep the ~)."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def env_options() -> list[str]:
    try:
        return shlex.split(os.environ.get("DESCENT_SSH_OPTIONS", ""))
    except ValueError as e:
        raise WatchError(f"DESCENT_SSH_OPTIONS: {e}") from None


class SshTransport:
    remote = True

    def __init__(self, host: str, path: str, options: list[str] = (), ssh: str = "ssh") -> None:
        self.host, self.path = host, path
        self.label = f"{host}:{path}"
        self.dir = remote_path(path.rstrip("/") or "/")
        self.options = list(options)
        self.ssh = shutil.which(ssh)
        if self.ssh is None:
            raise WatchError(f"{self.label}: watching over ssh needs the `ssh` command, and it is not installed")
        self.control_dir = tempfile.mkdtemp(prefix="descent-ssh-")     # mode 0700: only we reach the socket
        self.control_path = os.path.join(self.control_dir, "%C")

    def base(self) -> list[str]:
        return [self.ssh, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                "-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_path}",
                "-o", f"ControlPersist={PERSIST}", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=2",
                *self.options]

    def run(self, script: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        """`script` in the remote shell; a failure of ssh itself raises WatchError."""
        cmd = [*self.base(), "--", self.host, script]
        try:
            done = subprocess.run(cmd, input=stdin if stdin is not None else b"", capture_output=True,
                                  timeout=COMMAND_TIMEOUT + CONNECT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise WatchError(f"{self.label}: ssh did not answer within "
                             f"{COMMAND_TIMEOUT + CONNECT_TIMEOUT} s") from None
        except OSError as e:
            raise WatchError(f"{self.label}: cannot run ssh ({e.strerror or e})") from None
        if done.returncode == SSH_FAILED:
            raise WatchError(f"{self.label}: ssh failed: {last_line(done.stderr) or 'exit status 255'}")
        return done

    def check(self) -> None:
        d = self.dir
        done = self.run(f"test -e {d} || exit {_NO_FOLDER}; test -d {d} || exit {_NOT_FOLDER}; "
                        f"test -e {d}/scenario.toml || test -e {d}/metrics.jsonl || exit {_NOT_RUN}")
        why = {_NO_FOLDER: "no such run folder", _NOT_FOLDER: "is a file, not a run folder",
               _NOT_RUN: "not a run folder (no scenario.toml or metrics.jsonl in it)"}.get(done.returncode)
        if why:
            raise WatchError(f"{self.label}: {why}")
        if done.returncode != 0:
            raise WatchError(f"{self.label}: the remote shell failed: "
                             f"{last_line(done.stderr) or f'exit status {done.returncode}'}")

    def read_new(self, name: str, offset: int, limit: int = CHUNK) -> tuple[FileState | None, bytes]:
        # one round trip: the file's identity and size (GNU stat, else BSD stat), then the new bytes;
        # the size is taken before the bytes, so bytes appended in between are read, never skipped
        f = f"{self.dir}/{shlex.quote(name)}"
        script = (f"s=$(stat -L -c '%d:%i %s' {f} 2>/dev/null || stat -L -f '%d:%i %z' {f} 2>/dev/null) "
                  f"|| {{ echo missing; exit 0; }}; echo \"$s\"; set -- $s; "
                  f"[ \"$2\" -ge {int(offset)} ] && tail -c +{int(offset) + 1} {f} | head -c {int(limit)}; exit 0")
        done = self.run(script)
        head, _, data = done.stdout.partition(b"\n")
        head = head.decode(errors="replace").split()
        if not head or head[0] == "missing" or len(head) != 2 or not head[1].isdigit():
            return None, b""
        state = FileState(head[0], int(head[1]))
        return state, (data if state.size >= offset else b"")

    def read_text(self, name: str) -> str | None:
        f = f"{self.dir}/{shlex.quote(name)}"
        done = self.run(f"test -f {f} || exit {_NO_FOLDER}; cat {f}")
        if done.returncode != 0:
            return None
        return done.stdout.decode("utf-8", errors="replace")

    def append(self, name: str, text: str) -> None:
        done = self.run(f"cat >> {self.dir}/{shlex.quote(name)}", stdin=text.encode())
        if done.returncode != 0:
            raise WatchError(f"{self.label}: cannot append to {name}: "
                             f"{last_line(done.stderr) or f'exit status {done.returncode}'}")

    def close(self) -> None:
        """End the master connection and remove its socket folder."""
        try:
            subprocess.run([*self.base(), "-O", "exit", "--", self.host], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.control_dir, ignore_errors=True)


def last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""
