"""Fault injection: kill -9 a table operation at a random moment, then prove that the table still
opens, holds exactly its content from before or from after the operation, and that running the
operation again converges on the after state.

Each trial gets a table of its own, built to the same *before* state. A worker process (imports
done, store open) waits for ``go``, runs the operation and is killed by SIGKILL after a delay drawn
uniformly from [0, 1.3 x the operation's measured duration], so the kill lands anywhere from
before the first file is written to after the commit. The next trial's worker is started while the
current one runs, so a trial costs about one operation plus one table set-up.

Used by ``tests/integration/test_fault_injection.py`` (a few trials per case, in CI) and by
``bench/faults.py`` (``make faults``: 50 trials per case, the figures of the closing note).
Erasure has its own kill -9 suite (``tests/integration/test_erasure_safety.py``): it is a plan of
many table operations with a journal, not one operation.

    python tests/faults.py worker      (internal: the process that gets killed)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

OPERATIONS = ("overwrite_partitions", "merge", "append", "compact", "restore")
DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(4)]
ROWS_PER_DAY = 400
TOKEN_KEY = "lakehouse.faults.token"  # an append's idempotency token, kept in its commit metadata


# -- the data and the operations (deterministic: every trial's table has the same content) --------


def _rows(days: list[dt.date], n: int, tag: str, first_id: int = 0) -> pl.DataFrame:
    ids = [first_id + d * n + i for d in range(len(days)) for i in range(n)]
    return pl.DataFrame(
        {
            "id": ids,
            "day": [day for day in days for _ in range(n)],
            "amount": [round(i * 1.25, 2) for i in ids],
            "note": [f"{tag}-{i}" for i in ids],
            "updated_at": [dt.datetime(2024, 2, 1, tzinfo=dt.UTC)] * len(ids),
        }
    )


def setup(store: Any, ref: Any, op: str) -> None:
    """Build the *before* state of ``op`` on a new table ``ref``."""
    base = _rows(DAYS, ROWS_PER_DAY, "v1")
    store.overwrite_partitions(ref, base, partition_by="day", values=DAYS)
    if op == "compact":
        for i in range(12):  # small files to compact
            store.append(ref, _rows([DAYS[0]], 5, f"small{i}", first_id=100_000 + i * 10))
    elif op == "restore":
        store.overwrite_partitions(ref, _rows([DAYS[1]], ROWS_PER_DAY, "v2"), partition_by="day", values=[DAYS[1]])
        store.append(ref, _rows([DAYS[2]], 50, "v3", first_id=200_000))


def apply(store: Any, ref: Any, op: str) -> None:
    """Run ``op`` the way a caller that may be re-run does: every form here is safe to repeat."""
    if op == "overwrite_partitions":
        data = _rows(DAYS[1:3], ROWS_PER_DAY + 7, "new")
        store.overwrite_partitions(ref, data, partition_by="day", values=DAYS[1:3])
    elif op == "merge":
        changed = _rows(DAYS[:2], ROWS_PER_DAY, "merged").filter(pl.col("id") % 3 == 0)
        changed = changed.with_columns(pl.col("updated_at") + dt.timedelta(days=1))
        inserted = _rows([DAYS[3]], 60, "inserted", first_id=300_000)
        store.merge(ref, pl.concat([changed, inserted]), keys=["id"], newer_by="updated_at")
    elif op == "append":
        token = "append-1"  # the caller's idempotency: append unless this token already committed
        if any(c.user_metadata.get(TOKEN_KEY) == token for c in store.history(ref)):
            return
        store.append(ref, _rows([DAYS[3]], 80, "appended", first_id=400_000), commit_metadata={TOKEN_KEY: token})
    elif op == "compact":
        store.compact(ref)
    elif op == "restore":
        first = min(c.version for c in store.history(ref))
        store.restore(ref, version=first)
    else:
        raise ValueError(f"unknown operation {op!r}; accepted: {', '.join(OPERATIONS)}")


def content(store: Any, ref: Any) -> pl.DataFrame:
    """The table's rows in a canonical order (the comparison is on every value)."""
    frame = store.read(ref).collect()
    return frame.select(sorted(frame.columns)).sort("id")


# -- the worker ----------------------------------------------------------------------------------


def _worker() -> None:
    from lakehouse.naming import TableRef
    from lakehouse.tables import Lake

    store = Lake().store()
    store.exists(TableRef("bronze", "faults", "warmup"))  # the format library and catalog are loaded
    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        ref = TableRef(*job["table"].split("."))
        started = time.perf_counter()
        apply(store, ref, job["op"])
        print(json.dumps({"done": time.perf_counter() - started}), flush=True)


@dataclass
class Worker:
    process: subprocess.Popen[str]

    @classmethod
    def start(cls, env: Mapping[str, str]) -> Worker:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "worker"],
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return cls(process)

    def ready(self, timeout: float = 120) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.process.kill()
            raise RuntimeError(f"fault worker did not start: {line!r} {self.stderr()}")

    def send(self, op: str, table: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, "table": table}) + "\n")
        self.process.stdin.flush()

    def result(self) -> float:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"fault worker died: {self.stderr()}")
        return float(json.loads(line)["done"])

    def kill(self) -> int:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=60)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=60)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read()[-3000:]


# -- trials --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the trials of one (operation, format, storage) found."""

    op: str
    trials: int = 0
    states: Counter[str] = field(default_factory=Counter)  # before / after (the killed run committed)
    killed_after_finish: int = 0  # the kill came after the operation returned (not a fault)
    failures: list[str] = field(default_factory=list)
    duration: float = 0.0

    def row(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "trials": self.trials,
            "before": self.states["before"],
            "after": self.states["after"],
            "finished_before_kill": self.killed_after_finish,
            "failures": len(self.failures),
            "op_seconds": round(self.duration, 3),
        }


def run_trials(
    op: str,
    trials: int,
    env: Mapping[str, str],
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """``trials`` kill -9 trials of ``op`` against the lake ``env`` points at."""
    from lakehouse.naming import TableRef
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    store = Lake(get_settings(dict(env))).store()
    rng = random.Random(seed)
    outcome = Outcome(op)

    def new_ref() -> Any:
        return TableRef("bronze", "faults", f"{op}_{uuid.uuid4().hex[:10]}")

    # calibration: the before and after content, and how long the operation takes in a worker
    ref = new_ref()
    setup(store, ref, op)
    before = content(store, ref)
    worker = Worker.start(env)
    try:
        worker.ready()
        worker.send(op, str(ref))
        outcome.duration = worker.result()
    finally:
        worker.close()
    after = content(store, ref)
    store.drop(ref)

    # the next trial's worker starts after this one's kill, while the table is checked and the
    # next one set up: its imports never compete with the operation under test
    upcoming: Worker | None = Worker.start(env)
    ref = new_ref()
    setup(store, ref, op)
    try:
        for trial in range(trials):
            assert upcoming is not None
            worker = upcoming
            worker.ready()
            delay = rng.uniform(0, 1.3 * outcome.duration)
            worker.send(op, str(ref))
            time.sleep(delay)
            worker.kill()
            upcoming = Worker.start(env) if trial + 1 < trials else None
            assert worker.process.stdout is not None
            finished = "done" in worker.process.stdout.read()  # the operation returned before the kill
            worker.close()
            outcome.trials += 1
            outcome.killed_after_finish += int(finished)
            what = f"{op} trial {trial} (kill after {delay:.3f} s of ~{outcome.duration:.3f} s, table {ref})"
            _check(store, ref, op, before, after, outcome, what)
            store.drop(ref)
            if progress is not None:
                progress(f"{op} {trial + 1}/{trials}")
            if upcoming is not None:
                ref = new_ref()
                setup(store, ref, op)
    finally:
        if upcoming is not None:
            upcoming.close()
    return outcome


def _check(
    store: Any, ref: Any, op: str, before: pl.DataFrame, after: pl.DataFrame, outcome: Outcome, what: str
) -> None:
    """The killed table opens, holds the before or the after state, and a rerun reaches after."""
    try:
        state = content(store, ref)
    except Exception as exc:
        outcome.failures.append(f"{what}: the table does not open: {type(exc).__name__}: {exc}")
        return
    if state.equals(before):
        outcome.states["before"] += 1
    elif state.equals(after):
        outcome.states["after"] += 1
    else:
        outcome.failures.append(
            f"{what}: content is neither before ({before.height} rows) nor after ({after.height} rows): "
            f"{state.height} rows"
        )
        return
    try:
        apply(store, ref, op)  # a rerun converges
        rerun = content(store, ref)
    except Exception as exc:
        outcome.failures.append(f"{what}: the rerun failed: {type(exc).__name__}: {exc}")
        return
    if not rerun.equals(after):
        outcome.failures.append(f"{what}: the rerun left {rerun.height} rows, not the after state")


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        _worker()
    else:
        raise SystemExit("usage: python tests/faults.py worker (internal; see bench/faults.py)")
