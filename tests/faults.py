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
Erasure (``run_erasure_trials``) is a plan of many table operations with a journal, not one
operation: a killed erasure may leave the lake between before and after, and the promise is
that every table still opens, the pending journal holds no clear value, and running the erasure
again finishes it (the subject gone everywhere, everyone else kept, certificates verified, no
pool slot left held). Each erasure trial gets a lake of its own (state folder, Dagster instance,
warehouse and landing).

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
from unittest import mock

import erasure_lake
import polars as pl

OPERATIONS = ("overwrite_partitions", "merge", "append", "compact", "restore")
DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(4)]
ROWS_PER_DAY = 400
ERASURE = "erasure"  # the erasure of erasure_lake's subject (run_erasure_trials)
ERASURE_STATES = ("not_started", "pending", "finished")  # where a kill left an erasure
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
    from lakehouse.governance.erasure import erase
    from lakehouse.naming import TableRef
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    store = Lake().store()
    store.exists(TableRef("bronze", "faults", "warmup"))  # the format library and catalog are loaded
    if sys.argv[2:] == [ERASURE]:  # the erasure's modules loaded: a kill lands in its work, not imports
        erase(get_settings(), column="email", value="warm-up@invalid", dry_run=True, recompute=False)
    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        started = time.perf_counter()
        if job["op"] == ERASURE:
            os.environ.update(job["env"])  # the trial's own lake and Dagster instance
            result = erase(get_settings(), column="email", value=erasure_lake.ANN, recompute=False)
            print(json.dumps({"done": time.perf_counter() - started, "planned": result.timings["plan"]}), flush=True)
            continue
        apply(store, TableRef(*job["table"].split(".")), job["op"])
        print(json.dumps({"done": time.perf_counter() - started}), flush=True)


@dataclass
class Worker:
    process: subprocess.Popen[str]

    @classmethod
    def start(cls, env: Mapping[str, str], op: str = "") -> Worker:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "worker", *([op] if op == ERASURE else [])],
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

    def send(self, op: str, table: str = "", env: Mapping[str, str] | None = None) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, "table": table, "env": dict(env or {})}) + "\n")
        self.process.stdin.flush()

    def result(self) -> float:
        return float(self.report()["done"])

    def report(self) -> dict[str, Any]:
        """What the worker printed when its job returned (``done``: seconds it took)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"fault worker died: {self.stderr()}")
        return dict(json.loads(line))

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
        states = ERASURE_STATES if self.op == ERASURE else ("before", "after")
        return {
            "op": self.op,
            "trials": self.trials,
            **{state: self.states[state] for state in states},
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


# -- erasure trials -------------------------------------------------------------------------------


def _trial_env(env: Mapping[str, str], root: Path, n: int) -> dict[str, str]:
    """A lake of its own for trial ``n``: state folder, Dagster instance, and (on S3) its own
    warehouse and landing prefixes."""
    home = root / f"t{n}"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    out = {"LAKEHOUSE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    for name in ("LAKEHOUSE_WAREHOUSE", "LAKEHOUSE_LANDING"):
        if env.get(name):
            out[name] = f"{env[name].rstrip('/')}-t{n}"
    return out


def _erasure_setup(env: Mapping[str, str], trial_env: Mapping[str, str]) -> None:
    from lakehouse.tables import Lake

    settings = settings_of({**env, **trial_env})
    erasure_lake.build(settings, Lake(settings).store())


def settings_of(env: Mapping[str, str]) -> Any:
    from lakehouse.settings import get_settings

    return get_settings({**os.environ, **env})


def run_erasure_trials(
    trials: int,
    env: Mapping[str, str],
    root: Path,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """``trials`` kill -9 trials of an erasure (tests/erasure_lake.py's subject), each in a lake
    of its own under ``root`` (and, when ``env`` puts the lake on S3, under prefixes of its own).
    The kill comes after a delay drawn uniformly from [0, 1.15 x the erasure's duration] on even
    trials; on odd ones, once the journal exists, after a delay from [0, 1.15 x the journaled
    part's duration].
    ``states`` counts where the kill left it: ``not_started`` (no journal yet), ``pending`` (a
    journal to resume), ``finished`` (certified before the kill)."""
    rng = random.Random(seed)
    outcome = Outcome(ERASURE)
    calibration = _trial_env(env, root, 0)
    _erasure_setup(env, calibration)
    worker = Worker.start(env, ERASURE)
    try:
        worker.ready()
        worker.send(ERASURE, env=calibration)
        report = worker.report()
        outcome.duration, planned = float(report["done"]), float(report["planned"])
    finally:
        worker.close()
    failures = _erasure_check(env, calibration, "calibration", None)
    if failures:  # an erasure that fails without a kill: nothing below would mean anything
        outcome.failures += failures
        return outcome

    upcoming: Worker | None = Worker.start(env, ERASURE)
    trial_env = _trial_env(env, root, 1)
    _erasure_setup(env, trial_env)
    try:
        for trial in range(trials):
            assert upcoming is not None
            worker = upcoming
            worker.ready()
            worker.send(ERASURE, env=trial_env)
            if trial % 2 == 0:
                delay = rng.uniform(0, 1.15 * outcome.duration)
                time.sleep(delay)
            else:
                # every other kill lands in the journaled part (landing, deletes, purge, verify,
                # certificate), counted from the moment its journal appears: the plan before it only
                # reads, and on a loaded machine it would take nearly every timed kill
                delay = _after_journal(
                    settings_of({**env, **trial_env}), rng.uniform(0, 1.15 * (outcome.duration - planned))
                )
            worker.kill()
            upcoming = Worker.start(env, ERASURE) if trial + 1 < trials else None
            assert worker.process.stdout is not None
            finished = "done" in worker.process.stdout.read()
            worker.close()
            outcome.trials += 1
            outcome.killed_after_finish += int(finished)
            what = f"erasure trial {trial} (kill after {delay:.3f} s of ~{outcome.duration:.3f} s, lake {trial_env})"
            outcome.failures += _erasure_check(env, trial_env, what, outcome)
            if progress is not None:
                progress(f"erasure {trial + 1}/{trials}")
            if upcoming is not None:
                trial_env = _trial_env(env, root, trial + 2)
                _erasure_setup(env, trial_env)
    finally:
        if upcoming is not None:
            upcoming.close()
    return outcome


def _after_journal(settings: Any, delay: float, timeout: float = 120) -> float:
    """Sleep until the erasure's journal exists, then ``delay`` more; returns the seconds waited."""
    from lakehouse.governance.erasure import pending_journals

    started = time.perf_counter()
    while not pending_journals(settings) and time.perf_counter() - started < timeout:
        time.sleep(0.01)
    time.sleep(delay)
    return time.perf_counter() - started


def _erasure_check(
    env: Mapping[str, str], trial_env: Mapping[str, str], what: str, outcome: Outcome | None
) -> list[str]:
    """After a kill (``outcome`` given) or a full run (calibration): every table opens, a pending
    journal is sealed, and an erasure run now finishes with the subject gone, everyone else kept,
    the certificates verified and no pool slot held."""
    import dagster as dg

    from lakehouse.governance.erasure import erase, pending_journals, verify_certificates
    from lakehouse.naming import pool_for
    from lakehouse.settings import get_settings
    from lakehouse.storage import read_bytes
    from lakehouse.tables import Lake

    settings = get_settings({**env, **trial_env})
    store = Lake(settings).store()
    failures: list[str] = []
    for name in erasure_lake.TABLES:
        try:
            erasure_lake.read(store, name)
        except Exception as exc:
            failures.append(f"{what}: {name} does not open: {type(exc).__name__}: {exc}")
    journals = pending_journals(settings)
    for journal in journals:
        sealed = read_bytes(settings, journal)
        if erasure_lake.ANN.encode() in sealed or b"joann" in sealed.lower():
            failures.append(f"{what}: the pending journal {journal} holds a clear value")
    # erase() uses $DAGSTER_HOME's instance, as the CLI does
    with mock.patch.dict(os.environ, trial_env), dg.DagsterInstance.get() as instance:
        certified_before = _certificates(settings) > 0
        if outcome is not None:
            state = "pending" if journals else ("finished" if certified_before else "not_started")
            outcome.states[state] += 1
        try:
            result = erase(
                settings,
                column="email",
                value=erasure_lake.ANN,
                recompute=False,
                instance=instance,
                pool_wait=dt.timedelta(seconds=30),
            )
        except Exception as exc:
            return [*failures, f"{what}: the rerun failed: {type(exc).__name__}: {exc}"]
        if not result.passed:
            failures.append(f"{what}: the rerun did not verify: {result.verification}")
        if result.resumed != bool(journals):
            failures.append(f"{what}: resumed={result.resumed} with {len(journals)} pending journal(s)")
        busy = {
            pool: info.active_slot_count
            for pool in {pool_for(erasure_lake.t(name)) for name in erasure_lake.TABLES}
            if (info := instance.event_log_storage.get_concurrency_info(pool)).active_slot_count
        }
        if busy:
            failures.append(f"{what}: pool slots still held after the rerun: {busy}")
    failures += [f"{what}: {p}" for p in erasure_lake.erased_state_problems(settings, store)]
    ok, report = verify_certificates(settings)
    if not ok:
        failures.append(f"{what}: certificates do not verify: {report.get('findings')}")
    if pending_journals(settings):
        failures.append(f"{what}: a journal is still pending after the rerun")
    return failures


def _certificates(settings: Any) -> int:
    from lakehouse.governance.audit import read_entries

    return sum(1 for e in read_entries(settings) if e.action == "erasure")


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker()
    else:
        raise SystemExit("usage: python tests/faults.py worker (internal; see bench/faults.py)")
