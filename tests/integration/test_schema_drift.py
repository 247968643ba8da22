"""Schema drift in landing files: added columns, vanished columns, type conflicts (both formats)."""

from decimal import Decimal

import dagster as dg
import polars as pl

from lakehouse.ingest.factory import SCHEMA_DRIFT, build_source
from lakehouse.ingest.sources import SourceSpec
from lakehouse.naming import TableRef

SPEC = SourceSpec(
    name="sales",
    domain="shop",
    format="csv",
    landing="shop/sales/{date}/*.csv",
    description="Sales files whose layout changes over time.",
    owner="team:shop",
)


def run(settings, day, text):
    from resources import build_resources

    path = settings.home / "landing" / "shop" / "sales" / day / "sales.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    asset, checks = build_source(SPEC)
    result = dg.materialize([asset, *checks], partition_key=day, resources=build_resources(settings))
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    return evaluations, meta["bronze/shop/sales"]


def test_added_vanished_and_conflicting_columns(lake_env, settings, lake):
    evaluations, _ = run(settings, "2024-01-01", "id,amount\n1,10.50\n2,3.25\n")
    assert evaluations[SCHEMA_DRIFT].passed and evaluations["rows_reconcile"].passed

    evaluations, meta = run(settings, "2024-01-02", "id,amount,coupon\n3,1.00,SPRING\n")
    drift = evaluations[SCHEMA_DRIFT]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert drift.metadata["new_columns"].value == "coupon" and meta["new_columns"].value == "coupon"
    ref = TableRef("bronze", "shop", "sales")
    assert "coupon" in lake.store().schema(ref).names

    evaluations, meta = run(settings, "2024-01-03", "id\n4\n")
    assert evaluations[SCHEMA_DRIFT].metadata["missing_columns"].value == "amount, coupon"
    assert evaluations["rows_reconcile"].passed

    # "abc" cannot be the table's decimal: that row is quarantined, the file's other rows land
    evaluations, meta = run(settings, "2024-01-04", "id,amount\n5,abc\n6,7.00\n")
    assert evaluations["rows_reconcile"].passed
    assert meta["rows_read"].value == 2 and meta["rows_quarantined"].value == 1
    day4 = lake.store().read(ref).filter(pl.col("_partition_date") == pl.date(2024, 1, 4)).collect()
    assert day4.select("id", "amount").to_dicts() == [{"id": 6, "amount": Decimal("7.00")}]
    quarantine = lake.store().read(TableRef("bronze", "shop", "sales__quarantine")).collect()
    assert quarantine.select("_source_line", "_reason").to_dicts() == [
        {"_source_line": 2, "_reason": "column amount: abc does not fit decimal(18,2)"}
    ]
    assert lake.store().count(ref) == 5
