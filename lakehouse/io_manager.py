"""``LakehouseIOManager``: polars frames <-> lakehouse tables, partition aware.

An asset's definition metadata says how its table is written:

``partition_expr``
    the column that holds the Dagster partition (required for partitioned assets). A run for
    partitions ``k1..kn`` replaces exactly ``partition_expr IN (k1..kn)``; loading a partitioned
    upstream returns only the partitions the run asked for (partition mappings included).
``lakehouse/format``
    ``delta`` or ``iceberg`` for this table (default: ``LAKEHOUSE_TABLE_FORMAT``).
``lakehouse/write_mode``
    ``overwrite_partitions`` (default when partitioned), ``overwrite`` (default otherwise),
    ``append`` or ``merge``.
``lakehouse/merge_keys`` / ``lakehouse/merge_delete_missing`` / ``lakehouse/merge_newer_by``
    key columns for ``merge``, whether target rows absent from the output are deleted, and a
    column (e.g. ``updated_at``) that must increase for a matched row to be replaced.
``lakehouse/partition_by``
    physical partition columns of an unpartitioned asset's table.
``lakehouse/table_properties``
    table properties at creation (e.g. ``delta.enableChangeDataFeed``).

Every materialization records the table URI, format, version, operation, rows written,
``dagster/row_count``, ``dagster/column_schema`` and ``dagster/table_name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import dagster as dg
import polars as pl

from lakehouse.metadata import arrow_table_schema
from lakehouse.naming import TableRef
from lakehouse.partitions import partition_values
from lakehouse.resource import LakeResource
from lakehouse.retries import transient_retries
from lakehouse.settings import TableFormat
from lakehouse.tables import TableStore, WriteResult, col

__all__ = [
    "FORMAT",
    "MERGE_DELETE_MISSING",
    "MERGE_KEYS",
    "MERGE_NEWER_BY",
    "PARTITION_BY",
    "PARTITION_EXPR",
    "TABLE_PROPERTIES",
    "WRITE_MODE",
    "LakehouseIOManager",
]

FORMAT = "lakehouse/format"
WRITE_MODE = "lakehouse/write_mode"
MERGE_KEYS = "lakehouse/merge_keys"
MERGE_DELETE_MISSING = "lakehouse/merge_delete_missing"
MERGE_NEWER_BY = "lakehouse/merge_newer_by"
PARTITION_EXPR = "partition_expr"
PARTITION_BY = "lakehouse/partition_by"
TABLE_PROPERTIES = "lakehouse/table_properties"
_WRITE_MODES = ("overwrite_partitions", "overwrite", "append", "merge")


def _meta_value(meta: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = meta.get(key, default)
    return getattr(value, "value", value)  # MetadataValue wrappers -> raw values


def _declared_format(meta: Mapping[str, Any]) -> TableFormat | None:
    fmt = _meta_value(meta, FORMAT)
    if fmt is None:
        return None
    if fmt not in ("delta", "iceberg"):
        raise dg.DagsterInvariantViolationError(f"metadata {FORMAT}={fmt!r} must be 'delta' or 'iceberg'")
    return cast(TableFormat, fmt)


def _attempt(context: dg.OutputContext | dg.InputContext) -> int:
    """How many times this step already ran (0 outside a step, e.g. in unit tests)."""
    try:
        return int(context.step_context.previous_attempt_count)
    except Exception:
        return 0


class LakehouseIOManager(dg.ConfigurableIOManager):  # type: ignore[type-arg]
    """Stores polars DataFrames/LazyFrames as Delta or Iceberg tables at their mapped location."""

    lake: LakeResource

    def _store(self, ref: TableRef, meta: Mapping[str, Any]) -> TableStore:
        return self.lake.store(ref, _declared_format(meta))

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        with transient_retries(_attempt(context)):
            self._handle_output(context, obj)

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | pl.LazyFrame:
        with transient_retries(_attempt(context)):
            return self._load_input(context)

    def _handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return  # the asset wrote its table itself (e.g. an SCD2 merge) and reported metadata
        if not isinstance(obj, (pl.DataFrame, pl.LazyFrame)):
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: LakehouseIOManager stores polars DataFrame/LazyFrame, "
                f"got {type(obj).__name__}"
            )
        ref = TableRef.from_key(context.asset_key)
        meta = context.definition_metadata or {}
        store = self._store(ref, meta)
        commit = {
            "dagster_run_id": context.run_id,
            "dagster_asset_key": context.asset_key.to_user_string(),
        }
        properties = _meta_value(meta, TABLE_PROPERTIES)
        partitioned = context.has_asset_partitions
        mode = _meta_value(meta, WRITE_MODE) or ("overwrite_partitions" if partitioned else "overwrite")
        if mode not in _WRITE_MODES:
            raise dg.DagsterInvariantViolationError(f"{ref}: {WRITE_MODE}={mode!r} must be one of {_WRITE_MODES}")
        result: WriteResult
        partition_keys: Sequence[str] = context.asset_partition_keys if partitioned else ()
        if partitioned:
            commit["dagster_partitions"] = ",".join(partition_keys[:3]) + ("..." if len(partition_keys) > 3 else "")
        if mode == "overwrite_partitions":
            column = _meta_value(meta, PARTITION_EXPR)
            if not partitioned or not column:
                raise dg.DagsterInvariantViolationError(
                    f"{ref}: overwrite_partitions needs a partitioned asset with metadata {PARTITION_EXPR!r}"
                )
            result = store.overwrite_partitions(
                ref,
                obj,
                partition_by=column,
                values=partition_values(partition_keys),
                properties=properties,
                commit_metadata=commit,
            )
            rows = result.rows_written
        elif mode == "merge":
            keys = _meta_value(meta, MERGE_KEYS)
            if not keys:
                raise dg.DagsterInvariantViolationError(f"{ref}: write mode merge needs metadata {MERGE_KEYS!r}")
            delete_missing: Any = bool(_meta_value(meta, MERGE_DELETE_MISSING, False))
            column = _meta_value(meta, PARTITION_EXPR)
            if delete_missing and partitioned and column:
                delete_missing = col(column).is_in(partition_values(partition_keys))  # only this partition
            result = store.merge(
                ref,
                obj,
                keys=list(keys),
                delete_missing=delete_missing,
                newer_by=_meta_value(meta, MERGE_NEWER_BY),
                partition_by=list(_meta_value(meta, PARTITION_BY, ()) or ([column] if column else [])),
                properties=properties,
                commit_metadata=commit,
            )
            rows = store.info(ref).rows
        else:
            physical = list(_meta_value(meta, PARTITION_BY, ()) or ())
            write = store.append if mode == "append" else store.overwrite
            result = write(ref, obj, partition_by=physical, properties=properties, commit_metadata=commit)
            rows = store.info(ref).rows
        context.add_output_metadata(self.write_metadata(store, ref, result, rows))

    @staticmethod
    def write_metadata(store: TableStore, ref: TableRef, result: WriteResult, row_count: int) -> dict[str, Any]:
        """The metadata every table write reports (also used by assets that write through the store)."""
        meta: dict[str, Any] = {
            "dagster/uri": dg.MetadataValue.path(result.uri),
            "dagster/table_name": ref.sql_name,
            "dagster/row_count": row_count,
            "dagster/column_schema": arrow_table_schema(store.schema(ref)),
            "lakehouse/format": result.format,
            "lakehouse/version": result.version if result.version is not None else -1,
            "lakehouse/operation": result.operation,
            "rows_written": result.rows_written,
        }
        for name in ("rows_inserted", "rows_updated", "rows_deleted"):
            value = getattr(result, name)
            if value is not None:
                meta[name] = value
        if result.snapshot_id is not None:
            meta["lakehouse/snapshot_id"] = str(result.snapshot_id)
        if result.columns_added:
            meta["lakehouse/columns_added"] = ", ".join(result.columns_added)
        return meta

    @staticmethod
    def table_metadata(
        store: TableStore, ref: TableRef, descriptions: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The same keys, read back from a table another process wrote (e.g. a dbt model)."""
        info = store.info(ref)
        commits = store.history(ref, limit=1)
        return {
            "dagster/uri": dg.MetadataValue.path(info.uri),
            "dagster/table_name": ref.sql_name,
            "dagster/row_count": info.rows,
            "dagster/column_schema": arrow_table_schema(store.schema(ref), descriptions),
            "lakehouse/format": info.format,
            "lakehouse/version": info.version if info.version is not None else -1,
            "lakehouse/operation": commits[0].operation if commits else "",
        }

    def _load_input(self, context: dg.InputContext) -> pl.DataFrame | pl.LazyFrame:
        ref = TableRef.from_key(context.asset_key)
        upstream_meta: Mapping[str, Any] = {}
        if context.upstream_output is not None:
            upstream_meta = context.upstream_output.definition_metadata or {}
        lake = self.lake.lake()
        store = lake.existing_store(ref)
        where = None
        if context.has_asset_partitions:
            column = _meta_value(upstream_meta, PARTITION_EXPR)
            if not column:
                raise dg.DagsterInvariantViolationError(
                    f"upstream {ref} is partitioned but declares no {PARTITION_EXPR!r} metadata"
                )
            where = col(column).is_in(partition_values(context.asset_partition_keys))
        lf = store.read(ref, where=where)
        wanted = context.dagster_type.typing_type if context.dagster_type else None
        if wanted is pl.LazyFrame:
            return lf
        return lf.collect()
