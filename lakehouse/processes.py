"""Run a few long-lived child processes and stop them all cleanly on Ctrl-C or SIGTERM.

Children start with the default SIGINT/SIGTERM dispositions restored (a process launched from a
script in the background may inherit "ignore SIGINT" and would never stop otherwise), each in
its own session so we signal them ourselves, and are killed if they outlive a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = ["dagster_commands", "group_alive", "process_alive", "run_until_interrupted", "start", "stop"]

#: seconds a process may seem to have started after a moment it was already running: /proc gives
#: the boot time in whole seconds and the start time in clock ticks
START_TIME_SLACK = 2.0


def _restore_signals() -> None:  # runs in the child before exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _ignored_signals() -> bool:
    """Whether this process ignores SIGINT/SIGTERM (an ignored signal stays ignored across exec)."""
    return any(signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM))


def dagster_commands(
    workspace: str, *, host: str = "127.0.0.1", port: int = 3000, daemon: bool = True
) -> list[list[str]]:
    """The webserver (and daemon) of ``lakehouse ui``: the deployment commands, from this venv."""
    bin_dir = Path(sys.executable).parent
    commands = [[str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", host, "-p", str(port)]]
    if daemon:
        commands.append([str(bin_dir / "dagster-daemon"), "run", "-w", workspace])
    return commands


def start(
    commands: Sequence[Sequence[str]],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
) -> list[subprocess.Popen[bytes]]:
    """Start ``commands``, each in its own session with default signal handling; stop them with :func:`stop`.

    A handler installed here is reset to the default by exec; only an *ignored* signal needs a
    ``preexec_fn`` (which is not safe while other threads run, so it is used only then).
    """
    procs: list[subprocess.Popen[bytes]] = []
    preexec = _restore_signals if _ignored_signals() else None
    try:
        for command in commands:
            procs.append(
                subprocess.Popen(
                    list(command),
                    cwd=cwd,
                    env=None if env is None else dict(env),
                    stdout=stdout,
                    stderr=subprocess.STDOUT if stdout is not None else None,
                    start_new_session=True,
                    preexec_fn=preexec,  # noqa: PLW1509 - only when signals are ignored (see above)
                )
            )
    except BaseException:
        stop(procs)
        raise
    return procs


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies waiting to be reaped do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel (a zombie counts there)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("/proc/stat has no btime line")


def process_alive(pid: int, *, running_at: float | None = None) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting to be reaped does not count).

    With ``running_at`` (epoch seconds, a moment the process is known to have been running, e.g.
    when it created a run), a process that started later is a stranger reusing the pid of one
    that is gone: not alive. Without /proc (not Linux) only the pid is asked about.
    """
    if pid <= 0:
        return False
    stat = Path("/proc") / str(pid) / "stat"
    if not Path("/proc/self/stat").is_file():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's process: it exists
        return True
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if fields[0] in ("Z", "X"):
        return False
    if running_at is None:
        return True
    try:
        started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return True  # cannot tell when it started: assume it is the same process
    return started <= running_at + START_TIME_SLACK


def stop(procs: Sequence[subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    """SIGTERM each process group, then SIGKILL whatever of them is still alive after ``grace``
    seconds: the leaders *and* their children (code servers, run workers), so nothing is orphaned."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        while group_alive(p.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if p.poll() is None or group_alive(p.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def run_until_interrupted(commands: Sequence[Sequence[str]], *, cwd: str | None = None) -> int:
    """Start ``commands``; return when one exits (its code) or on SIGINT/SIGTERM (0), stopping all."""
    procs: list[subprocess.Popen[bytes]] = []
    stopping = {"flag": False}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["flag"] = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        procs = start(commands, cwd=cwd)
        while not stopping["flag"]:
            for p in procs:
                code = p.poll()
                if code is not None:
                    return code
            time.sleep(0.2)
        return 0
    finally:
        stop(procs)
        for s, handler in previous.items():
            signal.signal(s, handler)
