"""The ``TableStore`` interface: one contract, a Delta and an Iceberg implementation.

Everything format-neutral lives here (argument checking, schema planning, merge planning), so
the two implementations only translate finished decisions into their library's calls.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.exceptions import PartitionMismatchError, TableNotFoundError
from lakehouse.naming import TableRef, table_location
from lakehouse.retries import backoff_seconds, retry_call
from lakehouse.settings import Settings, TableFormat
from lakehouse.tables.predicates import Predicate, all_of, any_of, col, to_polars
from lakehouse.tables.schema import conform, plan_write, to_arrow

__all__ = [
    "Commit",
    "Frame",
    "MaintenanceResult",
    "MergePlan",
    "StalePlanError",
    "TableInfo",
    "TableStore",
    "WriteResult",
]

Frame: TypeAlias = pl.DataFrame | pl.LazyFrame | pa.Table
T = TypeVar("T")


class StalePlanError(Exception):
    """The table moved past the version a write was planned on before the write could commit: the
    write must be planned again from the new version (the store does so; see
    ``TableStore._retry_lost_races``). Not a ``LakehouseError``: it is a lost race, not a diagnosis."""


@dataclass(frozen=True)
class WriteResult:
    """What one write did. ``version`` is the table version after the write.

    Delta versions count commits from 0; Iceberg versions are snapshot sequence numbers
    (from 1). ``operation`` is ``NOOP`` when there was nothing to change and no commit was made.
    """

    table: str
    uri: str
    format: TableFormat
    operation: str
    version: int | None
    rows_written: int = 0
    rows_deleted: int | None = None
    rows_updated: int | None = None
    rows_inserted: int | None = None
    snapshot_id: int | None = None
    columns_added: tuple[str, ...] = ()


@dataclass(frozen=True)
class Commit:
    """One entry of a table's history, newest first when listed."""

    version: int
    timestamp: dt.datetime
    operation: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    user_metadata: Mapping[str, str] = field(default_factory=dict)
    snapshot_id: int | None = None


@dataclass(frozen=True)
class TableInfo:
    """Cheap facts about a table, read from its metadata (no data scan)."""

    ref: TableRef
    format: TableFormat
    uri: str
    version: int | None
    rows: int
    files: int
    size_bytes: int
    partition_by: tuple[str, ...]
    last_modified: dt.datetime | None

    @property
    def avg_file_bytes(self) -> int:
        return self.size_bytes // self.files if self.files else 0


@dataclass(frozen=True)
class MaintenanceResult:
    """What a maintenance operation did (or would do, with ``dry_run``)."""

    table: str
    operation: str  # COMPACT, SORT, VACUUM
    files_before: int
    files_after: int
    files_removed: int = 0
    bytes_removed: int = 0
    version: int | None = None
    dry_run: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MergePlan:
    """Rows a merge must write (inserts and changed rows) and keys it must delete."""

    upserts: pa.Table
    delete_keys: pa.Table
    inserted: int
    updated: int
    new_columns: tuple[pa.Field, ...] = ()
    base_version: int | None = None  # the version the plan read: the commit must be based on it
    newer_by: str | None = None  # set when the commit must also check it (replace only with a newer row)

    @property
    def empty(self) -> bool:
        return bool(self.upserts.num_rows == 0 and self.delete_keys.num_rows == 0)


class TableStore(abc.ABC):
    """The only door to table storage. Implementations: ``DeltaStore`` and ``IcebergStore``.

    Every write is a single atomic commit (or none): a failed or killed write leaves the previous
    version readable and unchanged. Writes evolve the schema by adding nullable columns; an
    incompatible type change raises :class:`~lakehouse.exceptions.SchemaMismatchError` before
    anything is written.
    """

    format: ClassVar[TableFormat]
    # optimistic commits on object storage take ~0.4 s and N writers on one table lose most races:
    # a writer must outlast its rivals rather than fail a step that would succeed a second later
    max_commit_attempts: ClassVar[int] = 40

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- commit races ---------------------------------------------------------------------------

    @classmethod
    def _is_lost_race(cls, error: Exception) -> bool:
        """True when ``error`` says another writer committed first and this write committed nothing
        (the format's own error; plus :class:`StalePlanError`). Only such errors are retried here: a
        connection lost during a commit leaves unknown whether it landed, and is Dagster's to retry."""
        return isinstance(error, StalePlanError)

    def _retry_lost_races(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it commits, again from the start after each lost race.

        ``attempt`` must be a whole write: read the current table, plan, commit based on the version
        it read. Re-applying a plan made before the race would overwrite what the winner wrote (a
        newer row, a partition it replaced); a lost commit changed nothing, so starting over is safe.
        """
        return retry_call(
            attempt,
            attempts=self.max_commit_attempts,
            retry_on=self._is_lost_race,
            wait=lambda n, _error: backoff_seconds(n, base=0.05, cap=3.0, jitter=0.5),
        )

    # -- naming ---------------------------------------------------------------------------------

    def location(self, ref: TableRef) -> str:
        return table_location(ref, self.settings)

    # -- abstract operations --------------------------------------------------------------------

    @abc.abstractmethod
    def exists(self, ref: TableRef) -> bool: ...

    @abc.abstractmethod
    def schema(self, ref: TableRef) -> pa.Schema:
        """The current Arrow schema of the table."""

    @abc.abstractmethod
    def partition_columns(self, ref: TableRef) -> tuple[str, ...]: ...

    @abc.abstractmethod
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
        """Write ``data``: ``mode`` is ``append``, ``overwrite`` (all) or ``replace_where`` (predicate)."""

    @abc.abstractmethod
    def _create_for_merge(
        self,
        ref: TableRef,
        data: pa.Table,
        partition_by: Sequence[str],
        properties: Mapping[str, str] | None,
        commit_metadata: Mapping[str, str] | None,
    ) -> WriteResult | None:
        """The first merge into a missing table: create the table holding ``data`` (its result), or
        create it empty (None: the merge goes on against it). When another writer creates it first,
        raise a lost race, never append beside the rows the winner wrote (duplicate keys)."""

    @abc.abstractmethod
    def _apply_merge(
        self, ref: TableRef, plan: MergePlan, keys: Sequence[str], commit_metadata: Mapping[str, str] | None
    ) -> WriteResult:
        """Commit ``plan`` once, based on ``plan.base_version``: when the table has moved past it,
        raise (the format's lost-race error or :class:`StalePlanError`) instead of committing, so
        the merge is planned again. Never retry here."""

    @abc.abstractmethod
    def delete(
        self, ref: TableRef, where: Predicate, *, commit_metadata: Mapping[str, str] | None = None
    ) -> WriteResult:
        """Delete the rows matching ``where`` in one commit."""

    @abc.abstractmethod
    def read(
        self,
        ref: TableRef,
        *,
        columns: Sequence[str] | None = None,
        where: Predicate | None = None,
        version: int | None = None,
        as_of: dt.datetime | None = None,
    ) -> pl.LazyFrame:
        """A lazy scan; projection and ``where`` are pushed down. Time travel by version or time."""

    @abc.abstractmethod
    def history(self, ref: TableRef, *, limit: int | None = None) -> list[Commit]:
        """Commits, newest first."""

    @abc.abstractmethod
    def version(self, ref: TableRef) -> int | None:
        """The current version, or None for a table without any commit."""

    @abc.abstractmethod
    def restore(
        self,
        ref: TableRef,
        *,
        version: int | None = None,
        as_of: dt.datetime | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Make the content at ``version``/``as_of`` current again, as a new commit (history kept)."""

    @abc.abstractmethod
    def info(self, ref: TableRef) -> TableInfo: ...

    @abc.abstractmethod
    def list_tables(self) -> list[TableRef]:
        """Every table of this format in the warehouse."""

    @abc.abstractmethod
    def drop(self, ref: TableRef) -> None:
        """Remove the table and its files (used by tests and ``demo --reset``)."""

    # -- maintenance and change capture ------------------------------------------------------------

    @abc.abstractmethod
    def data_files(self, ref: TableRef, where: Predicate | None = None) -> tuple[list[str], str | None]:
        """The data files of the current version (for engines that read files directly, like
        Spark without table-format jars) and, when partition values live in the paths, the root."""

    @abc.abstractmethod
    def compact(self, ref: TableRef, *, target_file_bytes: int | None = None) -> MaintenanceResult:
        """Rewrite small files into fewer, larger ones (same content, a new version)."""

    @abc.abstractmethod
    def sort_files(self, ref: TableRef, columns: Sequence[str]) -> MaintenanceResult:
        """Cluster data by ``columns`` so scans can skip files: Delta Z-order; Iceberg a sorted
        rewrite recorded as the table's sort order (the closest equivalent pyiceberg offers)."""

    @abc.abstractmethod
    def vacuum(self, ref: TableRef, *, retention: dt.timedelta, dry_run: bool = False) -> MaintenanceResult:
        """Delete files no version within ``retention`` needs (Delta vacuum; Iceberg snapshot expiry
        plus orphan files). Versions older than the window stop being readable."""

    @abc.abstractmethod
    def purge_history(self, ref: TableRef) -> MaintenanceResult:
        """Keep only the current version: remove every data file, change-feed file and log entry an
        older version needs, so deleted rows cannot come back by time travel, the change feed or the
        table's metadata (column statistics). Used by right-to-erasure; history is lost."""

    @abc.abstractmethod
    def changes(self, ref: TableRef, *, since: int, until: int | None = None, keys: Sequence[str] = ()) -> pl.DataFrame:
        """Rows changed after version ``since`` up to ``until`` (default: current), with
        ``_change_type`` (insert, update_preimage, update_postimage, delete) and ``_commit_version``.

        Raises:
            ChangeFeedUnavailableError: when the table cannot say (no change feed, versions vacuumed).
        """

    # -- format-neutral operations ----------------------------------------------------------------

    def _require(self, ref: TableRef) -> None:
        if not self.exists(ref):
            raise TableNotFoundError(f"table {ref} does not exist ({self.format} at {self.location(ref)})")

    def append(
        self,
        ref: TableRef,
        data: Frame,
        *,
        partition_by: Sequence[str] = (),
        properties: Mapping[str, str] | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Add rows; creates the table (with ``partition_by``) if it does not exist."""
        return self._write(
            ref,
            to_arrow(data),
            mode="append",
            predicate=None,
            partition_by=partition_by,
            properties=properties,
            commit_metadata=commit_metadata,
        )

    def overwrite(
        self,
        ref: TableRef,
        data: Frame,
        *,
        partition_by: Sequence[str] = (),
        properties: Mapping[str, str] | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Replace the whole content of the table (schema evolves as for every write)."""
        return self._write(
            ref,
            to_arrow(data),
            mode="overwrite",
            predicate=None,
            partition_by=partition_by,
            properties=properties,
            commit_metadata=commit_metadata,
        )

    def overwrite_partitions(
        self,
        ref: TableRef,
        data: Frame,
        *,
        partition_by: str,
        values: Sequence[Any],
        create_partition_by: Sequence[str] | None = None,
        properties: Mapping[str, str] | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Replace exactly the partitions ``partition_by IN values`` with ``data``, in one commit.

        ``partition_by`` need not be a physical partition column (replacing every row of one
        source file works too); ``create_partition_by`` sets the physical partitioning if the
        table is created by this write (default: ``[partition_by]``).

        Idempotent: writing the same data for the same values twice leaves the same content.
        ``data`` may be empty (the partitions become empty). Every row must belong to one of
        ``values``; otherwise :class:`PartitionMismatchError` is raised and nothing is written.
        """
        table = to_arrow(data)
        if partition_by not in table.column_names:
            raise PartitionMismatchError(
                f"{ref}: partition column {partition_by!r} is missing from the data (columns: {table.column_names})"
            )
        if not values:
            raise PartitionMismatchError(f"{ref}: overwrite_partitions needs at least one partition value")
        column_type = table.schema.field(partition_by).type
        try:
            typed_values = pa.array(list(values)).cast(column_type).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise PartitionMismatchError(
                f"{ref}: partition values {list(values)[:3]} cannot be read as {column_type} "
                f"(the type of column {partition_by!r}): {exc}"
            ) from None
        if table.num_rows:
            inside = pc.is_in(table.column(partition_by), value_set=pa.array(typed_values, column_type))
            outside = table.filter(pc.invert(pc.fill_null(inside, False)))
            if outside.num_rows:
                sample = outside.column(partition_by).to_pylist()[:3]
                raise PartitionMismatchError(
                    f"{ref}: {outside.num_rows} row(s) have {partition_by} outside the partitions being "
                    f"replaced {typed_values[:5]} (e.g. {sample}); nothing was written"
                )
        return self._write(
            ref,
            table,
            mode="replace_where",
            predicate=col(partition_by).is_in(typed_values),
            partition_by=list(create_partition_by) if create_partition_by is not None else [partition_by],
            properties=properties,
            commit_metadata=commit_metadata,
        )

    def merge(
        self,
        ref: TableRef,
        data: Frame,
        *,
        keys: Sequence[str],
        delete_missing: bool | Predicate = False,
        newer_by: str | None = None,
        partition_by: Sequence[str] = (),
        properties: Mapping[str, str] | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Upsert ``data`` on ``keys`` in one commit; only rows that are new or changed are written.

        ``newer_by``: a column (e.g. ``updated_at``); a matched row is only replaced by a source
        row whose value is greater, so replaying an older extract never regresses the table.

        ``delete_missing``: also delete target rows whose key is absent from ``data`` — all of
        them (``True``) or those matching a predicate (e.g. the partition being merged).
        Merging the same data twice makes no second commit (operation ``NOOP``).

        Concurrent merges end as if they ran one after the other: a merge that loses the commit race
        reads the table again and is planned again (another writer's newer row is never replaced by
        an older one, and a key two first merges insert is inserted once).
        """
        source = to_arrow(data)
        if not keys:
            raise ValueError(f"{ref}: merge needs at least one key column")
        missing = [k for k in keys if k not in source.column_names]
        if missing:
            raise ValueError(f"{ref}: merge key column(s) {missing} are not in the data")
        src = pl.from_arrow(source)
        assert isinstance(src, pl.DataFrame)
        null_keys = src.filter(pl.any_horizontal([pl.col(k).is_null() for k in keys]))
        if null_keys.height:
            raise ValueError(f"{ref}: {null_keys.height} source row(s) have a null merge key {list(keys)}")
        dupes = src.group_by(list(keys)).len().filter(pl.col("len") > 1)
        if dupes.height:
            # row positions, never the key values: this message reaches logs and the event log,
            # where erasure cannot follow a personal key
            rows = src.with_row_index("__row").filter(pl.struct(list(keys)).is_duplicated()).get_column("__row")
            raise ValueError(
                f"{ref}: merge source has {dupes.height} duplicated key(s) on {list(keys)}, e.g. at source rows "
                f"{rows.head(6).to_list()}; deduplicate before merging"
            )

        def attempt() -> WriteResult:
            # everything from the existence check to the commit is one attempt: after a lost race
            # the table is read again and the merge planned again (a newer row may have landed)
            if not self.exists(ref):
                created = self._create_for_merge(ref, source, partition_by, properties, commit_metadata)
                if created is not None:
                    return WriteResult(**{**created.__dict__, "operation": "MERGE", "rows_inserted": source.num_rows})
            base_version = self.version(ref)
            plan = self._plan_merge(ref, src, keys, delete_missing, newer_by, version=base_version)
            if plan.empty:
                return WriteResult(
                    table=str(ref),
                    uri=self.location(ref),
                    format=self.format,
                    operation="NOOP",
                    version=base_version,
                    rows_written=0,
                    rows_deleted=0,
                    rows_updated=0,
                    rows_inserted=0,
                )
            return self._apply_merge(ref, plan, keys, commit_metadata)

        return self._retry_lost_races(attempt)

    def _plan_merge(
        self,
        ref: TableRef,
        src: pl.DataFrame,
        keys: Sequence[str],
        delete_missing: bool | Predicate,
        newer_by: str | None = None,
        *,
        version: int | None = None,
    ) -> MergePlan:
        """What to write, from the target rows at ``version`` (the one the commit will be based on)."""
        schema_plan = plan_write(str(ref), self.schema(ref), to_arrow(src).schema)
        # Compare source rows with the current target rows of the same keys (null-safe, every column).
        key_filter = self._key_predicate(src, keys)
        target = self.read(ref, where=key_filter, version=version).collect()
        value_cols = [c for c in src.columns if c not in keys]
        # columns the source does not carry keep the target's value on update (null on insert)
        kept_cols = [c for c in target.columns if c not in src.columns]
        tgt = target.select(
            *keys, *[pl.col(c).alias(f"{c}__target") for c in [*value_cols, *kept_cols] if c in target.columns]
        )
        joined = src.join(tgt.with_columns(pl.lit(True).alias("__matched")), on=list(keys), how="left")
        differs = [
            pl.col(c).ne_missing(pl.col(f"{c}__target")) if f"{c}__target" in joined.columns else pl.lit(True)
            for c in value_cols
        ]
        is_new = pl.col("__matched").is_null()
        changed = pl.any_horizontal(differs) if differs else pl.lit(False)
        if newer_by is not None and f"{newer_by}__target" in joined.columns:
            newer = pl.col(f"{newer_by}__target").is_null() | (pl.col(newer_by) > pl.col(f"{newer_by}__target"))
            changed = changed & newer.fill_null(False)
        flagged = joined.with_columns(is_new.alias("__new"), (~is_new & changed).alias("__changed"))
        upserts = flagged.filter(pl.col("__new") | pl.col("__changed")).select(
            *src.columns, *[pl.col(f"{c}__target").alias(c) for c in kept_cols]
        )
        inserted = flagged.filter(pl.col("__new")).height
        updated = flagged.filter(pl.col("__changed")).height
        delete_keys = src.select(list(keys)).clear()
        if delete_missing is not False:
            scope = None if delete_missing is True else delete_missing
            assert scope is None or isinstance(scope, Predicate)
            in_scope = self.read(ref, columns=list(keys), where=scope, version=version).collect()
            delete_keys = in_scope.join(src.select(list(keys)), on=list(keys), how="anti").unique()
        upserts_arrow = conform(to_arrow(upserts), schema_plan.target, table_name=str(ref))
        return MergePlan(
            upserts=upserts_arrow,
            delete_keys=to_arrow(delete_keys),
            inserted=inserted,
            updated=updated,
            new_columns=tuple(schema_plan.new_columns),
            base_version=version,
            newer_by=newer_by if newer_by in value_cols and newer_by in target.columns else None,
        )

    @staticmethod
    def _key_predicate(src: pl.DataFrame, keys: Sequence[str]) -> Predicate | None:
        """A filter that selects at least the target rows sharing a key with ``src`` (pushdown)."""
        if src.height == 0:
            return col(keys[0]).is_in([])
        if len(keys) == 1:
            return col(keys[0]).is_in(src.get_column(keys[0]).unique().to_list())
        # composite key: filter on the most selective column, exact matching happens in the join
        best = max(keys, key=lambda k: src.get_column(k).n_unique())
        return col(best).is_in(src.get_column(best).unique().to_list())

    @staticmethod
    def match_predicate(rows: pa.Table, keys: Sequence[str]) -> Predicate:
        """A predicate matching exactly the given key tuples (used for deletes by key)."""
        if len(keys) == 1:
            return col(keys[0]).is_in(rows.column(keys[0]).to_pylist())
        return any_of([all_of([col(k) == r[k] for k in keys]) for r in rows.select(list(keys)).to_pylist()])

    def count(self, ref: TableRef, where: Predicate | None = None) -> int:
        """Number of rows (optionally matching ``where``)."""
        lf = self.read(ref, where=where)
        return int(lf.select(pl.len()).collect().item())

    def read_polars_filter(self, lf: pl.LazyFrame, where: Predicate | None) -> pl.LazyFrame:
        return lf if where is None else lf.filter(to_polars(where))
