"""LakehouseIOManager: partition-aware reads and writes, per-asset format and write mode."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from lakehouse.io_manager import FORMAT, MERGE_KEYS, PARTITION_EXPR, WRITE_MODE
from lakehouse.naming import TableRef
from lakehouse.tables import Lake

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@dg.asset(key=["bronze", "io", "daily"], partitions_def=DAILY, metadata={PARTITION_EXPR: "day"})
def daily(context: dg.AssetExecutionContext) -> pl.DataFrame:
    day = dt.date.fromisoformat(context.partition_key)
    return pl.DataFrame({"day": [day, day], "n": [day.day, day.day * 10]})


@dg.asset(
    key=["silver", "io", "weekly_sum"],
    partitions_def=DAILY,
    metadata={PARTITION_EXPR: "day"},
    ins={
        "daily": dg.AssetIn(
            key=["bronze", "io", "daily"], partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-6)
        )
    },
)
def weekly_sum(context: dg.AssetExecutionContext, daily: pl.LazyFrame) -> pl.DataFrame:
    assert isinstance(daily, pl.LazyFrame)
    frame = daily.collect()
    day = dt.date.fromisoformat(context.partition_key)
    return pl.DataFrame(
        {"day": [day], "days_seen": [frame.get_column("day").n_unique()], "total": [frame.get_column("n").sum()]}
    )


@dg.asset(key=["gold", "io", "latest"], metadata={WRITE_MODE: "merge", MERGE_KEYS: ["k"], FORMAT: "iceberg"})
def latest(weekly_sum: pl.DataFrame) -> pl.DataFrame:  # unpartitioned; reads every partition
    return pl.DataFrame({"k": [1], "rows": [weekly_sum.height]})


def _resources():
    from resources import build_resources

    return build_resources()


def test_window_mapping_loads_exactly_the_seven_days(lake_env, table_format):
    instance = dg.DagsterInstance.ephemeral()
    for i in range(1, 11):
        assert dg.materialize(
            [daily], partition_key=f"2024-01-{i:02d}", resources=_resources(), instance=instance
        ).success
    result = dg.materialize(
        [daily, weekly_sum],
        selection=[weekly_sum],
        partition_key="2024-01-10",
        resources=_resources(),
        instance=instance,
    )
    assert result.success
    lake = Lake()
    got = lake.store().read(TableRef("silver", "io", "weekly_sum")).collect()
    # days 4..10: n = day + 10*day
    assert got.to_dicts() == [{"day": dt.date(2024, 1, 10), "days_seen": 7, "total": sum(11 * d for d in range(4, 11))}]
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["dagster/row_count"].value == 1 and meta["lakehouse/operation"].value in (
        "CREATE",
        "OVERWRITE_PARTITIONS",
    )


def test_per_asset_format_and_merge_mode(lake_env, table_format):
    instance = dg.DagsterInstance.ephemeral()
    for key in ("2024-01-01", "2024-01-02"):
        dg.materialize([daily, weekly_sum], partition_key=key, resources=_resources(), instance=instance)
    first = dg.materialize([daily, weekly_sum, latest], selection=[latest], resources=_resources(), instance=instance)
    assert first.success
    lake = Lake()
    ref = TableRef("gold", "io", "latest")
    assert lake.format_of(ref) == "iceberg"  # declared on the asset, whatever the lake's default
    assert lake.store("iceberg").read(ref).collect().to_dicts() == [{"k": 1, "rows": 2}]
    again = dg.materialize([daily, weekly_sum, latest], selection=[latest], resources=_resources(), instance=instance)
    meta = again.get_asset_materialization_events()[0].materialization.metadata
    assert meta["lakehouse/operation"].value == "NOOP"


def test_partitioned_asset_without_partition_expr_is_a_clear_error(lake_env, table_format):
    @dg.asset(key=["bronze", "io", "nokey"], partitions_def=DAILY)
    def nokey() -> pl.DataFrame:
        return pl.DataFrame({"a": [1]})

    with pytest.raises(dg.DagsterInvariantViolationError, match="partition_expr"):
        dg.materialize([nokey], partition_key="2024-01-01", resources=_resources())
