"""The retail slice materialised in process, for both formats, against the simulator's truth."""

import json
from decimal import Decimal

import dagster as dg
import polars as pl
from conftest import DEMO_DAYS, daily_check_count

from lakehouse.naming import TableRef
from lakehouse.partitions import partition_dates
from lakehouse.simulator import TRUTH_PATH, SimulationConfig, generate


def run_partitions(settings, keys, instance):
    from lakehouse.cli import simulated_services
    from lakehouse.definitions import DAILY_JOB, build_definitions

    defs = build_definitions()
    job = defs.resolve_job_def(DAILY_JOB)
    with simulated_services(settings):
        results = [job.execute_in_process(partition_key=k, instance=instance, raise_on_error=False) for k in keys]
    for r in results:
        assert r.success, [e.message for e in r.all_events if e.is_failure]
    return results


def snapshot(lake) -> dict[str, pl.DataFrame]:
    """Every table's content (minus ingestion/fetch timestamps), sorted, for equality checks."""
    out = {}
    for info in lake.tables():
        df = lake.store(info.format).read(info.ref).collect()
        df = df.drop([c for c in ("_ingested_at", "_fetched_at") if c in df.columns])
        out[str(info.ref)] = df.select(sorted(df.columns)).sort(sorted(df.columns))
    return out


def test_slice_matches_the_truth_and_every_check_passes(demo):
    truth, lake, settings = demo.truth, demo.lake, demo.settings
    checks = demo.daily_checks
    assert len(checks) == daily_check_count() * DEMO_DAYS
    assert all(c["passed"] or c["severity"] == "WARN" for c in checks)

    silver = lake.store().read(TableRef("silver", "retail", "orders")).collect()
    assert silver.height == truth["orders"]["distinct_orders"]
    bronze_rows = lake.store().count(TableRef("bronze", "retail", "orders"))
    quarantined = lake.store().count(TableRef("bronze", "retail", "orders__quarantine"))
    assert bronze_rows + quarantined == sum(truth["orders"]["rows_per_day"].values())
    assert bronze_rows > silver.height  # corrections and duplicates were removed

    gold = lake.store().read(TableRef("gold", "retail", "daily_sales")).collect()
    for day in partition_dates(settings.start_date, DEMO_DAYS):
        got = gold.filter(pl.col("order_date") == pl.lit(day).str.to_date()).get_column("revenue").sum()
        assert Decimal(str(got)) == Decimal(truth["orders"]["revenue_per_day"][day])
        per_store = {
            str(r["store_id"]): Decimal(str(r["revenue"]))
            for r in gold.filter(pl.col("order_date") == pl.lit(day).str.to_date()).to_dicts()
        }
        assert per_store == {k: Decimal(v) for k, v in truth["orders"]["revenue_per_day_store"][day].items()}
    assert json.loads((settings.home / "landing" / TRUTH_PATH).read_text()) == truth


def test_materializations_record_table_metadata(demo):
    with dg.DagsterInstance.from_config(str(demo.home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["silver", "retail", "orders"]))
        bronze_event = instance.get_latest_materialization_event(dg.AssetKey(["bronze", "retail", "orders"]))
    assert event is not None and bronze_event is not None
    meta = event.asset_materialization.metadata
    assert meta["dagster/table_name"].value == "silver_retail.orders"
    assert meta["lakehouse/format"].value == demo.format
    assert meta["dagster/uri"].value.endswith("/silver/retail/orders")
    assert meta["dagster/row_count"].value == meta["rows_written"].value > 0
    assert isinstance(meta["lakehouse/version"].value, int)
    assert [c.name for c in meta["dagster/column_schema"].schema.columns][:3] == ["order_id", "order_ts", "order_date"]
    bronze = bronze_event.asset_materialization.metadata
    assert bronze["rows_read"].value == bronze["rows_written"].value + bronze["rows_quarantined"].value


def test_rerunning_a_partition_leaves_identical_content(demo, monkeypatch):
    demo.activate(monkeypatch)
    lake, settings = demo.lake, demo.settings
    before = snapshot(lake)
    versions = {str(i.ref): i.version for i in lake.tables()}
    with dg.DagsterInstance.from_config(str(demo.home / "dagster")) as instance:
        run_partitions(settings, [partition_dates(settings.start_date, DEMO_DAYS)[1]], instance)
    after = snapshot(lake)
    assert before.keys() == after.keys()
    for name in before:
        assert after[name].equals(before[name]), name
    assert any(i.version != versions[str(i.ref)] for i in lake.tables())  # it did write


def test_malformed_rows_are_quarantined_where_they_fail_and_counts_reconcile(settings, lake):
    generate(settings, SimulationConfig(start=settings.start_date, days=1, seed=3))
    day = settings.start_date.isoformat()
    path = settings.home / "landing" / "retail" / "orders" / day / f"orders_{day}.csv"
    lines = path.read_text().splitlines()
    lines.insert(3, "999999,2024-01-01T10:00:00Z,1,1,web,completed")  # ragged: 6 of 10 fields
    lines.insert(5, "999998,not-a-time,1,1,web,completed,EUR,10.00,Berlin,2024-01-01T10:00:00Z")  # untypeable
    lines.insert(7, "999997,2024-01-02T10:00:00Z,1,1,web,completed,EUR,10.00,Berlin,2024-01-02T10:00:00Z")  # wrong day
    path.write_text("\n".join(lines) + "\n")
    results = run_partitions(settings, [day], dg.DagsterInstance.ephemeral())
    failed = [(e.check_name, e.description) for e in results[0].get_asset_check_evaluations() if not e.passed]
    assert failed == []
    bq = lake.store().read(TableRef("bronze", "retail", "orders__quarantine")).collect().sort("_source_line")
    assert bq.select("_source_line", "_reason").to_dicts() == [
        {"_source_line": 4, "_reason": "expected 10 fields, found 6"},
        {"_source_line": 6, "_reason": "column order_ts: not-a-time does not fit timestamp"},
    ]
    sq = lake.store().read(TableRef("silver", "retail", "orders__quarantine")).collect()
    assert sq.select("_source_line", "_reason").to_dicts() == [
        {"_source_line": 8, "_reason": "order_date 2024-01-02 is outside partition 2024-01-01"}
    ]
