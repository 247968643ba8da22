"""The Dagster instance of the embedded default (``$DAGSTER_HOME`` under the state folder), and the
runs commands launch in their own process on it.

Every op that writes a table holds that table's pool slot (``default_limit: 1`` in dagster.yaml).
A command killed with SIGKILL (or a machine that lost power) cannot fail its run nor give its
slots back, and only the daemon's run monitoring would ever free them; without the daemon the
next writer of that table would wait forever. Dagster's in-process executor also waits for a
slot in a loop that never sleeps (100% CPU) and ignores Ctrl-C and SIGTERM. So:

- runs launched in process carry their process (pid, host, command) as tags;
- :func:`recover_dead_runs` fails every unfinished run whose process is gone and frees the slots
  of such runs; :func:`prepare_dagster_home` runs it, so every command on the instance does;
- :class:`InProcessRuns` launches a command's runs and, when a step waits for a slot held by
  another run, waits here instead: polling, recovering a holder that dies meanwhile, saying what
  it waits for (the run, the table, the command that frees it), giving up after a bound, and
  stopping on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import LakehouseError
from lakehouse.processes import process_alive
from lakehouse.settings import Settings, project_root

if TYPE_CHECKING:
    import dagster as dg

__all__ = [
    "RUN_COMMAND_TAG",
    "RUN_HOST_TAG",
    "RUN_PID_TAG",
    "SLOT_WAIT_SECONDS",
    "InProcessRuns",
    "RecoveredRun",
    "SlotWaitTimeout",
    "free_run",
    "launch_tags",
    "prepare_dagster_home",
    "recover_dead_runs",
]

RUN_PID_TAG = "lakehouse/pid"
RUN_HOST_TAG = "lakehouse/host"
RUN_COMMAND_TAG = "lakehouse/command"
#: how long a command waits for a table's pool slot that a live run holds before it gives up; long
#: enough for any step of the demo or a backfill, short enough that nothing hangs for good
SLOT_WAIT_SECONDS = 600.0
#: how often a waiting command asks again (and looks whether the holder died meanwhile)
SLOT_POLL_SECONDS = 1.0
#: how often a waiting command repeats what it waits for
SLOT_NOTICE_SECONDS = 60.0
POOL_PREFIX = "table:"

Notify = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class SlotWaitTimeout(LakehouseError, TimeoutError):
    """A step waited longer than the bound for a table's pool slot that another run holds."""


def prepare_dagster_home(settings: Settings, *, notify: Notify | None = _stderr) -> Path:
    """Create ``DAGSTER_HOME`` (unless the environment already names one) holding our dagster.yaml.

    Returns the folder and sets ``os.environ["DAGSTER_HOME"]`` so in-process runs, the webserver
    and the daemon all use the same SQLite storage. Runs that a killed command left unfinished are
    failed and their pool slots freed (:func:`recover_dead_runs`): every command that uses the
    instance comes through here, so the next one repairs what a crash left behind.
    """
    existing = os.environ.get("DAGSTER_HOME")
    home = Path(existing) if existing else settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    source = project_root() / "dagster.yaml"
    if not existing and source.is_file() and (not config.is_file() or config.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, config)
    elif not config.is_file():
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    # create the SQLite storage now, once: a webserver, a daemon and their code servers starting
    # together on an empty folder race to create it ("alembic_version has more than one head")
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        recover_dead_runs(instance, notify=notify)
    return home


# -- which process runs a run ---------------------------------------------------------------------


def launch_tags(command: str) -> dict[str, str]:
    """Tags naming the process that launches a run in process: this one.

    ``command`` is the command's name only (``lakehouse demo``), never its arguments, which may
    hold a data subject's identifiers (``erase --subject``).
    """
    return {RUN_PID_TAG: str(os.getpid()), RUN_HOST_TAG: socket.gethostname(), RUN_COMMAND_TAG: command}


@dataclass(frozen=True)
class RunProcess:
    """The process that executes a run, as far as the instance records it."""

    pid: int
    host: str | None  # None: not recorded (only the executor's engine event gave the pid)
    command: str | None

    def describe(self) -> str:
        where = f"pid {self.pid}" + (f" on {self.host}" if self.host else "")
        return f"`{self.command}`, {where}" if self.command else where


def _run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> RunProcess | None:
    """The run's process: from our tags, else from the pid its executor logged when it started
    (runs launched without the tags: older commands, ``dg.materialize``, the daemon's workers)."""
    tags = run.tags
    if RUN_PID_TAG in tags:
        recorded = tags[RUN_PID_TAG]
        if not recorded.isdigit():
            return None
        return RunProcess(int(recorded), tags.get(RUN_HOST_TAG), tags.get(RUN_COMMAND_TAG))
    import dagster as dg

    pid: int | None = None
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or event.step_key is not None:  # a step's subprocess, not the run's
            continue
        value = event.engine_event_data.metadata.get("pid") if event.engine_event_data else None
        text = getattr(value, "value", None)
        if isinstance(text, str) and text.isdigit():
            pid = int(text)
    return None if pid is None else RunProcess(pid, None, None)


def _local_storage(instance: dg.DagsterInstance) -> bool:
    """A SQLite instance: every process that writes to it runs on this machine."""
    from dagster._core.storage.runs import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def _created_at(instance: dg.DagsterInstance, run_id: str) -> float | None:
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.create_timestamp is None:
        return None
    created = record.create_timestamp
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return created.timestamp()


def _on_this_machine(instance: dg.DagsterInstance, process: RunProcess) -> bool:
    """Whether ``process`` runs (or ran) on this machine, so its pid means something here."""
    return process.host == socket.gethostname() if process.host else _local_storage(instance)


def _process_gone(instance: dg.DagsterInstance, run: dg.DagsterRun, process: RunProcess | None) -> bool:
    """Whether the process of ``run`` is known to be gone. Unknown (no pid, another machine) is
    not gone: such runs are left to the daemon's run monitoring and to the bounded wait."""
    if process is None or not _on_this_machine(instance, process):
        return False
    # the process existed when the run was created; one that started later only reuses the pid
    return not process_alive(process.pid, running_at=_created_at(instance, run.run_id))


# -- recovering dead runs -------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveredRun:
    run_id: str
    status: str  # the status it was left in
    process: str
    pools: list[str]  # the pools it held a slot of (or waited in)
    failed: bool  # marked failed here (False: it had ended, only its slots were freed)

    def describe(self) -> str:
        pools = ", ".join(self.pools) or "no pool"
        if self.failed:
            return (
                f"run {self.run_id} ({self.process}) was left {self.status} by a process that is gone: "
                f"marked failed, and its slots freed ({pools})"
            )
        return f"run {self.run_id} ({self.process}) ended {self.status} but still held slots: freed ({pools})"


def _pools_by_run(instance: dg.DagsterInstance, pools: Collection[str] | None = None) -> dict[str, set[str]]:
    """``{run_id: pools}`` of every run holding a slot of, or queued in, a pool."""
    storage = instance.event_log_storage
    keys = sorted(pools) if pools is not None else sorted(storage.get_concurrency_keys())
    held: dict[str, set[str]] = {}
    for key, info in storage.get_concurrency_infos(keys).items():
        for slot in info.claimed_slots:
            held.setdefault(slot.run_id, set()).add(key)
        for step in info.pending_steps:
            held.setdefault(step.run_id, set()).add(key)
    return held


def _failure_message(process: RunProcess, by: str) -> str:
    return (
        f"The process that ran this run ({process.describe()}) is gone (killed, or its machine "
        f"restarted) without ending it; marked failed by {by}, which freed the run's pool slots."
    )


def recover_dead_runs(
    instance: dg.DagsterInstance,
    *,
    run_ids: Iterable[str] | None = None,
    pools: Collection[str] | None = None,
    notify: Notify | None = _stderr,
    by: str = "lakehouse",
) -> list[RecoveredRun]:
    """Fail every unfinished run whose process is gone and free the pool slots such runs hold.

    Looks at the unfinished runs (or only ``run_ids``) and at the holders of ``pools`` (default:
    every pool). A run whose process is unknown or alive is left alone. Returns what was done and
    says it through ``notify``.
    """
    import dagster as dg
    from dagster._core.events import JobFailureData, RunFailureReason

    storage = instance.event_log_storage
    concurrency = storage.supports_global_concurrency_limits
    held = _pools_by_run(instance, pools) if concurrency else {}
    unfinished = [
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    wanted = set(run_ids) if run_ids is not None else None
    candidates = (
        {}
        if wanted is not None and not wanted  # (an empty run_ids filter would match every run)
        else {
            run.run_id: run
            for run in instance.get_runs(
                filters=dg.RunsFilter(statuses=unfinished, run_ids=sorted(wanted) if wanted is not None else None)
            )
        }
    )
    for run_id in held:
        if run_id not in candidates and (wanted is None or run_id in wanted):
            run = instance.get_run_by_id(run_id)
            if run is not None:
                candidates[run_id] = run
    marker = f"`{by}` (pid {os.getpid()} on {socket.gethostname()})"
    recovered = []
    for run_id, run in candidates.items():
        process = _run_process(instance, run)
        if not _process_gone(instance, run, process):
            continue
        assert process is not None
        failed = run.status in unfinished
        if failed:
            instance.report_run_failed(
                run,
                _failure_message(process, marker),
                JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
            )
        elif run_id not in held:
            continue
        if concurrency:
            storage.free_concurrency_slots_for_run(run_id)
        done = RecoveredRun(run_id, run.status.value, process.describe(), sorted(held.get(run_id, ())), failed)
        recovered.append(done)
        if notify is not None:
            notify(done.describe())
    return recovered


def free_run(instance: dg.DagsterInstance, run_id: str, *, by: str) -> RecoveredRun:
    """Fail ``run_id`` if it has not ended and free every pool slot it holds, whatever its process
    (the person asking knows it no longer runs: on another machine, say)."""
    from dagster._core.events import JobFailureData, RunFailureReason

    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LakehouseError(f"the instance has no run {run_id!r} (see the Runs page of the Dagster UI)")
    held = sorted(_pools_by_run(instance).get(run_id, ()))
    failed = not run.is_finished
    process = _run_process(instance, run)
    label = process.describe() if process else "process unknown"
    if failed:
        message = f"Marked failed by {by}, which freed the run's pool slots (its process: {label})."
        instance.report_run_failed(
            run, message, JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
        )
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return RecoveredRun(run_id, run.status.value, label, held, failed)


# -- launching runs in process --------------------------------------------------------------------


class InProcessRuns:
    """Launch a command's runs in this process on ``instance`` and wait for table slots sanely.

    Use as a context manager; :meth:`execute` runs one job. On entry, dead runs are recovered.
    While the context is open, a step of ours that finds its table's slot taken waits in
    :meth:`_claim` (polling every second, recovering the holder if its process dies, saying what
    it waits for, at most ``max_wait`` seconds); Ctrl-C or SIGTERM stops it. Such a stop, a
    timeout, or an interrupted step fails the run and is raised again by :meth:`execute` (as
    ``KeyboardInterrupt`` or :class:`SlotWaitTimeout`) so the command ends instead of going on
    with its next run.
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        command: str,
        *,
        max_wait: float = SLOT_WAIT_SECONDS,
        notify: Notify | None = None,
    ) -> None:
        self.instance = instance
        self.command = command
        self.max_wait = max_wait
        self.notify = notify or _stderr
        self._original_claim: Callable[..., Any] | None = None
        self._stop: BaseException | None = None

    def __enter__(self) -> InProcessRuns:
        recover_dead_runs(self.instance, notify=self.notify, by=self.command)
        storage = self.instance.event_log_storage
        if storage.supports_global_concurrency_limits:
            # only this instance object's storage, only while the context is open
            self._original_claim = storage.claim_concurrency_slot
            storage.claim_concurrency_slot = self._claim  # type: ignore[method-assign]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._original_claim is not None:
            del self.instance.event_log_storage.claim_concurrency_slot  # back to the class's method
            self._original_claim = None

    @property
    def tags(self) -> dict[str, str]:
        return launch_tags(self.command)

    def execute(self, job: Any, *, tags: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        """``job.execute_in_process`` on the instance, tagged with this process; raises what
        stopped it (Ctrl-C, SIGTERM, a slot wait past the bound) after Dagster failed the run."""
        self._stop = None
        result = job.execute_in_process(instance=self.instance, tags={**(tags or {}), **self.tags}, **kwargs)
        stop, self._stop = self._stop, None
        if stop is not None:
            raise stop
        if _interrupted(result):
            raise KeyboardInterrupt(f"run {result.run_id} was interrupted")
        return result

    # the wait -----------------------------------------------------------------------------------

    def _claim(self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None) -> Any:
        """Dagster's claim, and when the slot is taken, the wait (see the class docstring)."""
        from dagster._core.errors import DagsterExecutionInterruptedError
        from dagster._utils.interrupts import raise_interrupts_as

        claim = self._original_claim
        assert claim is not None
        status = claim(concurrency_key, run_id, step_key, priority)
        if status.is_claimed:
            return status
        started = time.monotonic()
        next_notice = started
        try:
            # Dagster holds signals back while a run executes; here they stop the wait at once
            with raise_interrupts_as(DagsterExecutionInterruptedError):
                while True:
                    recover_dead_runs(
                        self.instance,
                        pools=[concurrency_key],
                        run_ids=self._holders(concurrency_key, run_id),
                        notify=self.notify,
                        by=self.command,
                    )
                    status = claim(concurrency_key, run_id, step_key, priority)
                    if status.is_claimed:
                        if time.monotonic() - started > SLOT_POLL_SECONDS:
                            self.notify(f"{self.command}: {_table(concurrency_key)} is free, {step_key} goes on")
                        return status
                    waited = time.monotonic() - started
                    if waited >= self.max_wait:
                        raise SlotWaitTimeout(
                            f"{self.command} gave up after {waited:.0f}s: "
                            + self._waiting_for(concurrency_key, run_id, step_key)
                        )
                    if time.monotonic() >= next_notice:
                        self.notify(
                            f"{self.command}: "
                            + self._waiting_for(concurrency_key, run_id, step_key)
                            + f" Waiting up to {self.max_wait - waited:.0f}s more; Ctrl-C stops this command."
                        )
                        next_notice = time.monotonic() + SLOT_NOTICE_SECONDS
                    time.sleep(SLOT_POLL_SECONDS)
        except DagsterExecutionInterruptedError as exc:
            self._stop = KeyboardInterrupt(f"stopped while {step_key} waited for {_table(concurrency_key)}")
            raise exc
        except SlotWaitTimeout as exc:
            self._stop = exc
            raise

    def _holders(self, pool: str, run_id: str) -> list[str]:
        return [r for r in _pools_by_run(self.instance, [pool]) if r != run_id]

    def _waiting_for(self, pool: str, run_id: str, step_key: str) -> str:
        """What a step waits for, and what frees it, in words."""
        info = self.instance.event_log_storage.get_concurrency_info(pool)
        holders = [s.run_id for s in info.claimed_slots if s.run_id != run_id]
        holders += [
            p.run_id
            for p in info.pending_steps
            if p.assigned_timestamp is not None and p.run_id not in (run_id, *holders)
        ]
        text = f"step {step_key} of run {run_id} waits for {_table(pool)} (pool {pool!r}, {info.limit} slot(s))"
        if not holders:
            return text + ", queued behind other runs' steps."
        parts = []
        for holder in dict.fromkeys(holders):
            run = self.instance.get_run_by_id(holder)
            status = run.status.value if run is not None else "deleted"
            process = _run_process(self.instance, run) if run is not None else None
            who = process.describe() if process else "its process unknown: a daemon run, or another machine"
            stop = (
                f"stop it with `kill {process.pid}`"
                if process is not None and _on_this_machine(self.instance, process)
                else "terminate it in the Dagster UI"
            )
            parts.append(
                f"held by run {holder} ({status}, {who}). It is freed when that run ends: {stop}, or if it no "
                f"longer runs, `lakehouse runs free {holder}`"
            )
        return text + ", " + "; ".join(parts) + "."


def _table(pool: str) -> str:
    return f"table {pool.removeprefix(POOL_PREFIX)}" if pool.startswith(POOL_PREFIX) else f"pool {pool}"


def _interrupted(result: Any) -> bool:
    """Whether Ctrl-C or SIGTERM ended the run (Dagster fails it and returns normally)."""
    from dagster._core.events import RunFailureReason

    return any(
        event.is_job_failure
        and getattr(event.event_specific_data, "failure_reason", None) == RunFailureReason.UNEXPECTED_TERMINATION
        for event in result.all_events
    )
