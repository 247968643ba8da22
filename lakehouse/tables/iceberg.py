"""Apache Iceberg tables through pyiceberg and its SQL catalog (SQLite by default, Postgres at scale)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.table import Table as IcebergTable
from pyiceberg.transforms import IdentityTransform

from lakehouse.exceptions import ChangeFeedUnavailableError, TableNotFoundError
from lakehouse.naming import TableRef
from lakehouse.storage import ensure_bucket, filesystem, iceberg_io_properties, object_store_options
from lakehouse.tables.base import (
    Commit,
    MaintenanceResult,
    MergePlan,
    StalePlanError,
    TableInfo,
    TableStore,
    WriteResult,
)
from lakehouse.tables.predicates import Predicate, all_of, col, to_iceberg, to_polars
from lakehouse.tables.schema import conform, plan_write

__all__ = ["IcebergStore", "avro_values", "open_catalog"]

_STANDARD_SUMMARY = re.compile(
    r"^(operation|added|deleted|removed|total|changed|replace|partition|engine|iceberg)[-.]?"
)
_OPERATION_KEY = "lakehouse.operation"
_WRITE_ID_KEY = "lakehouse.write-id"


@contextlib.contextmanager
def _quiet_empty_deletes() -> Iterator[None]:
    """A delete or overwrite filter that matches nothing is normal here (first write of a partition)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Delete operation did not match any records")
        yield


@functools.lru_cache(maxsize=8)
def _catalog(name: str, uri: str, warehouse: str, props: tuple[tuple[str, str], ...]) -> SqlCatalog:
    return SqlCatalog(name, uri=uri, warehouse=warehouse, **dict(props))


def open_catalog(settings: Any) -> Catalog:
    """The Iceberg SQL catalog of ``settings`` (cached per configuration)."""
    if settings.catalog_uri.startswith("sqlite:///"):
        Path(settings.catalog_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    props = tuple(sorted(iceberg_io_properties(settings).items()))
    return _catalog(settings.catalog_name, settings.catalog_uri, settings.warehouse, props)


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """Drop Iceberg field-id metadata so schemas compare by name and type only."""
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in schema])


class IcebergStore(TableStore):
    """Iceberg implementation of :class:`TableStore`. Versions are snapshot sequence numbers."""

    format = "iceberg"

    @property
    def catalog(self) -> Catalog:
        return open_catalog(self.settings)

    def _ident(self, ref: TableRef) -> tuple[str, str]:
        return (ref.namespace, ref.name)

    def _table(self, ref: TableRef) -> IcebergTable:
        try:
            return self.catalog.load_table(self._ident(ref))
        except NoSuchTableError:
            raise TableNotFoundError(
                f"Iceberg table {ref} does not exist in catalog {self.settings.catalog_name}"
            ) from None

    @classmethod
    def _is_lost_race(cls, error: Exception) -> bool:
        """pyiceberg's ``CommitFailedException``: the catalog's compare-and-swap refused the commit
        (its base snapshot is no longer current), so nothing of it landed."""
        return isinstance(error, CommitFailedException) or super()._is_lost_race(error)

    @staticmethod
    def _props(
        commit_metadata: Mapping[str, str] | None, *, write_id: str | None = None, **extra: str
    ) -> dict[str, str]:
        """Snapshot properties of one logical write. A write may take several snapshots (a merge is
        a delete and an append in one transaction): they share ``lakehouse.write-id``, so the change
        feed can tell a commit's last snapshot from its intermediate states."""
        props = {k: str(v) for k, v in (commit_metadata or {}).items()}
        props.update(extra)
        props[_WRITE_ID_KEY] = write_id or uuid.uuid4().hex
        return props

    def exists(self, ref: TableRef) -> bool:
        return bool(self.catalog.table_exists(self._ident(ref)))

    def schema(self, ref: TableRef) -> pa.Schema:
        return _plain_schema(self._table(ref).schema().as_arrow())

    def partition_columns(self, ref: TableRef) -> tuple[str, ...]:
        table = self._table(ref)
        schema = table.schema()
        return tuple(schema.find_field(f.source_id).name for f in table.spec().fields)

    def _create(
        self, ref: TableRef, schema: pa.Schema, partition_by: Sequence[str], properties: Mapping[str, str] | None
    ) -> IcebergTable:
        ensure_bucket(self.settings, self.settings.warehouse)
        self.catalog.create_namespace_if_not_exists(ref.namespace)
        table = self.catalog.create_table(
            self._ident(ref),
            schema=schema,
            location=self.location(ref),
            properties={"format-version": "2", **(properties or {})},
        )
        if partition_by:
            with table.update_spec() as spec:
                for column in partition_by:
                    spec.add_identity(column)
        return table

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
        created = False
        if not self.exists(ref):
            try:
                self._create(ref, data.schema, partition_by, properties)
                created = True
            except Exception as exc:  # another writer created it first
                if not self.exists(ref):
                    raise exc
        added: list[str] = []

        def attempt() -> IcebergTable:
            table = self._table(ref)
            plan = plan_write(str(ref), _plain_schema(table.schema().as_arrow()), data.schema)
            body = conform(data, plan.target, table_name=str(ref))
            added[:] = [f.name for f in plan.new_columns]
            props = self._props(commit_metadata)
            with _quiet_empty_deletes(), table.transaction() as txn:
                if plan.new_columns:
                    with txn.update_schema() as update:
                        update.union_by_name(pa.schema(plan.new_columns))
                if mode == "append":
                    txn.append(body, snapshot_properties=props)
                elif mode == "overwrite":
                    txn.overwrite(body, snapshot_properties=props)
                else:
                    assert predicate is not None
                    txn.overwrite(body, overwrite_filter=to_iceberg(predicate), snapshot_properties=props)
            return table

        table = self._retry_lost_races(attempt)
        snapshot = table.current_snapshot()
        operation = {"append": "APPEND", "overwrite": "OVERWRITE", "replace_where": "OVERWRITE_PARTITIONS"}[mode]
        return WriteResult(
            table=str(ref),
            uri=self.location(ref),
            format="iceberg",
            operation="CREATE" if created else operation,
            version=snapshot.sequence_number if snapshot else None,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            rows_written=data.num_rows,
            columns_added=tuple(added),
        )

    def _create_for_merge(
        self,
        ref: TableRef,
        data: pa.Table,
        partition_by: Sequence[str],
        properties: Mapping[str, str] | None,
        commit_metadata: Mapping[str, str] | None,
    ) -> WriteResult | None:
        """Create the table without a snapshot: the merge then plans against it like any other and
        its commit asserts that the table still has no snapshot."""
        try:
            self._create(ref, data.schema, partition_by, properties)
        except Exception:
            if not self.exists(ref):
                raise
        return None

    def _apply_merge(
        self, ref: TableRef, plan: MergePlan, keys: Sequence[str], commit_metadata: Mapping[str, str] | None
    ) -> WriteResult:
        affected = pa.concat_tables(
            [
                plan.upserts.select(list(keys)),
                plan.delete_keys.select(list(keys)).cast(plan.upserts.select(list(keys)).schema),
            ]
        )
        match = to_iceberg(self.match_predicate(affected, keys))
        table = self._table(ref)
        current = table.current_snapshot()
        if (current.sequence_number if current else None) != plan.base_version:
            raise StalePlanError(
                f"Iceberg table {ref} moved from version {plan.base_version} to "
                f"{current.sequence_number if current else None} while the merge was planned"
            )
        # the transaction is based on the snapshot the plan read: if another writer commits first,
        # the catalog refuses this commit (CommitFailedException) and merge() plans again
        write_id = uuid.uuid4().hex
        with _quiet_empty_deletes(), table.transaction() as txn:
            if plan.new_columns:
                with txn.update_schema() as update:
                    update.union_by_name(pa.schema(list(plan.new_columns)))
            txn.delete(match, snapshot_properties=self._props(commit_metadata, write_id=write_id))
            if plan.upserts.num_rows:
                txn.append(
                    plan.upserts,
                    snapshot_properties=self._props(commit_metadata, write_id=write_id, **{_OPERATION_KEY: "MERGE"}),
                )
        snapshot = table.current_snapshot()
        return WriteResult(
            table=str(ref),
            uri=self.location(ref),
            format="iceberg",
            operation="MERGE",
            version=snapshot.sequence_number if snapshot else None,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            rows_written=plan.upserts.num_rows,
            rows_inserted=plan.inserted,
            rows_updated=plan.updated,
            rows_deleted=plan.delete_keys.num_rows,
            columns_added=tuple(f.name for f in plan.new_columns),
        )

    @staticmethod
    def _total_records(table: IcebergTable) -> int:
        snapshot = table.current_snapshot()
        if snapshot is None or snapshot.summary is None:
            return 0
        return int(snapshot.summary.get("total-records", "0") or 0)

    @staticmethod
    def _has_delete_files(table: IcebergTable) -> bool:
        snapshot = table.current_snapshot()
        if snapshot is None or snapshot.summary is None:
            return False
        return any(int(snapshot.summary.get(k, "0") or 0) for k in ("total-delete-files", "total-position-deletes"))

    @staticmethod
    def _live_matches(table: IcebergTable, where: Predicate) -> int:
        """Rows of the current snapshot matching ``where``, delete files applied."""
        first = table.schema().fields[0].name  # one column: the rows are counted, not read whole
        return int(table.scan(row_filter=to_iceberg(where), selected_fields=(first,)).to_arrow().num_rows)

    def delete(
        self, ref: TableRef, where: Predicate, *, commit_metadata: Mapping[str, str] | None = None
    ) -> WriteResult:
        deleted = 0

        def attempt() -> IcebergTable:
            nonlocal deleted
            table = self._table(ref)
            before = self._total_records(table)  # of the snapshot this attempt deletes from, not an older one
            # rows already removed by delete files (another engine's merge-on-read deletes) still
            # count in total-records, and the copy-on-write rewrite drops them too: count the
            # matching live rows instead
            matching = self._live_matches(table, where) if self._has_delete_files(table) else None
            with _quiet_empty_deletes():
                table.delete(to_iceberg(where), snapshot_properties=self._props(commit_metadata))
            deleted = matching if matching is not None else before - self._total_records(table)
            return table

        table = self._retry_lost_races(attempt)
        snapshot = table.current_snapshot()
        return WriteResult(
            table=str(ref),
            uri=self.location(ref),
            format="iceberg",
            operation="DELETE",
            version=snapshot.sequence_number if snapshot else None,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            rows_deleted=deleted,
        )

    def _snapshot_id(
        self, ref: TableRef, table: IcebergTable, version: int | None, as_of: dt.datetime | None
    ) -> int | None:
        if version is not None:
            for snapshot in table.snapshots():
                if snapshot.sequence_number == version:
                    return snapshot.snapshot_id
            raise TableNotFoundError(f"Iceberg table {ref} has no version (snapshot sequence number) {version}")
        if as_of is not None:
            if as_of.tzinfo is None:
                as_of = as_of.replace(tzinfo=dt.UTC)
            found = table.snapshot_as_of_timestamp(int(as_of.timestamp() * 1000))
            if found is None:
                raise TableNotFoundError(f"Iceberg table {ref} has no snapshot at or before {as_of.isoformat()}")
            return found.snapshot_id
        return None

    def read(
        self,
        ref: TableRef,
        *,
        columns: Sequence[str] | None = None,
        where: Predicate | None = None,
        version: int | None = None,
        as_of: dt.datetime | None = None,
    ) -> pl.LazyFrame:
        table = self._table(ref)
        snapshot_id = self._snapshot_id(ref, table, version, as_of)
        if table.current_snapshot() is None:
            lf = pl.from_arrow(table.schema().as_arrow().empty_table()).lazy()  # type: ignore[union-attr]
        else:
            lf = pl.scan_iceberg(
                table, snapshot_id=snapshot_id, storage_options=object_store_options(self.settings, self.location(ref))
            )
        if where is not None:
            lf = lf.filter(to_polars(where))
        if columns is not None:
            lf = lf.select(list(columns))
        return lf

    def history(self, ref: TableRef, *, limit: int | None = None) -> list[Commit]:
        table = self._table(ref)
        out = []
        for snapshot in sorted(table.snapshots(), key=lambda s: s.sequence_number or 0, reverse=True):
            summary = dict(snapshot.summary.additional_properties) if snapshot.summary else {}
            operation = snapshot.summary.operation.value.upper() if snapshot.summary else ""
            user = {k: v for k, v in summary.items() if not _STANDARD_SUMMARY.match(k)}
            out.append(
                Commit(
                    version=snapshot.sequence_number or 0,
                    timestamp=dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, tz=dt.UTC),
                    operation=user.get(_OPERATION_KEY, operation),
                    metrics={k: v for k, v in summary.items() if k not in user},
                    user_metadata=user,
                    snapshot_id=snapshot.snapshot_id,
                )
            )
        return out[:limit] if limit else out

    def version(self, ref: TableRef) -> int | None:
        snapshot = self._table(ref).current_snapshot()
        return snapshot.sequence_number if snapshot else None

    def restore(
        self,
        ref: TableRef,
        *,
        version: int | None = None,
        as_of: dt.datetime | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Overwrite the table with its content at the target snapshot (a new snapshot; history kept)."""
        if (version is None) == (as_of is None):
            raise ValueError("restore needs exactly one of version= or as_of=")
        table = self._table(ref)
        snapshot_id = self._snapshot_id(ref, table, version, as_of)
        old = table.scan(snapshot_id=snapshot_id).to_arrow()
        target = next(s for s in table.snapshots() if s.snapshot_id == snapshot_id)
        props = self._props(
            commit_metadata, **{_OPERATION_KEY: "RESTORE", "lakehouse.restored-version": str(target.sequence_number)}
        )

        old_columns = set(old.column_names)

        def attempt() -> IcebergTable:
            # like Delta's RESTORE, bring back the schema of that version too: drop later columns
            current = self._table(ref)
            later = [c for c in current.schema().as_arrow().names if c not in old_columns]
            with _quiet_empty_deletes(), current.transaction() as txn:
                if later:
                    with txn.update_schema() as update:
                        for column in later:
                            update.delete_column(column)
                target_schema = _plain_schema(current.schema().as_arrow())
                body = conform(old, pa.schema([f for f in target_schema if f.name in old_columns]))
                txn.overwrite(body, snapshot_properties=props)
            return current

        table = self._retry_lost_races(attempt)
        snapshot = table.current_snapshot()
        return WriteResult(
            table=str(ref),
            uri=self.location(ref),
            format="iceberg",
            operation="RESTORE",
            version=snapshot.sequence_number if snapshot else None,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            rows_written=old.num_rows,
        )

    def info(self, ref: TableRef) -> TableInfo:
        table = self._table(ref)
        snapshot = table.current_snapshot()
        summary = snapshot.summary if snapshot and snapshot.summary else None

        def total(key: str) -> int:
            return int(summary.get(key, "0") or 0) if summary is not None else 0

        schema = table.schema()
        return TableInfo(
            ref=ref,
            format="iceberg",
            uri=self.location(ref),
            version=snapshot.sequence_number if snapshot else None,
            rows=total("total-records"),
            files=total("total-data-files"),
            size_bytes=total("total-files-size"),
            partition_by=tuple(schema.find_field(f.source_id).name for f in table.spec().fields),
            last_modified=dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, tz=dt.UTC) if snapshot else None,
        )

    def list_tables(self) -> list[TableRef]:
        found = []
        for namespace in self.catalog.list_namespaces():
            for ident in self.catalog.list_tables(namespace):
                try:
                    found.append(TableRef.parse(".".join(ident)))
                except ValueError:
                    continue
        return sorted(found)

    def drop(self, ref: TableRef) -> None:
        if self.exists(ref):
            self.catalog.drop_table(self._ident(ref))
        fs, path = filesystem(self.settings, self.location(ref))
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_dir(path)

    def data_files(self, ref: TableRef, where: Predicate | None = None) -> tuple[list[str], str | None]:
        """Parquet files of the current snapshot (Iceberg data files hold every column, so no root)."""
        table = self._table(ref)
        scan = table.scan(row_filter=to_iceberg(where)) if where is not None else table.scan()
        return [task.file.file_path for task in scan.plan_files()], None

    # -- maintenance and change capture ------------------------------------------------------------

    def _rewrite(self, ref: TableRef, operation: str, order: Sequence[str] = ()) -> MaintenanceResult:
        """Rewrite each partition that has more than one data file (all of an unpartitioned table)
        in one transaction: the same rows, fewer files, optionally sorted."""
        table = self._table(ref)
        before = self.info(ref)
        partition_cols = list(self.partition_columns(ref))
        files = pl.from_arrow(table.inspect.files())
        assert isinstance(files, pl.DataFrame)
        if partition_cols and files.height:
            parts = files.unnest("partition").group_by(partition_cols).len()
            targets = parts.filter(pl.col("len") > 1) if not order else parts
            predicates: list[Predicate | None] = [
                all_of([col(c) == row[c] for c in partition_cols]) for row in targets.select(partition_cols).to_dicts()
            ]
        else:
            predicates = [None] if (files.height > 1 or order) else []
        if not predicates:
            return MaintenanceResult(
                table=str(ref),
                operation=operation,
                files_before=before.files,
                files_after=before.files,
                version=before.version,
            )
        props = self._props(None, **{_OPERATION_KEY: operation})

        def attempt() -> IcebergTable:
            current = self._table(ref)
            with _quiet_empty_deletes(), current.transaction() as txn:
                if order:
                    with txn.update_sort_order() as sort:
                        for column in order:
                            sort.asc(column, IdentityTransform())
                for predicate in predicates:
                    lf = self.read(ref, where=predicate)
                    body = lf.sort(list(order)) if order else lf
                    arrow = conform(
                        body.collect().to_arrow(), _plain_schema(current.schema().as_arrow()), table_name=str(ref)
                    )
                    if predicate is None:
                        txn.overwrite(arrow, snapshot_properties=props)
                    else:
                        txn.overwrite(arrow, overwrite_filter=to_iceberg(predicate), snapshot_properties=props)
            return current

        self._retry_lost_races(attempt)
        after = self.info(ref)
        return MaintenanceResult(
            table=str(ref), operation=operation, files_before=before.files, files_after=after.files,
            files_removed=max(0, before.files - after.files), version=after.version,
            details={"partitions_rewritten": len(predicates), **({"columns": list(order)} if order else {})},
        )  # fmt: skip

    def compact(self, ref: TableRef, *, target_file_bytes: int | None = None) -> MaintenanceResult:
        return self._rewrite(ref, "COMPACT")

    def sort_files(self, ref: TableRef, columns: Sequence[str]) -> MaintenanceResult:
        return self._rewrite(ref, "SORT", order=columns)

    def _referenced_files(self, table: IcebergTable, keep: Sequence[Any]) -> set[str]:
        """Every file the snapshots in ``keep`` need: metadata, manifest lists, manifests, data."""
        files = {table.metadata_location, *[e.metadata_file for e in table.metadata.metadata_log]}
        for snapshot in keep:
            files.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(table.io):
                files.add(manifest.manifest_path)
                entries = manifest.fetch_manifest_entry(table.io, discard_deleted=True)
                files.update(entry.data_file.file_path for entry in entries)
        return {_fs_path(f) for f in files}

    def vacuum(self, ref: TableRef, *, retention: dt.timedelta, dry_run: bool = False) -> MaintenanceResult:
        table = self._table(ref)
        cutoff = dt.datetime.now(dt.UTC) - retention
        before = self.info(ref)
        current = table.current_snapshot()
        keep = [
            s
            for s in table.snapshots()
            if s.timestamp_ms >= cutoff.timestamp() * 1000
            or (current is not None and s.snapshot_id == current.snapshot_id)
        ]
        expired = len(table.snapshots()) - len(keep)
        if expired and not dry_run:
            self._retry_lost_races(lambda: self._table(ref).maintenance.expire_snapshots().older_than(cutoff).commit())
            table = self._table(ref)
            keep = table.snapshots()
        # files under the table's folder that no kept snapshot needs, older than the window
        fs, root = filesystem(self.settings, self.location(ref))
        referenced = self._referenced_files(table, keep)
        listing = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        orphans = [
            i
            for i in listing
            if i.type == pafs.FileType.File
            and i.path not in referenced
            and (i.mtime is None or i.mtime.timestamp() < cutoff.timestamp())
        ]
        if not dry_run:
            for info in orphans:
                fs.delete_file(info.path)
        data_orphans = [i for i in orphans if i.path.endswith(".parquet")]
        after = self.info(ref)
        return MaintenanceResult(
            table=str(ref),
            operation="VACUUM",
            files_before=before.files,
            files_after=after.files,
            files_removed=len(data_orphans),
            bytes_removed=sum(i.size or 0 for i in orphans),
            version=after.version,
            dry_run=dry_run,
            details={
                "snapshots_expired": expired,
                "metadata_files_removed": len(orphans) - len(data_orphans),
                "retention_seconds": int(retention.total_seconds()),
            },
        )

    def purge_history(self, ref: TableRef) -> MaintenanceResult:
        """Expire every snapshot but the current one and delete the files only they needed."""
        result = self.vacuum(ref, retention=dt.timedelta(0))
        return MaintenanceResult(**{**result.__dict__, "operation": "PURGE_HISTORY"})

    def purge_history_sparing_writes(self, ref: TableRef, *, grace: dt.timedelta) -> MaintenanceResult:
        """:meth:`purge_history` for right-to-erasure that cannot break a write in flight: a file
        the current snapshot does not need is deleted when an older snapshot needed it (it was
        committed: no writer can still commit it) or when it is older than ``grace``; a younger
        file no snapshot names may be a running write's, so it stays."""
        table = self._table(ref)
        current = table.current_snapshot()
        if current is not None and any(m.deleted_files_count for m in current.manifests(table.io)):
            # a delete's manifest still lists the files it removed, with their column bounds (the
            # deleted values): an empty append writes a snapshot without that manifest
            def _drop_deleted_entries() -> None:
                with self._table(ref).transaction() as tx, tx.update_snapshot().fast_append():
                    pass

            self._retry_lost_races(_drop_deleted_entries)
            table = self._table(ref)
        fs, root = filesystem(self.settings, self.location(ref))
        # the files committed versions named, as an earlier purge that was killed between expiring
        # its snapshots and deleting their files wrote them down first: young, and named by no
        # snapshot any more, they would otherwise pass for a write in flight's and stay
        intents = _purge_intents(fs, root)
        committed = self._referenced_files(table, table.snapshots()) | {f for _, files in intents for f in files}
        if len(table.snapshots()) > 1:
            intents.append(_write_purge_intent(fs, root, committed))  # before the expiry commits
            now = dt.datetime.now(dt.UTC)
            self._retry_lost_races(lambda: self._table(ref).maintenance.expire_snapshots().older_than(now).commit())
            table = self._table(ref)
        needed = self._referenced_files(table, table.snapshots())
        cutoff = dt.datetime.now(dt.UTC) - grace
        intent_paths = {path for path, _ in intents}
        removed = [
            i.path
            for i in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
            if i.type == pafs.FileType.File
            and i.path not in needed
            and i.path not in intent_paths
            and (i.path in committed or (i.mtime is not None and i.mtime < cutoff))
        ]
        for path in removed:
            fs.delete_file(path)
        for path in intent_paths:  # done: every file they name is gone or needed again
            fs.delete_file(path)
        info = self.info(ref)
        return MaintenanceResult(
            table=str(ref), operation="PURGE_HISTORY", files_before=info.files + len(removed), files_after=info.files,
            files_removed=len(removed), version=info.version, details={"grace_seconds": int(grace.total_seconds())},
        )  # fmt: skip

    def changes(self, ref: TableRef, *, since: int, until: int | None = None, keys: Sequence[str] = ()) -> pl.DataFrame:
        """Iceberg keeps no row-level change feed in pyiceberg: diff consecutive snapshots (by
        ``keys`` when given, so updates show as pre/post images; else whole rows), so every
        intermediate state appears, tagged with its version, as in Delta's change data feed."""
        self._require(ref)
        end = until if until is not None else (self.version(ref) or 0)
        try:
            previous = self.read(ref, version=since).collect() if since > 0 else self.read(ref).clear().collect()
            frames = []
            for version in self._commit_ends(ref, since, end):
                current = self.read(ref, version=version).collect()
                frames.append(self._diff(previous, current, keys, version))
                previous = current
        except TableNotFoundError as exc:
            raise ChangeFeedUnavailableError(
                f"Iceberg table {ref}: changes after version {since} are not available ({exc})"
            ) from None
        if not frames:
            return self._diff(previous, previous, keys, end)
        return pl.concat(frames, how="vertical_relaxed")

    def _commit_ends(self, ref: TableRef, since: int, end: int) -> list[int]:
        """Versions in ``(since, end]`` that end a logical write: a snapshot whose successor belongs
        to the same write (same ``lakehouse.write-id``) is an intermediate state, not a commit."""
        write_ids: dict[int, str | None] = {}
        for snapshot in self._table(ref).snapshots():
            seq = snapshot.sequence_number or 0
            props = snapshot.summary.additional_properties if snapshot.summary else {}
            write_ids[seq] = props.get(_WRITE_ID_KEY)
        ends = []
        for version in range(max(since, 0) + 1, end + 1):
            this, following = write_ids.get(version), write_ids.get(version + 1)
            if version == end or this is None or this != following:
                ends.append(version)
        return ends

    @staticmethod
    def _diff(old: pl.DataFrame, new: pl.DataFrame, keys: Sequence[str], version: int) -> pl.DataFrame:
        columns = [c for c in new.columns if c in old.columns] or new.columns
        old, new = old.select(columns), new.select(columns)
        tag = pl.lit(version, dtype=pl.Int64).alias("_commit_version")
        if keys:
            inserted = new.join(old.select(list(keys)), on=list(keys), how="anti")
            deleted = old.join(new.select(list(keys)), on=list(keys), how="anti")
            both_new = new.join(old.select(list(keys)), on=list(keys), how="semi")
            post = both_new.join(old, on=columns, how="anti", nulls_equal=True)
            pre = old.join(post.select(list(keys)), on=list(keys), how="semi")
            parts = [(inserted, "insert"), (pre, "update_preimage"), (post, "update_postimage"), (deleted, "delete")]
        else:
            parts = [
                (new.join(old, on=columns, how="anti", nulls_equal=True), "insert"),
                (old.join(new, on=columns, how="anti", nulls_equal=True), "delete"),
            ]
        return pl.concat(
            [f.with_columns(pl.lit(kind).alias("_change_type"), tag) for f, kind in parts], how="vertical_relaxed"
        )


def _fs_path(uri: str) -> str:
    """A path as pyarrow file systems list it (no scheme)."""
    for prefix in ("s3://", "file://"):
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return uri


def avro_values(data: bytes) -> Iterator[object]:
    """Every scalar in an Avro container file (an Iceberg manifest or manifest list), decoded and
    decompressed by pyiceberg's reader: erasure's verification searches column bounds in them."""
    from pyiceberg.avro.file import AvroFile
    from pyiceberg.io import InputFile, InputStream
    from pyiceberg.typedef import Record

    class _Memory(InputFile):
        def __len__(self) -> int:
            return len(data)

        def exists(self) -> bool:
            return True

        def open(self, seekable: bool = True) -> InputStream:
            return io.BytesIO(data)

    def walk(item: object) -> Iterator[object]:
        if isinstance(item, Record):
            for i in range(len(item)):
                yield from walk(item[i])
        elif isinstance(item, Mapping):
            for k, v in item.items():
                yield from walk(k)
                yield from walk(v)
        elif isinstance(item, (list, tuple)):
            for v in item:
                yield from walk(v)
        else:
            yield item

    with AvroFile[Record](_Memory("memory")) as reader:
        for record in reader:
            yield from walk(record)


_PURGE_INTENT = "purge-intent-"


def _purge_intents(fs: pafs.FileSystem, root: str) -> list[tuple[str, list[str]]]:
    """The purge intents under the table's metadata folder: (the intent's path, the files it names)."""
    import json

    found = []
    selector = pafs.FileSelector(f"{root}/metadata", allow_not_found=True)
    for info in fs.get_file_info(selector):
        if info.type == pafs.FileType.File and info.base_name.startswith(_PURGE_INTENT):
            with fs.open_input_stream(info.path) as stream:
                found.append((info.path, [str(f) for f in json.loads(stream.read())]))
    return found


def _write_purge_intent(fs: pafs.FileSystem, root: str, files: set[str]) -> tuple[str, list[str]]:
    """Write down (paths only, no values) the files a purge is about to un-reference."""
    import json

    path = f"{root}/metadata/{_PURGE_INTENT}{uuid.uuid4().hex}.json"
    with fs.open_output_stream(path) as out:
        out.write(json.dumps(sorted(files)).encode())
    return path, sorted(files)
