"""Delta Lake tables through delta-rs (``deltalake``)."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema, write_deltalake
from deltalake.exceptions import CommitFailedError
from deltalake.exceptions import TableNotFoundError as DeltaNotFound

from lakehouse.exceptions import ChangeFeedUnavailableError, TableNotFoundError
from lakehouse.naming import LAYERS, TableRef, join_uri
from lakehouse.sql import quote_ident, quote_literal
from lakehouse.storage import ensure_bucket, filesystem, object_store_options
from lakehouse.tables.base import (
    Commit,
    MaintenanceResult,
    MergePlan,
    StalePlanError,
    TableInfo,
    TableStore,
    WriteResult,
)
from lakehouse.tables.predicates import Predicate, split_large_in, to_polars, to_sql
from lakehouse.tables.schema import conform, plan_write

__all__ = ["CHANGE_FEED", "DeltaStore"]

CHANGE_FEED = "delta.enableChangeDataFeed"
_LOG_RETENTION = "delta.logRetentionDuration"
_LARGEST_IN_LIST = 1000  # delta-rs parses a predicate as SQL; ~30k IN values crash it (SIGSEGV)

_STANDARD_COMMIT_KEYS = {
    "timestamp",
    "operation",
    "operationParameters",
    "operationMetrics",
    "engineInfo",
    "clientVersion",
    "version",
    "readVersion",
    "isBlindAppend",
    "userMetadata",
}


def _utc(ms: int | float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


class DeltaStore(TableStore):
    """Delta Lake implementation of :class:`TableStore`. Versions count commits from 0."""

    format = "delta"

    @classmethod
    def _is_lost_race(cls, error: Exception) -> bool:
        """delta-rs' ``CommitFailedError``: a concurrent commit conflicts with this one (it added
        rows this write should have read, removed files it read...). delta-rs already re-committed
        on the next version when the winner did not conflict; this one committed nothing."""
        return isinstance(error, CommitFailedError) or super()._is_lost_race(error)

    def _options(self, uri: str) -> dict[str, str] | None:
        return object_store_options(self.settings, uri)

    def _table(self, ref: TableRef, version: int | None = None) -> DeltaTable:
        uri = self.location(ref)
        try:
            return DeltaTable(uri, version=version, storage_options=self._options(uri))
        except DeltaNotFound:
            raise TableNotFoundError(f"Delta table {ref} does not exist at {uri}") from None
        except Exception as exc:  # deltalake raises generic errors for a missing version
            if version is not None and "version" in str(exc).lower():
                raise TableNotFoundError(f"Delta table {ref} has no version {version}: {exc}") from None
            raise

    def _refreshed(self, table: DeltaTable | None, ref: TableRef) -> DeltaTable:
        """The table after a commit: replay only the new log entries when we already hold it."""
        if table is None:
            return self._table(ref)
        table.update_incremental()
        return table

    def _commit_properties(self, commit_metadata: Mapping[str, str] | None) -> CommitProperties | None:
        if not commit_metadata:
            return None
        return CommitProperties(custom_metadata={k: str(v) for k, v in commit_metadata.items()})

    def exists(self, ref: TableRef) -> bool:
        uri = self.location(ref)
        if uri.startswith("s3://"):
            ensure_bucket(self.settings, uri)
        return DeltaTable.is_deltatable(uri, storage_options=self._options(uri))

    def schema(self, ref: TableRef) -> pa.Schema:
        return pa.schema(self._table(ref).schema().to_arrow())

    def partition_columns(self, ref: TableRef) -> tuple[str, ...]:
        return tuple(self._table(ref).metadata().partition_columns)

    def _evolve(self, table: DeltaTable, new_columns: Sequence[pa.Field]) -> None:
        """Add columns ahead of a MERGE (delta-rs' merge_schema would also add our op column)."""
        if new_columns:
            fields = list(Schema.from_arrow(pa.schema(list(new_columns))).fields)
            table.alter.add_columns(fields)

    def _write(
        self,
        ref: TableRef,
        data: pa.Table,
        *,
        mode: str,
        predicate: Predicate | None,
        partition_by: Sequence[str],
        properties: Mapping[str, str] | None,
        commit_metadata: Mapping[str, str] | None,
    ) -> WriteResult:
        uri = self.location(ref)
        ensure_bucket(self.settings, uri)
        delta_mode: Any = {"append": "append", "overwrite": "overwrite", "replace_where": "overwrite"}[mode]

        def attempt() -> tuple[DeltaTable | None, pa.Table, tuple[str, ...]]:
            # one attempt = read the table, plan, commit based on the version read: after a lost
            # race (a partition replaced meanwhile, a column added) it starts again from the new version
            table: DeltaTable | None = None
            if DeltaTable.is_deltatable(uri, storage_options=self._options(uri)):
                table = self._table(ref)  # loaded once: the log replay is the main fixed cost of a write
            body, added = data, tuple[str, ...]()
            if table is not None:
                plan = plan_write(str(ref), pa.schema(table.schema().to_arrow()), data.schema)
                body = conform(data, plan.target, table_name=str(ref))  # raises before any commit
                added = tuple(f.name for f in plan.new_columns)
            exists = table is not None
            # creating the table there is nothing to replace; but if another writer creates it first,
            # an append would leave its rows of the partition beside ours: "error" fails, and we retry
            write_mode: Any = "error" if not exists and mode == "replace_where" else delta_mode
            try:
                write_deltalake(
                    table if table is not None else uri,
                    body,
                    mode=write_mode,
                    predicate=to_sql(predicate) if (predicate is not None and exists) else None,
                    partition_by=None if exists else (list(partition_by) or None),
                    # new columns are added in the same commit as the data (atomic), never in a commit of their own
                    schema_mode="merge" if added else None,
                    # every table keeps a change data feed, so downstream tables can read only what changed
                    configuration=None if exists else {CHANGE_FEED: "true", **(properties or {})},
                    commit_properties=self._commit_properties(commit_metadata),
                    storage_options=self._options(uri),
                )
            except Exception as exc:
                if not exists and not self._is_lost_race(exc) and self.exists(ref):
                    raise StalePlanError(f"Delta table {ref} was created by another writer meanwhile") from exc
                raise
            return table, body, added

        table, data, added = self._retry_lost_races(attempt)
        exists = table is not None
        operation = {"append": "APPEND", "overwrite": "OVERWRITE", "replace_where": "OVERWRITE_PARTITIONS"}[mode]
        return WriteResult(
            table=str(ref),
            uri=uri,
            format="delta",
            operation=operation if exists else "CREATE",
            version=self._refreshed(table, ref).version(),
            rows_written=data.num_rows,
            columns_added=added,
        )

    def _create_for_merge(
        self,
        ref: TableRef,
        data: pa.Table,
        partition_by: Sequence[str],
        properties: Mapping[str, str] | None,
        commit_metadata: Mapping[str, str] | None,
    ) -> WriteResult | None:
        """Create the table holding ``data`` in version 0, only if no other writer created it first
        (``mode="error"``: a table found at the path, or a lost race for version 0, is an error)."""
        uri = self.location(ref)
        ensure_bucket(self.settings, uri)
        try:
            write_deltalake(
                uri,
                data,
                mode="error",
                partition_by=list(partition_by) or None,
                configuration={CHANGE_FEED: "true", **(properties or {})},
                commit_properties=self._commit_properties(commit_metadata),
                storage_options=self._options(uri),
            )
        except Exception as exc:
            if self._is_lost_race(exc) or DeltaTable.is_deltatable(uri, storage_options=self._options(uri)):
                raise StalePlanError(f"Delta table {ref} was created by another writer meanwhile") from exc
            raise
        return WriteResult(
            table=str(ref),
            uri=uri,
            format="delta",
            operation="CREATE",
            version=0,
            rows_written=data.num_rows,
        )

    def _apply_merge(
        self, ref: TableRef, plan: MergePlan, keys: Sequence[str], commit_metadata: Mapping[str, str] | None
    ) -> WriteResult:
        # the MERGE reads the version the plan read, so delta-rs refuses its commit (CommitFailedError)
        # when a concurrent commit touched the same rows or files, and merge() plans again
        table = self._table(ref, version=plan.base_version)
        if plan.new_columns:
            self._evolve(table, plan.new_columns)  # a commit of its own, before the MERGE
            if plan.base_version is not None and table.version() != plan.base_version + 1:
                raise StalePlanError(
                    f"Delta table {ref} moved past version {plan.base_version} while its merge was planned"
                )
        op = quote_ident("__lh_op")
        upserts = plan.upserts.append_column("__lh_op", pa.array(["U"] * plan.upserts.num_rows, pa.string()))
        if plan.delete_keys.num_rows:
            deletes = conform(plan.delete_keys, plan.upserts.schema).append_column(
                "__lh_op", pa.array(["D"] * plan.delete_keys.num_rows, pa.string())
            )
            source = pa.concat_tables([upserts, deletes])
        else:
            source = upserts
        on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)
        updates = {quote_ident(c): f"s.{quote_ident(c)}" for c in plan.upserts.column_names}
        merger = table.merge(
            source,
            predicate=on,
            source_alias="s",
            target_alias="t",
            commit_properties=self._commit_properties(commit_metadata),
        )
        if plan.delete_keys.num_rows:
            merger = merger.when_matched_delete(predicate=f"s.{op} = {quote_literal('D')}")
        update_when = f"s.{op} = {quote_literal('U')}"
        if plan.newer_by is not None:  # the plan already holds only newer rows; the MERGE checks it again at commit
            newer = quote_ident(plan.newer_by)
            update_when = f"{update_when} AND (t.{newer} IS NULL OR s.{newer} > t.{newer})"
        metrics = (
            merger.when_matched_update(updates=updates, predicate=update_when)
            .when_not_matched_insert(updates=updates, predicate=f"s.{op} = {quote_literal('U')}")
            .execute()
        )
        return WriteResult(
            table=str(ref),
            uri=self.location(ref),
            format="delta",
            operation="MERGE",
            version=self._refreshed(table, ref).version(),
            rows_written=plan.upserts.num_rows,
            rows_inserted=int(metrics.get("num_target_rows_inserted", plan.inserted)),
            rows_updated=int(metrics.get("num_target_rows_updated", plan.updated)),
            rows_deleted=int(metrics.get("num_target_rows_deleted", 0)),
            columns_added=tuple(f.name for f in plan.new_columns),
        )

    def delete(
        self, ref: TableRef, where: Predicate, *, commit_metadata: Mapping[str, str] | None = None
    ) -> WriteResult:
        large = split_large_in(where, _LARGEST_IN_LIST)

        def attempt() -> tuple[DeltaTable, int]:
            # a lost race re-reads the table: the rows to delete are those of the version committed on
            table = self._table(ref)
            if large is None:
                metrics = table.delete(to_sql(where), commit_properties=self._commit_properties(commit_metadata))
                deleted = int(metrics.get("num_deleted_rows", 0) or 0)
            else:  # one MERGE against the values: the same single commit, without an IN list to parse
                members, rest = large
                target_type = pa.schema(table.schema()).field(members.column).type
                values = pa.table({"__lh_key": pa.array(members.values).cast(target_type)})
                on = f"t.{quote_ident(members.column)} = s.{quote_ident('__lh_key')}"
                if rest is not None:
                    on = f"{on} AND {to_sql(rest, alias='t')}"
                metrics = (
                    table.merge(
                        values,
                        predicate=on,
                        source_alias="s",
                        target_alias="t",
                        commit_properties=self._commit_properties(commit_metadata),
                    )
                    .when_matched_delete()
                    .execute()
                )
                deleted = int(metrics.get("num_target_rows_deleted", 0) or 0)
            return table, deleted

        table, deleted = self._retry_lost_races(attempt)
        return WriteResult(
            table=str(ref),
            uri=self.location(ref),
            format="delta",
            operation="DELETE",
            version=self._refreshed(table, ref).version(),
            rows_deleted=deleted,
        )

    def read(
        self,
        ref: TableRef,
        *,
        columns: Sequence[str] | None = None,
        where: Predicate | None = None,
        version: int | None = None,
        as_of: dt.datetime | None = None,
    ) -> pl.LazyFrame:
        table = self._table(ref, version=version)
        if as_of is not None:
            try:
                table.load_as_version(as_of)
            except Exception as exc:
                raise TableNotFoundError(f"Delta table {ref} has no version at or before {as_of}: {exc}") from None
        lf = pl.scan_delta(table)
        if where is not None:
            lf = lf.filter(to_polars(where))
        if columns is not None:
            lf = lf.select(list(columns))
        return lf

    def history(self, ref: TableRef, *, limit: int | None = None) -> list[Commit]:
        out = []
        for entry in self._table(ref).history(limit):
            user = {k: str(v) for k, v in entry.items() if k not in _STANDARD_COMMIT_KEYS}
            out.append(
                Commit(
                    version=int(entry["version"]),
                    timestamp=_utc(entry["timestamp"]),
                    operation=str(entry.get("operation", "")),
                    parameters=dict(entry.get("operationParameters") or {}),
                    metrics=dict(entry.get("operationMetrics") or {}),
                    user_metadata=user,
                )
            )
        return sorted(out, key=lambda c: c.version, reverse=True)

    def version(self, ref: TableRef) -> int | None:
        return int(self._table(ref).version())

    def restore(
        self,
        ref: TableRef,
        *,
        version: int | None = None,
        as_of: dt.datetime | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        if (version is None) == (as_of is None):
            raise ValueError("restore needs exactly one of version= or as_of=")
        target: int | dt.datetime = version if version is not None else as_of  # type: ignore[assignment]

        def attempt() -> DeltaTable:
            # from the table as it is now: after a lost race, the winner's commit is read too
            table = self._table(ref)
            current = table.version()
            if version is not None and not 0 <= version <= current:
                raise TableNotFoundError(f"Delta table {ref} has no version {version} (current version is {current})")
            try:
                table.restore(target, commit_properties=self._commit_properties(commit_metadata))
            except Exception as exc:
                if self._is_lost_race(exc):
                    raise  # another writer committed first: start again
                raise TableNotFoundError(f"cannot restore Delta table {ref} to {target}: {exc}") from None
            return table

        table = self._retry_lost_races(attempt)
        return WriteResult(
            table=str(ref),
            uri=self.location(ref),
            format="delta",
            operation="RESTORE",
            version=self._refreshed(table, ref).version(),
        )

    def info(self, ref: TableRef) -> TableInfo:
        table = self._table(ref)
        actions = pa.table(table.get_add_actions(flatten=True))
        rows = sum(v or 0 for v in actions.column("num_records").to_pylist()) if actions.num_rows else 0
        size = sum(actions.column("size_bytes").to_pylist()) if actions.num_rows else 0
        last = table.history(1)
        return TableInfo(
            ref=ref,
            format="delta",
            uri=self.location(ref),
            version=table.version(),
            rows=int(rows),
            files=actions.num_rows,
            size_bytes=int(size),
            partition_by=tuple(table.metadata().partition_columns),
            last_modified=_utc(last[0]["timestamp"]) if last else None,
        )

    def list_tables(self) -> list[TableRef]:
        fs, root = filesystem(self.settings, self.settings.warehouse)
        found: list[TableRef] = []

        def subdirs(path: str) -> list[str]:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
            return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

        for layer in (d for d in subdirs(root) if d in LAYERS):
            for domain in subdirs(join_uri(root, layer)):
                for name in subdirs(join_uri(root, layer, domain)):
                    if "_delta_log" in subdirs(join_uri(root, layer, domain, name)):
                        try:
                            found.append(TableRef(layer, domain, name))
                        except ValueError:
                            continue
        return found

    def drop(self, ref: TableRef) -> None:
        fs, path = filesystem(self.settings, self.location(ref))
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_dir(path)

    def data_files(self, ref: TableRef, where: Predicate | None = None) -> tuple[list[str], str | None]:
        """Parquet files of the current version, and the table root: Delta keeps partition values
        in the file paths, so readers of the raw files need it as ``basePath``."""
        table = self._table(ref)
        files = table.file_uris()
        if where is None:
            return files, self.location(ref)
        actions = pl.from_arrow(pa.table(table.get_add_actions(flatten=True)))
        assert isinstance(actions, pl.DataFrame)
        kept = (
            actions.rename(lambda c: c.removeprefix("partition.")).filter(to_polars(where)).get_column("path").to_list()
        )
        return [f for f in files if any(f.endswith(p) for p in kept)], self.location(ref)

    # -- maintenance and change capture ------------------------------------------------------------

    def compact(self, ref: TableRef, *, target_file_bytes: int | None = None) -> MaintenanceResult:
        table = self._table(ref)
        before = self.info(ref).files
        metrics = table.optimize.compact(target_size=target_file_bytes)
        after = self.info(ref)
        return MaintenanceResult(
            table=str(ref), operation="COMPACT", files_before=before, files_after=after.files,
            files_removed=int(metrics.get("numFilesRemoved", 0)), version=after.version, details=_plain(metrics),
        )  # fmt: skip

    def sort_files(self, ref: TableRef, columns: Sequence[str]) -> MaintenanceResult:
        table = self._table(ref)
        before = self.info(ref).files
        metrics = table.optimize.z_order(list(columns))
        after = self.info(ref)
        return MaintenanceResult(
            table=str(ref), operation="ZORDER", files_before=before, files_after=after.files,
            files_removed=int(metrics.get("numFilesRemoved", 0)), version=after.version,
            details={"columns": list(columns), **_plain(metrics)},
        )  # fmt: skip

    def vacuum(self, ref: TableRef, *, retention: dt.timedelta, dry_run: bool = False) -> MaintenanceResult:
        table = self._table(ref)
        hours = max(0, math.ceil(retention.total_seconds() / 3600))  # delta-rs counts whole hours; round up = keep more
        candidates = table.vacuum(retention_hours=hours, dry_run=True, enforce_retention_duration=False)
        fs, root = filesystem(self.settings, self.location(ref))
        sizes = fs.get_file_info([f"{root}/{c}" for c in candidates])  # delta-rs lists paths relative to the table
        removed = (
            candidates
            if dry_run
            else table.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False)
        )
        info = self.info(ref)
        return MaintenanceResult(
            table=str(ref), operation="VACUUM", files_before=info.files + len(removed), files_after=info.files,
            files_removed=len(removed), bytes_removed=sum(s.size or 0 for s in sizes), version=info.version,
            dry_run=dry_run, details={"retention_hours": hours},
        )  # fmt: skip

    def purge_history(self, ref: TableRef) -> MaintenanceResult:
        table = self._table(ref)
        before = self.info(ref).files
        # full: also the change-data files and files no log entry lists (a plain vacuum keeps _change_data/)
        removed = table.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False, full=True)
        retention = self._drop_log_history(ref)
        info = self.info(ref)
        return MaintenanceResult(
            table=str(ref), operation="PURGE_HISTORY", files_before=before + len(removed), files_after=info.files,
            files_removed=len(removed), version=info.version, details={"log_retention": retention},
        )  # fmt: skip

    def _drop_log_history(self, ref: TableRef) -> str:
        """The log keeps the statistics (min/max values) of every file ever added: checkpoint the
        current state and drop the log entries before it, then put the log retention back (returned)."""
        table = self._table(ref)
        retention = table.metadata().configuration.get(_LOG_RETENTION) or "interval 30 days"
        table.alter.set_table_properties({_LOG_RETENTION: "interval 0 seconds"})
        table = self._table(ref)
        table.create_checkpoint()
        table.cleanup_metadata()
        self._table(ref).alter.set_table_properties({_LOG_RETENTION: retention})
        return str(retention)

    def purge_history_sparing_writes(self, ref: TableRef, *, grace: dt.timedelta) -> MaintenanceResult:
        """:meth:`purge_history` for right-to-erasure that cannot break a write in flight: a data
        or change-data file the current version does not need is deleted when the log names it
        (it was committed, then removed: no writer can still commit it) or when it is older than
        ``grace``; a younger file no version names may be a running write's, so it stays."""
        table = self._table(ref)
        fs, root = filesystem(self.settings, self.location(ref))
        log = f"{root}/_delta_log"
        logged: set[str] = set()
        for entry in fs.get_file_info(pafs.FileSelector(log, allow_not_found=True)):
            if entry.path.endswith(".json"):
                with fs.open_input_stream(entry.path) as stream:
                    for line in stream.read().decode("utf-8").splitlines():
                        action = json.loads(line) if line.strip() else {}
                        logged.update(unquote(a["path"]) for k in ("add", "remove", "cdc") if (a := action.get(k)))
            elif entry.path.endswith(".checkpoint.parquet"):
                with fs.open_input_file(entry.path) as stream:
                    checkpoint = pq.read_table(stream, columns=["add", "remove"])
                for kind in ("add", "remove"):
                    paths = pc.struct_field(checkpoint.column(kind), "path").to_pylist()
                    logged.update(unquote(p) for p in paths if p)
        current = {unquote(p) for p in pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()}
        cutoff = dt.datetime.now(dt.UTC) - grace
        removed = []
        for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
            relative = entry.path[len(root) + 1 :]
            if entry.type != pafs.FileType.File or relative.startswith("_delta_log/") or relative in current:
                continue
            if relative in logged or (entry.mtime is not None and entry.mtime < cutoff):
                fs.delete_file(entry.path)
                removed.append(relative)
        retention = self._drop_log_history(ref)
        info = self.info(ref)
        return MaintenanceResult(
            table=str(ref), operation="PURGE_HISTORY", files_before=info.files + len(removed), files_after=info.files,
            files_removed=len(removed), version=info.version,
            details={"log_retention": retention, "grace_seconds": int(grace.total_seconds())},
        )  # fmt: skip

    def changes(self, ref: TableRef, *, since: int, until: int | None = None, keys: Sequence[str] = ()) -> pl.DataFrame:
        table = self._table(ref)
        if table.metadata().configuration.get(CHANGE_FEED, "false").lower() != "true":
            raise ChangeFeedUnavailableError(f"Delta table {ref} has no change data feed ({CHANGE_FEED} is not true)")
        current = table.version()
        end = current if until is None else until
        if since >= end:
            empty = pl.from_arrow(pa.schema(table.schema().to_arrow()).empty_table())
            assert isinstance(empty, pl.DataFrame)
            return empty.with_columns(
                pl.lit(None, dtype=pl.String).alias("_change_type"),
                pl.lit(None, dtype=pl.Int64).alias("_commit_version"),
            )
        try:
            frame = pl.from_arrow(pa.table(table.load_cdf(starting_version=since + 1, ending_version=end)))
        except Exception as exc:
            raise ChangeFeedUnavailableError(
                f"Delta table {ref}: changes after version {since} are not available ({exc})"
            ) from None
        assert isinstance(frame, pl.DataFrame)
        return frame.drop("_commit_timestamp", strict=False).with_columns(pl.col("_commit_version").cast(pl.Int64))


def _plain(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """delta-rs metrics without nested structures (for metadata)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
