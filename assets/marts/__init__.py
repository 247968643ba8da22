"""The dbt marts (``dbt_project/``) as assets under ``gold/marts/...``.

Two definitions because Dagster partitions per definition: the daily-partitioned marts (dbt tag
``daily``) run over a partition range in one dbt invocation (single-run backfill policy: a year
backfill is one ``dbt build``), the others rebuild whole. dbt tests are asset checks; every
materialisation carries the lake's table metadata (location, format, version, rows, the actual
column schema) and dagster-dbt's column lineage.
"""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliInvocation, DbtCliResource, dbt_assets

from lakehouse.dbt.project import (
    LakehouseDbtTranslator,
    column_lineage,
    lineage_ancestors,
    manifest_path,
    table_ref,
)
from lakehouse.io_manager import LakehouseIOManager
from lakehouse.partitions import daily_partitions
from lakehouse.resource import LakeResource

MANIFEST = manifest_path()
TRANSLATOR = LakehouseDbtTranslator()
DAILY = "tag:daily"


def _with_lake_metadata(invocation: DbtCliInvocation, lake: LakeResource) -> Iterator[Any]:
    """dbt's events, each model's output completed with what the table layer says it now holds
    (location, format, version, rows, the written column schema) and its column lineage."""
    tables = lake.lake()
    manifest = invocation.manifest
    models = {  # by output name: an Output names its asset by the key as a Python identifier
        dg.AssetKey(table_ref(node).path).to_python_identifier(): node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("materialized") == "lakehouse"
    }
    for event in invocation.stream():
        node = models.get(event.output_name) if isinstance(event, dg.Output) else None
        if node is None:
            yield event
            continue
        ref = table_ref(node)
        store = tables.existing_store(ref)
        descriptions = {name: col.get("description", "") for name, col in node.get("columns", {}).items()}
        extra = LakehouseIOManager.table_metadata(store, ref, descriptions)
        try:
            extra.update(_lineage(invocation, node["unique_id"], tables))
        except Exception as exc:  # lineage is documentation: never fail the run for it
            if invocation.context is not None:
                invocation.context.log.warning(f"no column lineage for {ref}: {exc}")
        keep = {k: v for k, v in event.metadata.items() if k != "dagster/column_schema"}
        yield event.with_metadata({**keep, **extra})


def _lineage(invocation: DbtCliInvocation, unique_id: str, tables: Any) -> dict[str, Any]:
    manifest = invocation.manifest
    schemas = {}
    for uid in [unique_id, *lineage_ancestors(manifest, unique_id)]:
        props = manifest["sources"].get(uid) or manifest["nodes"][uid]
        ref = table_ref(props)
        schemas[uid] = {f.name: str(f.type) for f in tables.existing_store(ref).schema(ref)}
    return column_lineage(
        manifest, unique_id, target_path=invocation.target_path, translator=TRANSLATOR, schemas=schemas
    )


def _vars(context: dg.AssetExecutionContext, **extra: str) -> list[str]:
    return ["--vars", json.dumps({"dagster_run_id": context.run_id, **extra})]


@dbt_assets(
    manifest=MANIFEST,
    select=DAILY,
    name="dbt_daily_marts",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=TRANSLATOR,
    pool="dbt",
)
def dbt_daily_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource, lake: LakeResource) -> Iterator[Any]:
    """Daily marts for the run's partition range: dbt vars min_date/max_date, one invocation."""
    window = context.partition_key_range
    args = ["build", *_vars(context, min_date=window.start, max_date=window.end)]
    yield from _with_lake_metadata(dbt.cli(args, context=context), lake)


@dbt_assets(
    manifest=MANIFEST,
    exclude=DAILY,
    name="dbt_marts",
    dagster_dbt_translator=TRANSLATOR,
    pool="dbt",
)
def dbt_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource, lake: LakeResource) -> Iterator[Any]:
    """Marts rebuilt whole (customer value, product performance, monthly sales, growth)."""
    yield from _with_lake_metadata(dbt.cli(["build", *_vars(context)], context=context), lake)


defs = dg.Definitions(assets=[dbt_daily_marts, dbt_marts])
