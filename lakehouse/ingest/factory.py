"""Source spec -> Dagster: a daily-partitioned bronze asset and its quarantine table, a
reconciliation check that recounts the landing files, and a schema-drift check (WARN).

Adding a source is adding YAML; this module turns every spec into definitions the same way.
"""

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa

from lakehouse.checks import RECONCILED, CheckOutcome, lake_check
from lakehouse.exceptions import TableNotFoundError, UnreadableFileError
from lakehouse.ingest.bronze import PARTITION_COLUMN, BronzeBatch, prepare_bronze
from lakehouse.ingest.infer import cast_text
from lakehouse.ingest.readers import count_records, read_file
from lakehouse.ingest.rest import RestOptions, read_rest
from lakehouse.ingest.result import ReadResult, quarantine_frame
from lakehouse.ingest.sources import SourceSpec, expand_env, files_for_partition, load_specs
from lakehouse.io_manager import FORMAT, PARTITION_EXPR
from lakehouse.metadata import Column, columns_metadata, outs_from_specs
from lakehouse.naming import pool_for
from lakehouse.partitions import daily_partitions, partition_values
from lakehouse.resource import LakeResource
from lakehouse.settings import Settings, get_settings
from lakehouse.storage import read_bytes
from lakehouse.tables import Lake, Predicate, col

__all__ = ["SCHEMA_DRIFT", "build_source", "build_sources", "relative_name"]

SCHEMA_DRIFT = "schema_drift"

LINEAGE_COLUMNS = [
    Column("_source_file", "string", "Landing file (or API page) the row came from, relative to the landing zone."),
    Column(
        "_source_line", "int64", "Line of the record in its file (record number for JSON/Parquet/Avro; page for APIs)."
    ),
    Column("_ingested_at", "timestamp[us, UTC]", "When the bronze partition was written."),
    Column("_row_hash", "string", "MD5 of the record's values; equal records share it across files."),
    Column(PARTITION_COLUMN, "date", "The day the record belongs to (the Dagster partition)."),
]
QUARANTINE_COLUMNS = [
    Column("_source_file", "string", "Landing file (or API page) of the record."),
    Column("_source_line", "int64", "Line (or record number, or page) of the record."),
    Column("_raw", "string", "The record as it appeared (text line, or its values as JSON)."),
    Column("_reason", "string", "Why the record could not be read or typed."),
    Column("_ingested_at", "timestamp[us, UTC]", "When the partition was written."),
    Column(PARTITION_COLUMN, "date", "The day the record belongs to (the Dagster partition)."),
]


def relative_name(settings: Settings, uri: str) -> str:
    prefix = settings.landing.rstrip("/") + "/"
    return uri[len(prefix) :] if uri.startswith(prefix) else uri


def _declared_columns(spec: SourceSpec) -> list[Column]:
    """Column docs for the catalog: declared in the spec (``columns:``) plus lineage."""
    columns = [Column(name, doc.type or "inferred", doc.description) for name, doc in spec.columns.items()]
    if spec.format == "log" and not columns:
        from lakehouse.ingest.logs import LOG_COLUMNS

        columns = [Column(n, "inferred", d) for n, d in LOG_COLUMNS.items()]
    if spec.format == "rest":
        columns.append(Column("_raw", "string", "The record exactly as the API returned it (JSON)."))
        columns.append(Column("_fetched_at", "timestamp[us, UTC]", "When the page was fetched."))
    return [*columns, *LINEAGE_COLUMNS]


def _row_days(result: ReadResult, column: str) -> pl.Series:
    """The date of each row from ``column`` (a date, a timestamp, or text holding either); null if none."""
    if column not in result.rows.columns:
        return pl.Series("__day", [None] * result.rows.height, dtype=pl.Date)
    raw = result.rows.get_column(column)
    if raw.dtype == pl.Date:
        return raw.alias("__day")
    if raw.dtype == pl.String:
        return cast_text(raw, pl.Datetime("us", "UTC")).dt.date().fill_null(cast_text(raw, pl.Date())).alias("__day")
    return raw.cast(pl.Datetime("us", "UTC"), strict=False).dt.date().alias("__day")


def _home_day(days: pl.Series, default: dt.date) -> dt.date:
    """Where a file's undated and unreadable records are quarantined: its earliest date, so each
    such record is counted in exactly one partition."""
    earliest = days.min()
    return earliest if isinstance(earliest, dt.date) else default


def _rows_for_day(result: ReadResult, column: str, day: dt.date, default: dt.date, source: str) -> ReadResult:
    """The part of a file that belongs to ``day`` when the date comes from a column."""
    days = _row_days(result, column)
    home = _home_day(days, default)
    rows = result.rows.filter(days == day)
    if day != home:
        return ReadResult(rows=rows, quarantine=result.quarantine.clear(), info=result.info)
    undated = result.rows.filter(days.is_null())
    bad = quarantine_frame(
        (source, n, json.dumps(r, default=str), f"{column} {r.get(column)!r} is not a date or timestamp")
        for n, r in zip(undated.get_column("_source_line").to_list(), undated.to_dicts(), strict=True)
    )
    return ReadResult(rows=rows, quarantine=pl.concat([result.quarantine, bad]), info=result.info)


def _read_partition(settings: Settings, spec: SourceSpec, key: str) -> tuple[list[ReadResult], list[dict[str, Any]]]:
    results, files = [], []
    day = dt.date.fromisoformat(key)
    for entry in files_for_partition(settings, spec, key):
        name = relative_name(settings, entry.uri)
        data = read_bytes(settings, entry.uri)
        result = read_file(data, source=name, fmt=spec.format, options=spec.options, explode=spec.explode)
        if spec.date_column:
            result = _rows_for_day(result, spec.date_column, day, settings.start_date, name)
        results.append(result)
        files.append(
            {
                "file": name,
                "bytes": entry.size,
                "rows": result.rows.height,
                "quarantined": result.quarantine.height,
                **{
                    k: v
                    for k, v in result.info.items()
                    if k in ("encoding", "delimiter", "compression", "parser", "format")
                },
            }
        )
    return results, files


def _high_water_mark(lake: Lake, spec: SourceSpec, field: str, exclude: Sequence[dt.date]) -> Any:
    """The largest ``field`` in bronze partitions before the ones being (re)written.

    Stored with the data it describes (committed together), so a re-run of a partition fetches
    the same records again and a failed run leaves the mark where it was.
    """
    try:
        store = lake.existing_store(spec.bronze)
    except TableNotFoundError:
        return None
    where: Predicate = col(PARTITION_COLUMN) < min(exclude)
    frame = store.read(spec.bronze, columns=[field], where=where).select(pl.col(field).max()).collect()
    return frame.item() if frame.height else None


def _rest_options(spec: SourceSpec, partition_key: str) -> RestOptions:
    """The spec's API options for one partition: ``{date}`` in query parameters is the partition key."""
    options = expand_env(dict(spec.options))
    options["params"] = {k: str(v).replace("{date}", partition_key) for k, v in (options.get("params") or {}).items()}
    return RestOptions(**options)


def _table_schema(lake: Lake, spec: SourceSpec) -> pa.Schema | None:
    try:
        return lake.existing_store(spec.bronze).schema(spec.bronze)
    except TableNotFoundError:
        return None


def _postgres_source(spec: SourceSpec) -> dg.AssetsDefinition:
    """An unpartitioned bronze table that appends every captured change exactly once."""
    from lakehouse.ingest.postgres_cdc import CdcOptions, advance, capture, write_capture

    fmt = spec.table_format or get_settings().table_format
    options = CdcOptions(
        table=spec.options["table"],
        primary_key=list(spec.primary_key),
        dsn_env=spec.options.get("dsn_env", "LAKEHOUSE_CDC_DSN"),
        mode=spec.options.get("mode", "auto"),
        slot=spec.options.get("slot"),
        updated_at=spec.options.get("updated_at", "updated_at"),
        deleted_flag=spec.options.get("deleted_flag"),
    )
    columns = [
        *[Column(name, doc.type or "inferred", doc.description) for name, doc in spec.columns.items()],
        Column("_op", "string", "insert, update or delete (logical); upsert or delete (watermark)."),
        Column("_lsn", "int64", "WAL position of the change (logical mode)."),
        Column(
            "_commit_lsn",
            "int64",
            "WAL position of the change's commit (logical mode): the capture position, and with _lsn the commit order.",
        ),
        Column("_xid", "int64", "PostgreSQL transaction id of the change (logical mode)."),
        Column("_commit_ts", "timestamp[us, UTC]", "Commit time of the change (logical mode)."),
        *LINEAGE_COLUMNS,
    ]

    @dg.asset(
        key=spec.bronze.path,
        pool=pool_for(spec.bronze),
        owners=[spec.owner],
        kinds={"polars", fmt, "postgres"},
        tags=spec.tags,
        description=f"{spec.description}\n\nEvery INSERT/UPDATE/DELETE of `{options.table}`, captured exactly once "
        "(logical decoding when the server allows it, else an updated_at watermark).",
        metadata=columns_metadata(columns),
    )
    def _cdc(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
        the_lake = lake.lake()
        store = the_lake.store_for(spec.bronze)
        result = capture(store, spec.bronze, options)
        written = write_capture(
            store, spec.bronze, result, source=f"postgres:{options.table}", ingested_at=dt.datetime.now(dt.UTC)
        )
        if result.advance_to is not None:
            advance(options, result.advance_to)  # only after the bronze commit: a crash before it re-reads
        context.log.info(f"{spec.bronze}: captured {written} change(s) from {options.table} ({result.mode})")
        meta: dict[str, Any] = {"rows_captured": written, "cdc_mode": result.mode}
        meta.update({f"replication_{k}": v for k, v in result.lag.items() if v is not None})
        return dg.MaterializeResult(metadata=meta)

    return _cdc


def build_source(spec: SourceSpec) -> tuple[dg.AssetsDefinition, list[dg.AssetChecksDefinition]]:
    """The bronze multi-asset of one source and its checks."""
    if spec.format == "postgres":
        return _postgres_source(spec), []
    fmt = spec.table_format or get_settings().table_format
    bronze_key, quarantine_key = dg.AssetKey(spec.bronze.path), dg.AssetKey(spec.quarantine.path)
    meta: dict[str, Any] = {PARTITION_EXPR: PARTITION_COLUMN, "lakehouse/source_format": spec.format}
    if spec.table_format:
        meta[FORMAT] = spec.table_format
    where = f"Landing glob: `{spec.landing}`" if spec.landing else f"Fetched from `{spec.options.get('url')}`"
    kinds = {"polars", fmt, spec.format if spec.format != "log" else "logs"}
    specs = [
        dg.AssetSpec(
            bronze_key,
            description=f"{spec.description}\n\nRaw records typed only as far as is lossless, plus lineage columns. {where}."
            + (f" Primary key: {', '.join(spec.primary_key)}." if spec.primary_key else ""),
            metadata={**meta, **columns_metadata(_declared_columns(spec))},
            owners=[spec.owner],
            kinds=kinds,
            tags=spec.tags,
        ),
        dg.AssetSpec(
            quarantine_key,
            description=f"Records of `{spec.bronze}` that could not be read or typed, with file, line and reason. "
            "Rows read = rows in bronze + rows here.",
            metadata={**meta, **columns_metadata(QUARANTINE_COLUMNS)},
            owners=[spec.owner],
            kinds={"polars", fmt},
        ),
    ]

    @dg.multi_asset(
        name=f"bronze_{spec.domain}_{spec.name}",
        pool=pool_for(spec.bronze),
        outs=outs_from_specs(specs),
        partitions_def=daily_partitions,
        check_specs=[
            dg.AssetCheckSpec(
                SCHEMA_DRIFT,
                asset=bronze_key,
                description="Warns when a landing file adds columns to the table or lacks some of its columns.",
            )
        ],
        can_subset=False,
    )
    def _bronze(context: dg.AssetExecutionContext, lake: LakeResource) -> Any:
        settings = lake.settings()
        the_lake = Lake(settings)
        ingested_at = dt.datetime.now(dt.UTC)
        days = partition_values(context.partition_keys)
        table_schema = _table_schema(the_lake, spec)
        batches: list[tuple[dt.date, BronzeBatch]] = []
        files: list[dict[str, Any]] = []
        extra: dict[str, Any] = {}
        for key, day in zip(context.partition_keys, days, strict=True):
            assert isinstance(day, dt.date)
            if spec.format == "rest":
                rest = _rest_options(spec, key)
                since = (
                    _high_water_mark(
                        the_lake, spec, rest.incremental_field, [d for d in days if isinstance(d, dt.date)]
                    )
                    if rest.incremental_field
                    else None
                )
                result, stats = read_rest(rest, since=since, fetched_at=ingested_at)
                results = [result]
                extra.update({"api_" + k: v for k, v in stats.as_metadata().items()}, high_water_mark=str(since))
                files.append({"file": rest.url, "pages": stats.pages, "rows": result.rows.height})
            else:
                try:
                    results, day_files = _read_partition(settings, spec, key)
                except UnreadableFileError as exc:
                    raise dg.Failure(description=str(exc)) from None
                files.extend(day_files)
            batch = prepare_bronze(results, table_schema=table_schema, hints=spec.type_hints, ingested_at=ingested_at)
            batches.append((day, batch))
        rows = (
            pl.concat(
                [
                    b.rows.with_columns(pl.lit(d, dtype=pl.Date).alias(PARTITION_COLUMN))
                    for d, b in batches
                    if b.rows.height
                ],
                how="diagonal_relaxed",
            )
            if any(b.rows.height for _, b in batches)
            else None
        )
        quarantine = pl.concat(
            [
                b.quarantine.with_columns(
                    pl.lit(ingested_at, dtype=pl.Datetime("us", "UTC")).alias("_ingested_at"),
                    pl.lit(d, dtype=pl.Date).alias(PARTITION_COLUMN),
                )
                for d, b in batches
            ],
            how="vertical_relaxed",
        )
        if rows is None:
            # nothing readable landed: write an empty partition with the table's (or a minimal) schema
            base = (
                pl.from_arrow(table_schema.empty_table())
                if table_schema is not None
                else pl.DataFrame(
                    schema={
                        "_source_file": pl.String,
                        "_source_line": pl.Int64,
                        "_ingested_at": pl.Datetime("us", "UTC"),
                        "_row_hash": pl.String,
                        PARTITION_COLUMN: pl.Date,
                    }
                )
            )
            assert isinstance(base, pl.DataFrame)
            rows = base
        read = sum(b.rows_read for _, b in batches)
        new_columns = sorted({c for _, b in batches for c in b.new_columns})
        missing = sorted({c for _, b in batches for c in b.missing_columns})
        types = {k: v for _, b in batches for k, v in b.types.items()}
        counts: dict[str, Any] = {
            "rows_read": read,
            "rows_quarantined": quarantine.height,
            "file_count": len(files),
            "files": dg.MetadataValue.json(files),
            "inferred_types": dg.MetadataValue.json(types),
            **extra,
        }
        if quarantine.height:
            from lakehouse.governance.masking import redact_reasons  # reasons quote values: never in the event log

            counts["first_reasons"] = dg.MetadataValue.json(
                redact_reasons(
                    quarantine.head(5).select("_source_file", "_source_line", "_reason").to_dicts(), settings
                )
            )
        if new_columns:
            counts["new_columns"] = ", ".join(new_columns)
        if missing:
            counts["missing_columns"] = ", ".join(missing)
        context.log.info(
            f"{spec.bronze}: read {read} row(s) from {len(files)} file(s); quarantined {quarantine.height}"
        )
        yield dg.Output(rows, output_name=bronze_key.to_python_identifier(), metadata=counts)
        yield dg.Output(
            quarantine,
            output_name=quarantine_key.to_python_identifier(),
            metadata={"rows_quarantined": quarantine.height},
        )
        drift = new_columns or missing
        yield dg.AssetCheckResult(
            asset_key=bronze_key,
            check_name=SCHEMA_DRIFT,
            passed=not drift,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"new column(s): {', '.join(new_columns) or '-'}; column(s) absent from the files: {', '.join(missing) or '-'}"
                if drift
                else "files match the table's columns"
            ),
            metadata={"new_columns": ", ".join(new_columns) or "none", "missing_columns": ", ".join(missing) or "none"},
        )

    checks = [] if spec.format == "rest" else [_reconciliation_check(spec)]
    return _bronze, checks


def _reconciliation_check(spec: SourceSpec) -> dg.AssetChecksDefinition:
    """Records in the landing files (counted independently) = bronze rows + quarantined rows."""

    def evaluate(lake: Lake, part: Predicate | None, context: dg.AssetCheckExecutionContext) -> CheckOutcome:
        settings = lake.settings
        landed = 0
        for key in context.partition_keys:
            day = dt.date.fromisoformat(key)
            for entry in files_for_partition(settings, spec, key):
                data = read_bytes(settings, entry.uri)
                records = count_records(data, fmt=spec.format, options=spec.options)
                if spec.date_column:  # rows of several days per file: those of this day (+ the file's rejects at home)
                    result = read_file(
                        data, source=entry.uri, fmt=spec.format, options=spec.options, explode=spec.explode
                    )
                    days = _row_days(result, spec.date_column)
                    if _home_day(days, settings.start_date) == day:
                        landed += records - int(((days != day) & days.is_not_null()).sum())
                    else:
                        landed += int((days == day).sum())
                else:
                    landed += records
        written = lake.existing_store(spec.bronze).count(spec.bronze, part)
        quarantined = lake.existing_store(spec.quarantine).count(spec.quarantine, part)
        passed = landed == written + quarantined
        return CheckOutcome(
            passed=passed,
            description=f"landing {landed} = bronze {written} + quarantine {quarantined}"
            if passed
            else f"landing has {landed} record(s) but bronze {written} + quarantine {quarantined} = {written + quarantined}",
            metadata={"rows_landed": landed, "rows_written": written, "rows_quarantined": quarantined},
        )

    return lake_check(
        asset=spec.bronze.path,
        name=RECONCILED,
        description="Records in the landing files (recounted independently) = rows in bronze + rows quarantined.",
        evaluate=evaluate,
        partitions_def=daily_partitions,
        partition_column=PARTITION_COLUMN,
    )


def build_sources(path: str) -> dg.Definitions:
    """Definitions for every source in one domain's YAML file."""
    assets, checks = [], []
    for spec in load_specs(path):
        asset, spec_checks = build_source(spec)
        assets.append(asset)
        checks.extend(spec_checks)
    return dg.Definitions(assets=assets, asset_checks=checks)
