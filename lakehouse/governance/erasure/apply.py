"""Step 3 of an erasure: carry out the journaled plan, holding the writers' pools.

Every step is idempotent (a delete by exact keys, a landing record blanked once, a purge) and is
marked done in the journal when it finishes, so a rerun after a crash resumes where it stopped.
While the steps run — and until the verification is done — the erasure holds the Dagster
concurrency pool of every table that could hold the subject (the pool its writer op and its
maintenance share, one slot each): no run can write the subject back between the delete and the
verification, and a run that read the subject's rows before the erasure has committed them before
the erasure deletes. Runs that do not go through Dagster's pools are covered by the purge: it
deletes only files a committed version named, or files older than a safety window, never the
fresh files of a write still in flight.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lakehouse.governance.erasure.journal import Journal, kill_point
from lakehouse.governance.erasure.plan import ErasureError, ErasurePlan, TablePlan, plan_erasure
from lakehouse.governance.erasure.verify import Verification, verify_absent
from lakehouse.governance.masking import keyed_hash, masking_key
from lakehouse.governance.policy import Policy, load_policy
from lakehouse.naming import TableRef, join_uri
from lakehouse.settings import Settings
from lakehouse.storage import filesystem, read_bytes, write_bytes
from lakehouse.tables import Lake, TableStore

__all__ = [
    "GRACE",
    "POOL_WAIT",
    "ErasureResult",
    "Launcher",
    "blank_records",
    "dagster_launcher",
    "erase",
    "erase_online",
    "hold_pools",
    "purge",
    "subject_hashes",
]

#: files no committed version names are kept this long: they may be a running write's
GRACE = dt.timedelta(hours=1)
#: how long the erasure waits for the writers of its tables to give their pools back
POOL_WAIT = dt.timedelta(hours=1)
#: claims ahead of writers queued behind it (Dagster pools serve the highest priority first)
_PRIORITY = 1000
_LINE_FORMATS = ("csv", "tsv", "ndjson", "log")

#: recompute the derived assets of a plan: ``(asset key path, partitions)`` -> a record per run
Launcher = Callable[[Sequence[tuple[list[str], list[str]]]], list[dict[str, Any]]]


# -- pools ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def hold_pools(
    instance: Any, pools: Sequence[str], owner: str, *, wait: dt.timedelta = POOL_WAIT
) -> Iterator[list[str]]:
    """Claim one slot of each pool (waiting for the writer holding it), as a Dagster step would,
    and give them back on exit. ``owner`` is stable across reruns of one erasure, so the slots a
    killed attempt never gave back are freed first. A pool with no limit lets any number of
    writers in: it is given one slot (the project's dagster.yaml gives every pool one)."""
    events = getattr(instance, "event_log_storage", None)
    if events is None or not pools or not events.supports_global_concurrency_limits:
        yield []
        return
    events.free_concurrency_slots_for_run(owner)
    held: list[str] = []
    try:
        for pool in sorted(set(pools)):  # one order for every erasure: two cannot deadlock
            if events.get_concurrency_info(pool).slot_count == 0:
                events.initialize_concurrency_limit_to_default(pool)
                if events.get_concurrency_info(pool).slot_count == 0:
                    events.set_concurrency_slots(pool, 1)
            deadline, delay = time.monotonic() + wait.total_seconds(), 0.1
            while not events.claim_concurrency_slot(pool, owner, f"erasure:{pool}", _PRIORITY).is_claimed:
                if time.monotonic() > deadline:
                    raise ErasureError(
                        f"pool {pool} stayed busy for {wait}: its writer is still running; nothing was deleted "
                        "in the tables it guards — run the erasure again to resume it"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            held.append(pool)
        yield held
    finally:
        events.free_concurrency_slots_for_run(owner)


# -- landing files ----------------------------------------------------------------------------------


def _replace(settings: Settings, uri: str, data: bytes) -> None:
    """Replace a file atomically: a crash leaves the old or the new content, never half of it."""
    if uri.startswith("s3://"):
        write_bytes(settings, uri, data)  # an S3 put is atomic
        return
    _fs, path = filesystem(settings, uri)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.erasure-tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _record_starts(read: Any) -> list[int]:
    """The line each record of a read (rows and quarantine) starts on."""
    return sorted(
        set(read.rows.get_column("_source_line").to_list())
        | set(read.quarantine.get_column("_source_line").drop_nulls().to_list())
    )


def blank_records(settings: Settings, file: str, lines: set[int]) -> int:
    """Replace the records starting at ``lines`` in one landing file with empty lines; returns the
    records removed (0 when already done). Refuses, changing nothing, when the result does not read
    back as exactly the other records."""
    from lakehouse.ingest.readers import detect_format, read_file
    from lakehouse.ingest.text import decompress, detect_encoding

    uri = join_uri(settings.landing, file)
    try:
        original = read_bytes(settings, uri)
    except (FileNotFoundError, OSError):
        return 0  # not a file (an API page) or already gone
    data, compression = decompress(original)
    fmt = detect_format(file, data)
    if fmt not in _LINE_FORMATS:
        raise ErasureError(
            f"landing file {file} ({fmt}) holds records of the subject but only line-based files "
            f"({', '.join(_LINE_FORMATS)}) can be edited safely; remove it or rewrite it without lines {sorted(lines)}"
        )
    # read as ingestion did: bronze's lines are record starts. A header-less file whose first record
    # is all text reads by default as having a header (its source spec says otherwise, and erasure
    # does not read the code location's specs): when the default read misses a planned line, the
    # file is read without a header
    options: dict[str, Any] = {}
    before = read_file(data, source=file, fmt=fmt)
    starts = _record_starts(before)
    if fmt in ("csv", "tsv") and not set(lines) <= set(starts):
        headerless = read_file(data, source=file, fmt=fmt, options={"header": False})
        if set(lines) <= set(_record_starts(headerless)):
            options, before, starts = {"header": False}, headerless, _record_starts(headerless)
    present = [s for s in starts if s in lines]
    if not present:
        return 0
    encoding = detect_encoding(data)
    wide = encoding.encoding.startswith("utf-16")
    text: Any = data[encoding.bom :].decode(encoding.encoding) if wide else data
    newline: Any = "\n" if wide else b"\n"
    physical = text.split(newline)
    blank: set[int] = set()
    for i, start in enumerate(starts):
        if start in lines:
            if fmt not in ("csv", "tsv"):
                end = start + 1  # one record per line
            else:  # a quoted field may span lines: the record ends where the next one starts
                end = starts[i + 1] if i + 1 < len(starts) else len(physical) + 1
            blank.update(range(start, end))
    for number in blank:
        if 1 <= number <= len(physical):
            keep_cr = physical[number - 1].endswith("\r" if wide else b"\r")
            physical[number - 1] = ("\r" if wide else b"\r") if keep_cr else ("" if wide else b"")
    body = newline.join(physical)
    edited: bytes = (data[: encoding.bom] + body.encode(encoding.encoding)) if wide else body
    after = read_file(edited, source=file, fmt=fmt, options=options)
    expected = before.rows_read - len(present)
    kept_lines = set(_record_starts(after))
    if after.rows_read != expected or kept_lines & set(present):
        raise ErasureError(
            f"landing file {file}: removing {len(present)} record(s) would not leave exactly the other "
            f"{expected} records ({after.rows_read} read back); the file was not changed"
        )
    if compression:
        edited = gzip.compress(edited, mtime=0)
    _replace(settings, uri, edited)
    return len(present)


# -- online store, recompute, purge -----------------------------------------------------------------


def erase_online(settings: Settings, values: Mapping[str, set[object]]) -> dict[str, Any]:
    try:
        from lakehouse.features import online  # written by the feature store
    except ImportError:
        return {"status": "unavailable: lakehouse.features.online is not installed"}
    erase_fn: Callable[..., Mapping[str, int]] | None = getattr(online, "erase", None)
    if erase_fn is None:
        return {"status": "unavailable: lakehouse.features.online.erase is missing"}
    removed: dict[str, int] = {}
    for column, vs in values.items():
        for view, n in erase_fn(settings, column=column, values=sorted(vs, key=str)).items():
            removed[view] = removed.get(view, 0) + int(n)
    return {"status": "erased", "removed": removed}


def dagster_launcher(defs: Any, instance: Any) -> Launcher:
    """Recompute derived assets of ``defs`` (the code location the caller passes in) in process,
    one run per partition range, their freshness checks left to their own schedule."""

    def launch(recompute: Sequence[tuple[list[str], list[str]]]) -> list[dict[str, Any]]:
        if not recompute:
            return []
        import dagster as dg
        from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

        from lakehouse.automation import FRESHNESS_CHECK
        from lakehouse.instance import InProcessRuns

        done = []
        # a persistent instance is shared with other commands and the daemon: its runs are launched
        # like every command's (tagged with this process, a bounded and interruptible slot wait)
        runs = None if instance is None or instance.is_ephemeral else InProcessRuns(instance, "lakehouse erase")
        groups: dict[tuple[str, ...], list[list[str]]] = {}
        for key, days in recompute:
            groups.setdefault(tuple(days), []).append(key)
        graph = defs.resolve_asset_graph()
        for n, (partitions, keys) in enumerate(sorted(groups.items())):
            name = f"lakehouse_erasure_recompute_{n}"
            asset_keys = [dg.AssetKey(k) for k in keys]
            # freshness says how old the data is, not whether it reconciles: judged on its own schedule
            freshness = [c for c in graph.asset_check_keys if c.asset_key in asset_keys and c.name == FRESHNESS_CHECK]
            selection: dg.AssetSelection = dg.AssetSelection.assets(*asset_keys)
            if freshness:
                selection = selection - dg.AssetSelection.checks(*freshness)
            job = dg.define_asset_job(name, selection=selection)
            resolved = dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def(name)
            tags = (
                {ASSET_PARTITION_RANGE_START_TAG: partitions[0], ASSET_PARTITION_RANGE_END_TAG: partitions[-1]}
                if partitions
                else {}
            )
            run_tags = {**tags, "lakehouse/erasure": "recompute"}
            quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
            if runs is not None:
                with runs:
                    result = runs.execute(resolved, tags=run_tags, raise_on_error=False, run_config=quiet)
            else:
                result = resolved.execute_in_process(
                    instance=instance, tags=run_tags, raise_on_error=False, run_config=quiet
                )
            checks = [
                {
                    "check": f"{e.asset_key.to_user_string()}:{e.check_name}",
                    "passed": e.passed,
                    "severity": e.severity.value,
                }
                for e in result.get_asset_check_evaluations()
            ]
            done.append(
                {
                    "assets": ["/".join(k) for k in keys],
                    "partitions": list(partitions),
                    "run_id": result.run_id,
                    "success": result.success,
                    "checks": checks,
                }
            )
        return done

    return launch


def purge(store: TableStore, ref: TableRef, *, grace: dt.timedelta = GRACE) -> str:
    """Remove every old version, change-feed file and log entry that still holds deleted rows,
    sparing the files of a write in flight (see the stores' ``purge_history_sparing_writes``)."""
    sparing = getattr(store, "purge_history_sparing_writes", None)
    if callable(sparing):
        sparing(ref, grace=grace)
        return "purged"
    store.vacuum(ref, retention=grace)  # a store without it: only what the window allows
    return "vacuumed"


# -- the erasure: plan -> journal -> apply -> verify ------------------------------------------------


@dataclass
class ErasureResult:
    request_id: str
    dry_run: bool
    plan: ErasurePlan
    tables: list[dict[str, Any]] = field(default_factory=list)
    landing: list[dict[str, Any]] = field(default_factory=list)
    online_store: dict[str, Any] = field(default_factory=dict)
    recomputed: list[dict[str, Any]] = field(default_factory=list)
    verification: Verification | None = None
    seconds: float = 0.0
    audit_seq: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: this run finished an erasure an earlier, interrupted run had journaled
    resumed: bool = False
    #: the Dagster pools held while deleting and verifying
    pools: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.dry_run or (self.verification is not None and self.verification.passed)

    def summary(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "dry_run": self.dry_run,
            "resumed": self.resumed,
            "subject_column": self.plan.column,
            "rows": self.plan.rows,
            "tables": self.tables
            or [{"table": str(t.ref), "rows": t.rows, "partitions": t.partitions} for t in self.plan.tables],
            "landing": self.landing
            or [{"file": f, "records": len(lines)} for f, lines in sorted(self.plan.landing_records().items())],
            "recompute": [{"asset": "/".join(k), "partitions": p} for k, p in self.plan.recompute],
            "recomputed": self.recomputed,
            "online_store": self.online_store,
            "pools": self.pools,
            "verification": asdict(self.verification) if self.verification else None,
            "seconds": round(self.seconds, 2),
            "timings": self.timings,
            "audit_seq": self.audit_seq,
            "passed": self.passed,
        }


def subject_hashes(settings: Settings, values: Mapping[str, set[object]]) -> dict[str, list[str]]:
    """Keyed hashes of the subject's identifiers, as recorded in the certificate."""
    key = masking_key(settings)
    return {c: sorted({h for v in vs if (h := keyed_hash(v, key)) is not None}) for c, vs in sorted(values.items())}


def _plan_to_json(plan: ErasurePlan) -> dict[str, Any]:
    return {
        "column": plan.column,
        "value": plan.value,
        "values": {c: sorted(vs, key=str) for c, vs in plan.values.items()},
        "tables": [t.to_json() for t in plan.tables],
        "recompute": [[k, p] for k, p in plan.recompute],
        "pools": plan.pools,
    }


def _plan_from_json(doc: Mapping[str, Any], policy: Policy) -> ErasurePlan:
    return ErasurePlan(
        column=doc["column"],
        value=doc["value"],
        subject=policy.subject_for(doc["column"]),
        values={c: set(vs) for c, vs in doc["values"].items()},
        tables=[TablePlan.from_json(t) for t in doc["tables"]],
        recompute=[(list(k), list(p)) for k, p in doc["recompute"]],
        pools=list(doc["pools"]),
    )


def _absorb(plan: ErasurePlan, fresh: ErasurePlan, journal: Journal) -> None:
    """Add what a search made under the pools found (rows written while the erasure waited, or
    since an interrupted attempt) to the journaled plan, and mark the steps to run again."""
    for c, vs in fresh.values.items():
        plan.values.setdefault(c, set()).update(vs)
    mine = {str(t.ref): t for t in plan.tables}
    landing_before = plan.landing_records()
    for t in fresh.tables:
        if str(t.ref) not in mine:
            plan.tables.append(t)
            journal.undo(f"delete:{t.ref}", f"purge:{t.ref}", "verify")
        elif mine[str(t.ref)].absorb(t):
            journal.undo(f"delete:{t.ref}", f"purge:{t.ref}", "verify")
    for file, lines in plan.landing_records().items():
        if lines - landing_before.get(file, set()):
            journal.undo(f"landing:{file}")
    known = {(tuple(k), tuple(p)) for k, p in plan.recompute}
    plan.recompute.extend((k, p) for k, p in fresh.recompute if (tuple(k), tuple(p)) not in known)
    plan.pools = sorted({*plan.pools, *fresh.pools})
    journal.plan = _plan_to_json(plan)
    journal.save()


def _default_instance() -> Any:
    """The Dagster instance of ``$DAGSTER_HOME`` (whose pools the writers use), else None."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    import dagster as dg

    return dg.DagsterInstance.get()


def _certificate_seq(settings: Settings, request_id: str) -> int | None:
    """The audit entry of a passed certificate an interrupted run already recorded (not twice)."""
    from lakehouse.governance.audit import read_entries

    for entry in read_entries(settings):
        details = entry.details_json
        if (
            entry.action == "erasure"
            and details.get("request_id") == request_id
            and (details.get("verification") or {}).get("passed")
        ):
            return int(entry.seq)
    return None


def erase(
    settings: Settings,
    *,
    column: str,
    value: object,
    dry_run: bool = False,
    actor: str | None = None,
    reason: str | None = None,
    policy: Policy | None = None,
    defs: Any = None,
    instance: Any = None,
    recompute: bool = True,
    launcher: Launcher | None = None,
    grace: dt.timedelta = GRACE,
    pool_wait: dt.timedelta = POOL_WAIT,
) -> ErasureResult:
    """Erase the subject ``column = value``: plan, journal, apply (holding the writers' pools),
    verify, certify. An erasure of the same subject that was interrupted is resumed from its
    journal.

    ``defs``: the code location, passed in by the caller (the CLI, the governance assets) — this
    package never imports it; with ``recompute``, its derived assets are recomputed (through
    ``launcher``, default: in-process Dagster runs). ``instance``: the Dagster instance whose pools
    the writers hold (default: ``$DAGSTER_HOME``'s). ``grace``: how old a file no version names
    must be before the purge may delete it (younger ones may belong to a write in flight).
    """
    started = time.perf_counter()
    mark = started
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[step] = round(timings.get(step, 0.0) + now - mark, 2)
        mark = now

    policy = policy or load_policy()
    lake = Lake(settings)
    if instance is None and not dry_run:
        instance = _default_instance()
    plan_defs = defs if recompute else None
    if recompute and launcher is None and defs is not None:
        launcher = dagster_launcher(defs, instance)
    journal = None if dry_run else Journal.load(settings, column, value)
    if journal is not None:
        plan = _plan_from_json(journal.plan, policy)
    else:
        plan = plan_erasure(settings, column, value, policy=policy, lake=lake, defs=plan_defs, instance=instance)
    result = ErasureResult(
        request_id=journal.request_id if journal else uuid.uuid4().hex,
        dry_run=dry_run,
        plan=plan,
        resumed=journal is not None,
        timings=timings,
    )
    lap("plan")
    if dry_run:
        result.seconds = time.perf_counter() - started
        return result
    if journal is None:
        journal = Journal.create(settings, column, value, result.request_id, _plan_to_json(plan))
        journal.finish("planned")
    lap("journal")
    commit = {"lakehouse_erasure": result.request_id}
    with hold_pools(instance, plan.pools, f"erasure-{result.request_id}", wait=pool_wait) as held:
        result.pools = held
        lap("pools")
        # searched again under the pools: what was written while the erasure waited, or since an
        # interrupted attempt, with the values the journal remembers (their rows may be gone)
        fresh = plan_erasure(
            settings, column, value, policy=policy, lake=lake, defs=plan_defs, instance=instance, known=plan.values
        )
        _absorb(plan, fresh, journal)
        lap("plan")
        landing = journal.results.setdefault("landing", {})
        for file, lines in sorted(plan.landing_records().items()):
            if not journal.is_done(step := f"landing:{file}"):
                landing[file] = int(landing.get(file, 0)) + blank_records(settings, file, lines)
                journal.finish(step)
        lap("landing")
        tables = journal.results.setdefault("tables", {})
        for t in plan.tables:
            entry = tables.setdefault(
                str(t.ref), {"format": t.format, "version_before": t.version_before, "deleted": 0}
            )
            where = t.where
            if where is not None and not journal.is_done(step := f"delete:{t.ref}"):
                deleted = lake.store(t.format).delete(t.ref, where, commit_metadata=commit)  # type: ignore[arg-type]
                entry["deleted"] = int(entry["deleted"]) + int(deleted.rows_deleted or 0)
                journal.finish(step)
        lap("delete")
        if not journal.is_done("online"):
            journal.results["online_store"] = erase_online(settings, plan.values)
            journal.finish("online")
        lap("online_store")
        if not journal.is_done("recompute"):
            journal.results["recomputed"] = launcher(plan.recompute) if recompute and launcher else []
            journal.finish("recompute")
        lap("recompute")
        for t in plan.tables:
            if not journal.is_done(step := f"purge:{t.ref}"):
                store = lake.store(t.format)  # type: ignore[arg-type]
                tables[str(t.ref)]["history"] = purge(store, t.ref, grace=grace)
                tables[str(t.ref)]["version_after"] = store.version(t.ref)
                journal.finish(step)
        lap("purge_history")
        result.verification = verify_absent(
            settings,
            plan.values,
            lake=lake,
            residue_tables=[t.ref for t in plan.tables],
            landing_files=sorted(plan.landing_records()),
        )
        kill_point("verify")
        lap("verify")
    result.tables = [
        {
            "table": str(t.ref),
            "format": t.format,
            "rows_removed": max(t.rows, int(tables[str(t.ref)]["deleted"])),
            "version_before": tables[str(t.ref)]["version_before"],
            "history": tables[str(t.ref)].get("history"),
            "version_after": tables[str(t.ref)].get("version_after"),
        }
        for t in plan.tables
    ]
    result.landing = [{"file": f, "records_removed": n} for f, n in sorted(landing.items())]
    result.online_store = journal.results.get("online_store", {})
    result.recomputed = journal.results.get("recomputed", [])
    result.seconds = time.perf_counter() - started
    from lakehouse.governance.audit import record

    value_hash = keyed_hash(plan.value, masking_key(settings))
    certificate: dict[str, Any] = {
        "request_id": result.request_id,
        "subject": {"type": plan.subject.name, "column": plan.column, "value_hash": value_hash},
        "identifiers": subject_hashes(settings, plan.values),
        "reason": reason,
        "tables": result.tables,
        "rows_removed": sum(int(t["rows_removed"] or 0) for t in result.tables),
        "landing": result.landing,
        "online_store": result.online_store,
        "recomputed": result.recomputed,
        "pools": result.pools,
        "resumed": result.resumed,
        "verification": asdict(result.verification),
        "seconds": round(result.seconds, 2),
        "timings": result.timings,
    }
    if not result.verification.passed:  # kept: running it again resumes, searches and verifies again
        journal.undo("verify")
        journal.save()
    seq = _certificate_seq(settings, result.request_id) if result.resumed and result.verification.passed else None
    if seq is None:
        seq = record(
            settings, action="erasure", target=f"{plan.column}=#{value_hash}", details=certificate, actor=actor
        ).seq
    result.audit_seq = seq
    if result.verification.passed:
        journal.delete()  # it holds the subject's identifiers: gone with the erasure
    return result
