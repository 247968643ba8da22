"""The dbt-duckdb plugin that makes the lake dbt's sources and targets.

Named in ``dbt_project/profiles.yml`` (``plugins: [{module: lakehouse.dbt.plugin}]``), it runs in
the dbt process, reads the lake's settings from the environment like every other entry point,
and on each DuckDB connection dbt opens:

- loads the pinned extensions offline and configures S3 (:func:`lakehouse.query.duckdb.configure`);
- registers every lakehouse table as a view ``<layer>_<domain>.<table>``: dbt sources and the
  marts of earlier runs resolve to the tables themselves, at the locations
  :func:`lakehouse.naming.table_location` gives (no path is written in the dbt project);
- registers the functions the ``lakehouse`` materialisation (``dbt_project/macros/lakehouse.sql``)
  calls: ``lakehouse_staging_literal`` (where DuckDB stages a model's rows), ``lakehouse_commit``
  (hand them to the TableStore in one commit) and ``lakehouse_committed_at`` (when a table last
  changed, for source freshness).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from dbt.adapters.duckdb.plugins import BasePlugin
from lakehouse.naming import TableRef
from lakehouse.partitions import partition_dates
from lakehouse.query.duckdb import configure, register_tables, scan_sql
from lakehouse.settings import Settings, TableFormat, get_settings
from lakehouse.sql import quote_literal
from lakehouse.tables import Lake

__all__ = ["Plugin", "commit_staged"]


def _staging_dir(settings: Settings) -> Path:
    folder = settings.home / "dbt" / "staging"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _dates(lo: str, hi: str) -> list[str]:
    start, end = dt.date.fromisoformat(lo), dt.date.fromisoformat(hi)
    if end < start:
        raise ValueError(f"partition range {lo}..{hi} ends before it starts")
    return list(partition_dates(start, (end - start).days + 1))


def commit_staged(
    settings: Settings,
    ref: TableRef,
    staged: Path,
    *,
    partition_by: str = "",
    min_date: str = "",
    max_date: str = "",
    table_format: str = "",
    commit_metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write the rows DuckDB staged for a model into its lakehouse table, in one commit.

    With ``partition_by`` and a date range, exactly the partitions of the range are replaced
    (days without rows become empty, so a re-run is idempotent); otherwise the whole table is.
    """
    data = pq.read_table(staged)
    lake = Lake(settings)
    declared: TableFormat | None = "iceberg" if table_format == "iceberg" else "delta" if table_format else None
    store = lake.store_for(ref, declared)
    if partition_by and (min_date or max_date):
        if not (min_date and max_date):
            raise ValueError(f"{ref}: a partition range needs both min_date and max_date")
        result = store.overwrite_partitions(
            ref,
            data,
            partition_by=partition_by,
            values=[dt.date.fromisoformat(d) for d in _dates(min_date, max_date)],
            commit_metadata=commit_metadata,
        )
    else:
        result = store.overwrite(
            ref, data, partition_by=[partition_by] if partition_by else [], commit_metadata=commit_metadata
        )
    return {
        "table": str(ref),
        "format": result.format,
        "uri": result.uri,
        "version": result.version,
        "operation": result.operation,
        "rows_written": result.rows_written,
        "scan_sql": scan_sql(settings, ref, result.format),
    }


class Plugin(BasePlugin):  # type: ignore[misc]
    """dbt-duckdb plugin: the lake's tables as views, and the functions the materialisation calls.

    dbt's DuckDB database holds nothing but those views (refreshed on every connection, so an
    Iceberg view always reads the current snapshot); deleting it loses nothing.
    """

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.settings = get_settings()
        (self.settings.home / "dbt").mkdir(parents=True, exist_ok=True)  # the profile's database lives here

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        settings = self.settings
        configure(conn, settings)
        read_only = conn.execute("select current_setting('access_mode')").fetchone() == ("read_only",)
        if not read_only:  # dagster-dbt reads column metadata through a read-only connection
            register_tables(conn, settings, Lake(settings).table_refs())
        conn.create_function(
            "lakehouse_staging_literal", self._staging_literal, ["VARCHAR", "VARCHAR"], "VARCHAR", side_effects=True
        )
        conn.create_function("lakehouse_commit", self._commit, ["VARCHAR"] * 10, "VARCHAR", side_effects=True)
        conn.create_function(
            "lakehouse_committed_at", self._committed_at, ["VARCHAR", "VARCHAR"], "VARCHAR", side_effects=True
        )

    def _staging_literal(self, schema: str, name: str) -> str:
        path = _staging_dir(self.settings) / f"{schema}.{name}.{uuid.uuid4().hex}.parquet"
        return quote_literal(str(path))

    def _commit(
        self,
        schema: str,
        name: str,
        staged: str,
        partition_by: str,
        min_date: str,
        max_date: str,
        table_format: str,
        unique_id: str,
        invocation_id: str,
        dagster_run_id: str,
    ) -> str:
        path = Path(staged)
        try:
            outcome = commit_staged(
                self.settings,
                TableRef.parse(f"{schema}.{name}"),
                path,
                partition_by=partition_by,
                min_date=min_date,
                max_date=max_date,
                table_format=table_format,
                commit_metadata={
                    "dbt_model": unique_id,
                    "dbt_invocation_id": invocation_id,
                    **({"dagster_run_id": dagster_run_id} if dagster_run_id else {}),
                },
            )
        finally:
            path.unlink(missing_ok=True)
        return json.dumps(outcome)

    def _committed_at(self, schema: str, name: str) -> str:
        ref = TableRef.parse(f"{schema}.{name}")
        store = Lake(self.settings).existing_store(ref)
        history = store.history(ref, limit=1)
        return history[0].timestamp.isoformat() if history else ""
