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
import time
from collections.abc import Sequence

__all__ = ["run_until_interrupted", "stop"]


def _restore_signals() -> None:  # runs in the child before exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()


def stop(procs: Sequence[subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    """SIGTERM each process group, then SIGKILL whatever is still alive after ``grace`` seconds."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
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
        for command in commands:
            procs.append(subprocess.Popen(list(command), cwd=cwd, preexec_fn=_restore_signals))  # noqa: PLW1509
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
