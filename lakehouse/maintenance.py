"""Table maintenance as a nightly job: every table is visited by its own op, which looks at the
table's stats and its policy and decides what it needs (compaction, clustering, vacuum,
dropping expired partitions). Each op runs in the same concurrency pool as the op that writes
the table, so maintenance never races a writer. What each op did is recorded as an asset
observation on the table (visible in the UI next to its materializations).

Policy comes from the asset's metadata (defaults from settings):

``lakehouse/retention_days``            versions kept readable (time travel, restore)
``lakehouse/partition_retention_days``  partitions older than this are dropped (opt-in)
``lakehouse/zorder_by``                 columns to cluster by when the table is compacted
``lakehouse/compact_below_bytes``       compact when the average file is smaller than this
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from lakehouse.naming import TableRef, pool_for
from lakehouse.resource import LakeResource
from lakehouse.tables import Lake, col

__all__ = [
    "MAINTENANCE_JOB",
    "Action",
    "Policy",
    "build_maintenance",
    "maintain",
    "plan_maintenance",
    "policy_from_metadata",
]

MAINTENANCE_JOB = "nightly_maintenance"
DEFAULT_RETENTION_DAYS = 7
DEFAULT_COMPACT_BELOW = 32 * 1024 * 1024
MIN_FILES_TO_COMPACT = 8


@dataclass(frozen=True)
class Policy:
    retention: dt.timedelta = dt.timedelta(days=DEFAULT_RETENTION_DAYS)
    partition_column: str | None = None
    partition_retention_days: int | None = None
    zorder_by: tuple[str, ...] = ()
    compact_below_bytes: int = DEFAULT_COMPACT_BELOW
    min_files: int = MIN_FILES_TO_COMPACT


@dataclass(frozen=True)
class Action:
    kind: str  # drop_partitions, compact, zorder, vacuum
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)


def _value(meta: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = meta.get(key, default)
    return getattr(value, "value", value)


def policy_from_metadata(meta: Mapping[str, Any]) -> Policy:
    zorder = _value(meta, "lakehouse/zorder_by", ()) or ()
    return Policy(
        retention=dt.timedelta(days=float(_value(meta, "lakehouse/retention_days", DEFAULT_RETENTION_DAYS))),
        partition_column=_value(meta, "partition_expr"),
        partition_retention_days=_value(meta, "lakehouse/partition_retention_days"),
        zorder_by=tuple(zorder),
        compact_below_bytes=int(_value(meta, "lakehouse/compact_below_bytes", DEFAULT_COMPACT_BELOW)),
    )


def plan_maintenance(files: int, avg_file_bytes: int, policy: Policy) -> list[Action]:
    """What a table with these stats needs under ``policy`` (vacuum always: it is cheap and bounded)."""
    actions = []
    if policy.partition_retention_days is not None and policy.partition_column:
        actions.append(
            Action("drop_partitions", f"partitions older than {policy.partition_retention_days} days expire")
        )
    if files >= policy.min_files and avg_file_bytes < policy.compact_below_bytes:
        reason = f"{files} files averaging {avg_file_bytes} bytes (< {policy.compact_below_bytes})"
        actions.append(Action("compact", reason))
        if policy.zorder_by:
            actions.append(Action("zorder", f"cluster by {', '.join(policy.zorder_by)} after compaction"))
    actions.append(Action("vacuum", f"remove files older than the {policy.retention} retention window"))
    return actions


def maintain(
    lake: Lake, ref: TableRef, policy: Policy, *, today: dt.date | None = None, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Run the planned actions on one table; returns a record per action (what it did)."""
    store = lake.existing_store(ref)
    info = store.info(ref)
    done: list[dict[str, Any]] = []
    for action in plan_maintenance(info.files, info.avg_file_bytes, policy):
        record: dict[str, Any] = {"action": action.kind, "reason": action.reason}
        if action.kind == "drop_partitions":
            assert policy.partition_column and policy.partition_retention_days is not None
            cutoff = (today or dt.date.today()) - dt.timedelta(days=policy.partition_retention_days)
            where = col(policy.partition_column) < cutoff
            old = store.count(ref, where)
            record.update(cutoff=cutoff.isoformat(), rows=old)
            if old and not dry_run:
                record["version"] = store.delete(
                    ref, where, commit_metadata={"lakehouse_maintenance": "drop_partitions"}
                ).version
        elif dry_run:
            record["dry_run"] = True
        elif action.kind == "compact":
            r = store.compact(ref)
            record.update(files_before=r.files_before, files_after=r.files_after, version=r.version)
        elif action.kind == "zorder":
            r = store.sort_files(ref, policy.zorder_by)
            record.update(files_after=r.files_after, version=r.version)
        elif action.kind == "vacuum":
            r = store.vacuum(ref, retention=policy.retention)
            record.update(
                files_removed=r.files_removed,
                bytes_removed=r.bytes_removed,
                **{k: v for k, v in r.details.items() if isinstance(v, int)},
            )
        done.append(record)
    return done


def _op_for(ref: TableRef, pool: str, policy: Policy) -> dg.OpDefinition:
    @dg.op(
        name=f"maintain__{ref.layer}__{ref.domain}__{ref.name}",
        pool=pool,
        description=f"Maintain {ref}: compaction, clustering, vacuum, expired partitions.",
    )
    def _maintain(context: dg.OpExecutionContext, lake: LakeResource) -> None:
        the_lake = lake.lake()
        if the_lake.format_of(ref) is None:
            context.log.info(f"{ref} does not exist yet; nothing to maintain")
            return
        records = maintain(the_lake, ref, policy)
        from lakehouse.governance.audit import record

        details = {"actions": records}
        record(the_lake.settings, action="maintenance", target=str(ref), details=details, run_id=context.run_id)
        info = the_lake.existing_store(ref).info(ref)
        context.log_event(
            dg.AssetObservation(
                asset_key=dg.AssetKey(ref.path),
                description="Nightly maintenance",
                metadata={
                    "maintenance/actions": dg.MetadataValue.json(records),
                    "files": info.files,
                    "size_bytes": info.size_bytes,
                    "version": info.version or -1,
                },
            )
        )

    return _maintain


def build_maintenance(
    assets: Sequence[Any], *, cron: str = "0 3 * * *"
) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """One op per table in ``assets`` (each in its writer's pool), a job running them all and a
    nightly schedule (running by default)."""
    ops: list[dg.OpDefinition] = []
    for assets_def in assets:
        if not isinstance(assets_def, dg.AssetsDefinition):
            continue
        pool = getattr(assets_def.node_def, "pool", None)
        for key in assets_def.keys:
            if len(key.path) != 3:
                continue
            ref = TableRef.from_key(key)
            spec = assets_def.specs_by_key[key]
            ops.append(_op_for(ref, pool or pool_for(ref), policy_from_metadata(spec.metadata)))

    @dg.graph(name=MAINTENANCE_JOB)
    def _all() -> None:
        for op in ops:
            op()

    job = _all.to_job(description="Visit every table: compact, cluster, vacuum and expire what its policy says.")
    schedule = dg.ScheduleDefinition(
        name="nightly_maintenance_schedule",
        job=job,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return job, schedule
