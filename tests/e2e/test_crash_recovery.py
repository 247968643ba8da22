"""A `lakehouse demo` killed with SIGKILL mid-run does not leave the embedded lake stuck.

The killed process cannot mark its run failed nor give back the pool slot ("one writer per table")
its step holds; the next command that launches runs in process must notice the dead run, fail it
and free its slots, and otherwise wait for a live holder with a bound and a message, stoppable with
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEMO_DAYS, LAKEHOUSE_BIN, PROJECT_ROOT
from snapshots import differences, table_contents

#: an undisturbed 5-day demo takes about a minute (several on two cores busy with other suites)
RERUN_BOUND = 900.0
#: a rerun stuck behind the dead run's slot is stuck for good: once the rerun has launched a run
#: and the dead run is still STARTED this long after, it will not finish
STUCK_AFTER = 60.0


def _cli_env(home: Path, fmt: str) -> dict[str, str]:
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLE_FORMAT": fmt}
    env.pop("DAGSTER_HOME", None)  # the CLI prepares its own instance under the state folder
    return env


def _start(args: list[str], home: Path, fmt: str, output: Path | None = None) -> subprocess.Popen[str]:
    """``lakehouse ARGS`` in the background, with default SIGINT/SIGTERM handling (a test runner
    started in the background may hand down "ignore SIGINT"); stdout and stderr piped, or written
    to ``output``.stdout/.stderr (a long command fills a pipe nobody reads while the test polls)."""

    def default_signals() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    with contextlib.ExitStack() as files:
        streams: tuple[Any, Any] = (subprocess.PIPE, subprocess.PIPE)
        if output is not None:  # the child keeps its own copies of the files open
            streams = (
                files.enter_context(open(f"{output}.stdout", "w")),
                files.enter_context(open(f"{output}.stderr", "w")),
            )
        return subprocess.Popen(
            [str(LAKEHOUSE_BIN), *args],
            env=_cli_env(home, fmt),
            stdout=streams[0],
            stderr=streams[1],
            text=True,
            preexec_fn=default_signals,
        )


def _instance(home: Path) -> Any:
    import dagster as dg

    return dg.DagsterInstance.from_config(str(home / "dagster"))


def _claimed_slots(instance: Any) -> list[tuple[str, str]]:
    """(pool, run id) of every claimed concurrency slot."""
    storage = instance.event_log_storage
    keys = sorted(storage.get_concurrency_keys())
    return [
        (key, slot.run_id) for key, info in storage.get_concurrency_infos(keys).items() for slot in info.claimed_slots
    ]


def _wait_for_claimed_slot(home: Path, proc: subprocess.Popen[str], timeout: float = 300.0) -> tuple[str, str]:
    """Poll the demo's instance until one of its runs is STARTED and holds a pool slot (the demo
    first simulates its landing files: a minute or more on busy cores)."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    while not (home / "dagster" / "storage").is_dir():
        assert proc.poll() is None, f"the demo ended early: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the demo never created its Dagster instance"
        time.sleep(0.3)
    with _instance(home) as instance:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the demo ended before it claimed a slot: {proc.communicate()[1][-2000:]}"
            for pool, run_id in _claimed_slots(instance):
                run = instance.get_run_by_id(run_id)
                if run is not None and run.status == dg.DagsterRunStatus.STARTED:
                    return pool, run_id
            time.sleep(0.1)
    raise AssertionError(f"no run of the demo claimed a pool slot within {timeout:.0f}s")


def _wait_unless_stuck_behind(home: Path, rerun: subprocess.Popen[str], dead_run: str, pool: str) -> None:
    """Return once the rerun ends, or once it is clearly stuck: it launched a run of its own and
    the dead run still holds its slot ``STUCK_AFTER`` seconds later (then fail)."""
    import dagster as dg

    with _instance(home) as instance:
        before = {r.run_id for r in instance.get_runs()}
        first_new: float | None = None
        while rerun.poll() is None:
            if first_new is None and {r.run_id for r in instance.get_runs()} - before:
                first_new = time.monotonic()
            dead = instance.get_run_by_id(dead_run)
            if (
                first_new is not None
                and time.monotonic() - first_new > STUCK_AFTER
                and dead is not None
                and dead.status == dg.DagsterRunStatus.STARTED
                and (pool, dead_run) in _claimed_slots(instance)
            ):
                raise AssertionError(
                    f"the rerun is stuck: {STUCK_AFTER:.0f}s after it launched a run, the dead run {dead_run} "
                    f"is still STARTED and holds the slot of {pool}"
                )
            time.sleep(1)


@pytest.fixture
def crashed_lake(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A state folder whose `lakehouse demo` was killed with SIGKILL while a run held a table's slot."""
    home = tmp_path / "crashed"
    proc = _start(["demo", "--reset", "--days", str(DEMO_DAYS), "--json"], home, "delta")
    try:
        pool, run_id = _wait_for_claimed_slot(home, proc)
    finally:
        proc.kill()
        proc.communicate()
    yield home, pool, run_id


@pytest.mark.slow
@pytest.mark.parametrize("demo", ["delta"], indirect=True)
def test_a_demo_killed_mid_run_is_recovered_by_the_next_run(crashed_lake, demo) -> None:
    import dagster as dg

    home, pool, dead_run = crashed_lake
    with _instance(home) as instance:
        assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.STARTED
        assert (pool, dead_run) in _claimed_slots(instance)

    started = time.monotonic()
    output = home.parent / "rerun"
    rerun = _start(["demo", "--reset", "--days", str(DEMO_DAYS), "--json"], home, "delta", output)
    try:
        _wait_unless_stuck_behind(home, rerun, dead_run, pool)
        rerun.wait(timeout=RERUN_BOUND)
    finally:
        if rerun.poll() is None:
            rerun.kill()  # a rerun waiting for the slot ignored SIGTERM
            rerun.wait()
    seconds = time.monotonic() - started
    stdout, stderr = Path(f"{output}.stdout").read_text(), Path(f"{output}.stderr").read_text()
    assert rerun.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["failed_runs"] == [] and summary["checks_failed"] == []
    # the dead run is failed with a message saying why, and holds nothing any more
    assert f"run {dead_run}" in stderr and "marked failed" in stderr
    with _instance(home) as instance:
        dead = instance.get_run_by_id(dead_run)
        assert dead.status == dg.DagsterRunStatus.FAILURE
        failure = instance.all_logs(dead_run, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert failure and "is gone" in failure[-1].dagster_event.message
        assert not [s for s in _claimed_slots(instance) if s[1] == dead_run]
        assert dead_run not in instance.event_log_storage.get_concurrency_run_ids()

    # the lake equals an undisturbed demo's: every table's rows, and the content of bronze, silver, gold

    def rows(env_home: Path) -> dict[str, int]:
        listed = subprocess.run(
            [str(LAKEHOUSE_BIN), "tables", "--json"],
            env=_cli_env(env_home, "delta"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert listed.returncode == 0, listed.stderr[-2000:]
        return {t["table"]: t["rows"] for t in json.loads(listed.stdout)}

    recovered, reference = rows(home), rows(demo.home)
    # the audit log records what happened, the killed run's writes too: it may only hold more
    audit = "governance.audit.audit_log"
    assert recovered.pop(audit, 0) >= reference.pop(audit, 0)
    assert recovered == reference
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    recovered_lake = Lake(get_settings({**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLE_FORMAT": "delta"}))
    for domain in ("retail", "features", "marts"):
        layers = ("bronze", "silver", "gold")
        assert (
            differences(table_contents(recovered_lake, layers, domain), table_contents(demo.lake, layers, domain)) == []
        )
    print(f"rerun after the crash: {seconds:.1f}s")


# -- waiting for a table a live run holds ---------------------------------------------------------

POOL = "table:silver.test.items"


def _pool_instance(folder: Path) -> Any:
    """An instance with the project's pool limit (one slot per table), nothing else."""
    import dagster as dg

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n")
    return dg.DagsterInstance.from_config(str(folder))


def _holder(instance: Any, pid: int, pools: Iterable[str] = (POOL,)) -> str:
    """A STARTED run of process ``pid`` (tagged the way commands tag their runs) holding ``pools``."""
    import dagster as dg

    from lakehouse.instance import launch_tags

    run_id = str(uuid.uuid4())
    tags = {**launch_tags("lakehouse demo"), "lakehouse/pid": str(pid)}
    instance.add_run(dg.DagsterRun(job_name="holder", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags))
    storage = instance.event_log_storage
    for pool in pools:
        storage.initialize_concurrency_limit_to_default(pool)
        assert storage.claim_concurrency_slot(pool, run_id, "writer").is_claimed
    return run_id


def _writer_job() -> Any:
    import dagster as dg

    @dg.op(pool=POOL)
    def write_items() -> int:
        return 1

    @dg.job
    def writer() -> None:
        write_items()

    return writer


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_table_held_by_a_live_run_is_waited_for_with_a_bound_and_a_message(tmp_path: Path) -> None:
    import dagster as dg

    from lakehouse.instance import InProcessRuns, SlotWaitTimeout

    messages: list[str] = []
    with _pool_instance(tmp_path / "dagster") as instance:
        holder = _holder(instance, os.getpid())  # alive: this very process
        started = time.monotonic()
        with (
            InProcessRuns(instance, "lakehouse demo", max_wait=3, notify=messages.append) as runs,
            pytest.raises(SlotWaitTimeout) as timeout,
        ):
            runs.execute(_writer_job(), raise_on_error=False)
        waited = time.monotonic() - started
        assert 3 <= waited < 20
        text = str(timeout.value)
        for part in (
            f"run {holder}",
            "table silver.test.items",
            f"`kill {os.getpid()}`",
            f"`lakehouse runs free {holder}`",
            "`lakehouse demo`",
        ):
            assert part in text, (part, text)
        assert messages and "Ctrl-C stops this command" in messages[0] and f"run {holder}" in messages[0]
        # the waiting run failed and left nothing queued; the live holder is untouched
        (waiting,) = [r for r in instance.get_runs() if r.run_id != holder]
        assert waiting.status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_run_ids() <= {holder}
        assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.STARTED
        assert instance.event_log_storage.get_concurrency_info(POOL).claimed_slots[0].run_id == holder


def test_a_dead_holder_is_failed_and_its_slot_freed_before_or_while_waiting(tmp_path: Path) -> None:
    import dagster as dg

    from lakehouse.instance import InProcessRuns

    messages: list[str] = []
    with _pool_instance(tmp_path / "dagster") as instance:
        dead = _holder(instance, _dead_pid())
        with InProcessRuns(instance, "lakehouse demo", max_wait=60, notify=messages.append) as runs:
            assert runs.execute(_writer_job(), raise_on_error=False).success
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
        assert any(f"run {dead}" in m and "marked failed" in m for m in messages)

        # a holder that dies while a step waits for its table: noticed at the next poll
        sleeper = subprocess.Popen(["sleep", "3"])
        dying = _holder(instance, sleeper.pid)
        started = time.monotonic()
        with InProcessRuns(instance, "lakehouse demo", max_wait=60, notify=messages.append) as runs:
            assert runs.execute(_writer_job(), raise_on_error=False).success
        sleeper.wait()
        assert 2 < time.monotonic() - started < 30
        assert instance.get_run_by_id(dying).status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_run_ids()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_command_waiting_for_a_table_stops_on_ctrl_c_and_sigterm(tmp_path: Path, signum: int) -> None:
    """`lakehouse demo` behind a live run that holds every table it writes: it says so, and stops."""
    import dagster as dg

    from lakehouse.definitions import DAILY_JOB, build_definitions

    job = build_definitions().resolve_job_def(DAILY_JOB)
    pools = sorted({p for n in job.graph.nodes if (p := getattr(n.definition, "pool", None))})
    home = tmp_path / "lake"
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")  # one slot per table
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        holder = _holder(instance, os.getpid(), pools)
    proc = _start(["demo", "--days", "1", "--json"], home, "delta")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 300
    while not any("waits for" in line for line in lines):
        assert proc.poll() is None, "".join(lines)[-3000:]
        assert time.monotonic() < deadline, "the demo never said it waits for a table"
        time.sleep(0.2)
    waiting = next(line for line in lines if "waits for" in line)
    assert f"run {holder}" in waiting and "table " in waiting and f"lakehouse runs free {holder}" in waiting
    proc.send_signal(signum)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"`lakehouse demo` ignored {signal.Signals(signum).name} while it waited") from None
    reader.join(timeout=5)
    assert proc.returncode == 130, "".join(lines)[-3000:]
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        (stopped,) = [r for r in instance.get_runs() if r.run_id != holder]
        assert stopped.status == dg.DagsterRunStatus.FAILURE  # not left STARTED
        assert instance.event_log_storage.get_concurrency_run_ids() <= {holder}


def test_runs_free_fails_a_run_and_frees_its_slots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a waiting command names for a holder it cannot judge from here (another machine)."""
    import dagster as dg
    from click.testing import CliRunner

    from lakehouse.cli import cli
    from lakehouse.exceptions import LakehouseError

    folder = tmp_path / "dagster"
    with _pool_instance(folder) as instance:
        holder = _holder(instance, os.getpid())  # alive, so nothing frees it by itself
    monkeypatch.setenv("DAGSTER_HOME", str(folder))
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "lake"))
    freed = CliRunner().invoke(cli, ["runs", "free", holder])
    assert freed.exit_code == 0, freed.output
    assert f"run {holder}" in freed.output and "marked failed" in freed.output and POOL in freed.output
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
    unknown = CliRunner().invoke(cli, ["runs", "free", "no-such-run"])
    assert isinstance(unknown.exception, LakehouseError) and "no run 'no-such-run'" in str(unknown.exception)
