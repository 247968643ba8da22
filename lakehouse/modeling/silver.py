"""Silver entities declared as conformance specs, and the Dagster assets and checks built from them.

An entity names its bronze table, how its rows are conformed (:class:`ConformSpec`), its
documented columns (with lineage to bronze) and how it is written: event-like entities overwrite
their daily partition, snapshot entities are MERGEd on their key (a row replaces the current one
only when its ``updated_at`` is newer). Rejected rows go to ``<entity>__quarantine`` with reasons
and a check proves per partition that

    bronze rows = silver rows + duplicates removed + rejected rows
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dagster as dg
import polars as pl

from lakehouse.checks import RECONCILED, CheckOutcome, lake_check, unique_key_check
from lakehouse.ingest.bronze import PARTITION_COLUMN
from lakehouse.io_manager import MERGE_KEYS, MERGE_NEWER_BY, PARTITION_EXPR, WRITE_MODE, LakehouseIOManager
from lakehouse.metadata import Column, columns_metadata, outs_from_specs, polars_schema
from lakehouse.modeling.conform import Conformed, ConformSpec, conform
from lakehouse.naming import TableRef, pool_for
from lakehouse.partitions import daily_partitions, partition_values
from lakehouse.resource import LakeResource
from lakehouse.settings import get_settings
from lakehouse.tables import Lake, Predicate, col

__all__ = [
    "SilverEntity",
    "build_silver",
    "lineage_columns",
    "on_partition_day",
    "silver_definitions",
    "silver_reconciliation",
]


@dataclass(frozen=True)
class SilverEntity:
    """One silver table: its bronze source, how it is conformed, and its documented columns."""

    name: str
    bronze: TableRef
    description: str
    spec: ConformSpec
    columns: Sequence[Column]
    owner: str
    mode: Literal["partition", "merge"] = "partition"
    partition_column: str = PARTITION_COLUMN

    @property
    def ref(self) -> TableRef:
        return TableRef("silver", self.bronze.domain, self.name)

    @property
    def quarantine(self) -> TableRef:
        return TableRef("silver", self.bronze.domain, f"{self.name}__quarantine")


def lineage_columns(
    bronze: TableRef, specs: Sequence[tuple[str, str, str, Sequence[str] | None]], **flags: Any
) -> list[Column]:
    """Columns with lineage to ``bronze``: (name, type, description, bronze columns or None = same name)."""
    out = []
    for name, kind, description, upstream in specs:
        lineage = [(bronze.path, u) for u in (upstream if upstream is not None else [name])]
        out.append(Column(name, kind, description, lineage=lineage, **flags.get(name, {})))
    return out


def on_partition_day(column: str) -> Callable[[pl.DataFrame], pl.Expr]:
    """Reject rows whose day is not the partition's (they belong to another partition)."""

    def check(frame: pl.DataFrame) -> pl.Expr:
        return pl.when(pl.col(column).is_not_null() & (pl.col(column) != pl.col(PARTITION_COLUMN))).then(
            pl.format(f"{column} {{}} is outside partition {{}}", pl.col(column), pl.col(PARTITION_COLUMN))
        )

    return check


QUARANTINE_COLUMNS = [
    Column("_source_file", "string", "Landing file of the rejected row."),
    Column("_source_line", "int64", "Line of the rejected row."),
    Column("_raw", "string", "The bronze row as JSON."),
    Column("_reason", "string", "Why the row was rejected."),
    Column(PARTITION_COLUMN, "date", "The partition the row was read for."),
]


def _specs(entity: SilverEntity) -> list[dg.AssetSpec]:
    fmt = get_settings().table_format
    common: dict[str, Any] = {"owners": [entity.owner], "kinds": {"polars", fmt}}
    if entity.mode == "merge":
        write: dict[str, Any] = {WRITE_MODE: "merge", MERGE_KEYS: list(entity.spec.keys), MERGE_NEWER_BY: "updated_at"}
    else:
        write = {PARTITION_EXPR: entity.partition_column}
    return [
        dg.AssetSpec(
            entity.ref.path,
            description=entity.description,
            metadata={**write, **columns_metadata(entity.columns)},
            **common,
        ),
        dg.AssetSpec(
            entity.quarantine.path,
            description=f"Bronze rows rejected by `{entity.ref}` (unreadable values, missing keys, wrong day), with reasons.",
            metadata={PARTITION_EXPR: PARTITION_COLUMN, **columns_metadata(QUARANTINE_COLUMNS)},
            **common,
        ),
    ]


def _days(bronze: pl.DataFrame) -> list[pl.DataFrame]:
    """Bronze rows split by partition day, oldest first."""
    return [day for _, day in sorted(bronze.group_by(PARTITION_COLUMN), key=lambda g: g[0][0])]


def _combine(parts: Sequence[Conformed]) -> Conformed:
    """One day's result, or the days of a range (a single-run backfill) side by side: each day is
    conformed on its own, exactly as one run per day would (a key seen on two days stays on both)."""
    if len(parts) == 1:
        return parts[0]
    return Conformed(
        rows=pl.concat([p.rows for p in parts], how="diagonal_relaxed"),
        rejected=pl.concat([p.rejected for p in parts], how="diagonal_relaxed"),
        duplicates=sum(p.duplicates for p in parts),
    )


def build_silver(entity: SilverEntity) -> dg.AssetsDefinition:
    """The silver multi-asset of one entity (the table and its quarantine)."""
    keys = {e: dg.AssetKey(r.path) for e, r in (("main", entity.ref), ("quarantine", entity.quarantine))}

    @dg.multi_asset(
        name=f"silver_{entity.ref.domain}_{entity.name}",
        pool=pool_for(entity.ref),
        outs=outs_from_specs(_specs(entity)),
        ins={"bronze": dg.AssetIn(key=entity.bronze.path)},
        partitions_def=daily_partitions,
        check_specs=[
            dg.AssetCheckSpec(
                RECONCILED, asset=keys["main"], description="Bronze rows = silver rows + duplicates + rejected rows."
            )
        ]
        if entity.mode == "merge"
        else None,
        can_subset=False,
    )
    def _silver(context: dg.AssetExecutionContext, bronze: pl.DataFrame, lake: LakeResource) -> Any:
        days = _days(bronze) if bronze.height and bronze.get_column(PARTITION_COLUMN).n_unique() > 1 else [bronze]
        parts = [conform(day, entity.spec) for day in days]
        result = _combine(parts)
        counts = {
            "rows_in": bronze.height,
            "rows_conformed": result.rows.height,
            "rows_rejected": result.rejected.height,
            "duplicates_removed": result.duplicates,
        }
        main = keys["main"].to_python_identifier()
        if entity.mode == "merge" and len(parts) > 1:
            # a range (backfill): merge day by day, so the change feed keeps every day's state
            yield dg.Output(None, output_name=main, metadata={**counts, **_merge_in_order(context, lake, parts)})
        else:
            rows = (
                result.rows
                if result.rows.height
                else pl.DataFrame(schema=polars_schema([c for c in entity.columns if c.type != "list"]))
            )
            yield dg.Output(rows, output_name=main, metadata=counts)
        quarantine = result.rejected.join(
            bronze.select("_source_file", "_source_line", PARTITION_COLUMN),
            on=["_source_file", "_source_line"],
            how="left",
        ).unique(["_source_file", "_source_line"], maintain_order=True)
        yield dg.Output(
            quarantine,
            output_name=keys["quarantine"].to_python_identifier(),
            metadata={"rows_quarantined": quarantine.height},
        )
        if entity.mode == "merge":
            balanced = bronze.height == result.rows.height + result.duplicates + result.rejected.height
            yield dg.AssetCheckResult(
                asset_key=keys["main"],
                check_name=RECONCILED,
                passed=balanced,
                description=f"bronze {bronze.height} = conformed {result.rows.height} + duplicates {result.duplicates} + rejected {result.rejected.height}",
                metadata=counts,
            )

    def _merge_in_order(
        context: dg.AssetExecutionContext, lake: LakeResource, parts: list[Conformed]
    ) -> dict[str, Any]:
        store = lake.store(entity.ref)
        meta: dict[str, Any] = {}
        for part in parts:
            if not part.rows.height:
                continue
            written = store.merge(
                entity.ref,
                part.rows,
                keys=list(entity.spec.keys),
                newer_by="updated_at",
                commit_metadata={"dagster_run_id": context.run_id, "dagster_asset_key": "/".join(entity.ref.path)},
            )
            meta = LakehouseIOManager.write_metadata(store, entity.ref, written, store.info(entity.ref).rows)
        return meta

    return _silver


def silver_reconciliation(entity: SilverEntity) -> dg.AssetChecksDefinition:
    """Recounted from the tables: bronze partition rows = silver + quarantine + duplicates."""
    key_columns = list(entity.spec.keys)

    def evaluate(lake: Lake, part: Predicate | None, context: dg.AssetCheckExecutionContext) -> CheckOutcome:
        days = partition_values(context.partition_keys)
        where = col(PARTITION_COLUMN).is_in(days)
        bronze_cols = list(dict.fromkeys([*key_columns, "_source_file", "_source_line"]))
        bronze = lake.existing_store(entity.bronze).read(entity.bronze, columns=bronze_cols, where=where).collect()
        silver_rows = lake.existing_store(entity.ref).count(entity.ref, part)
        rejected = (
            lake.existing_store(entity.quarantine)
            .read(entity.quarantine, columns=["_source_file", "_source_line"], where=where)
            .collect()
        )
        accepted = bronze.join(rejected, on=["_source_file", "_source_line"], how="anti")
        duplicates = accepted.height - accepted.select(key_columns).n_unique()
        passed = bronze.height == silver_rows + rejected.height + duplicates
        return CheckOutcome(
            passed=passed,
            description=f"bronze {bronze.height} = silver {silver_rows} + quarantined {rejected.height} + duplicates {duplicates}",
            metadata={
                "rows_bronze": bronze.height,
                "rows_silver": silver_rows,
                "rows_quarantined": rejected.height,
                "duplicates_removed": duplicates,
            },
        )

    return lake_check(
        asset=entity.ref.path,
        name=RECONCILED,
        description="Bronze rows = silver rows + quarantined rows + duplicates removed (nothing lost), recounted from the tables.",
        evaluate=evaluate,
        partitions_def=daily_partitions,
        partition_column=entity.partition_column,
    )


def silver_definitions(entities: Sequence[SilverEntity]) -> dg.Definitions:
    """Assets of every entity, their reconciliation and unique-key checks."""
    checks = [silver_reconciliation(e) for e in entities if e.mode == "partition"]
    checks += [
        unique_key_check(
            asset=e.ref.path,
            columns=list(e.spec.keys),
            partitions_def=daily_partitions,
            partition_column=e.partition_column if e.mode == "partition" else None,
        )
        for e in entities
        if not all(k.startswith("_") for k in e.spec.keys)
    ]
    return dg.Definitions(assets=[build_silver(e) for e in entities], asset_checks=checks)
