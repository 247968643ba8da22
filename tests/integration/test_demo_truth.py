"""After the demo, every check passes and the lake agrees with what the simulator says it wrote."""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
from conftest import DEMO_DAYS, daily_check_count

from lakehouse.naming import TableRef
from lakehouse.partitions import partition_dates

DAYS = DEMO_DAYS


def per_day(lake, name):
    ref = TableRef("bronze", "retail", name)
    frame = lake.existing_store(ref).read(ref, columns=["_partition_date"]).collect()
    return {d.isoformat(): n for d, n in frame.group_by("_partition_date").len().iter_rows()}


def test_every_run_and_error_check_passed(demo):
    summary = demo.summary
    assert summary["format"] == demo.format and summary["daily_runs"] == DAYS
    assert summary["failed_runs"] == [] and summary["checks_failed"] == []
    checks = demo.daily_checks
    assert len(checks) == daily_check_count() * DAYS  # every check of the daily job, every day
    reconciled = [c for c in checks if c["check"].startswith("bronze/") and c["check"].endswith(":rows_reconcile")]
    assert len(reconciled) == 6 * DAYS and all(c["passed"] for c in reconciled)
    warned = {(c["check"], c["description"]) for c in checks if not c["passed"]}
    assert warned == {
        ("bronze/retail/orders:schema_drift", "new column(s): coupon_code; column(s) absent from the files: -")
    }


def test_bronze_totals_equal_the_truth(demo):
    truth, lake = demo.truth, demo.lake
    expected = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for relative, counts in truth["files"].items():
        if relative.startswith("_simulator"):
            continue
        _, source, day, _ = relative.split("/", 3)
        expected[source][day][0] += counts["records"] - counts["bad"]
        expected[source][day][1] += counts["bad"]
    for source, days in expected.items():
        written, quarantined = per_day(lake, source), per_day(lake, f"{source}__quarantine")
        for day, (rows, bad) in days.items():
            assert (written.get(day, 0), quarantined.get(day, 0)) == (rows, bad), (source, day)
    assert (
        sum(truth["web_logs"]["truncated_per_day"].values()) == sum(per_day(lake, "web_logs__quarantine").values()) > 0
    )


def test_products_arrive_incrementally_as_the_api_changed(demo):
    settings, lake = demo.settings, demo.lake
    versions = json.loads((settings.home / "landing" / "_simulator" / "products.json").read_text())
    fetched = per_day(lake, "products")
    previous_end = None
    for key in partition_dates(settings.start_date, DAYS):
        end = f"{key}T23:59:59Z"
        latest = {}
        for v in versions:
            if v["updated_at"] <= end:
                latest[v["product_id"]] = v["updated_at"]
        changed = [p for p, ts in latest.items() if previous_end is None or ts > previous_end]
        assert fetched.get(key, 0) == len(changed), key
        previous_end = end


def test_silver_and_gold_agree_with_the_truth(demo):
    truth, lake = demo.truth, demo.lake
    silver = lake.store().read(TableRef("silver", "retail", "orders")).collect()
    assert silver.height == truth["orders"]["distinct_orders"]
    gold = lake.store().read(TableRef("gold", "retail", "daily_sales")).collect()
    for day, by_store in truth["orders"]["revenue_per_day_store"].items():
        rows = gold.filter(pl.col("order_date") == dt.date.fromisoformat(day))
        got = {str(s): Decimal(str(r)) for s, r in rows.select("store_id", "revenue").iter_rows()}
        assert got == {s: Decimal(v) for s, v in by_store.items()}, day


def query_file(settings, name):
    from lakehouse.query.duckdb import Query

    sql = (Path(__file__).resolve().parents[2] / "assets" / "retail" / "queries" / f"{name}.sql").read_text()
    with Query(settings) as q:
        return q.sql(sql)


def silver(lake, name):
    ref = TableRef("silver", "retail", name)
    return lake.existing_store(ref).read(ref).collect()


def test_fct_sales_equals_the_truth_per_day_and_store(demo):
    truth, lake = demo.truth, demo.lake
    facts = lake.store().read(TableRef("gold", "retail", "fct_sales")).collect()
    stores = lake.store().read(TableRef("gold", "retail", "dim_store")).collect().select("store_sk", "store_id")
    by_day_store = facts.join(stores, on="store_sk").group_by("order_date", "store_id").agg(pl.col("net_amount").sum())
    got = {(d.isoformat(), str(s)): Decimal(str(v)) for d, s, v in by_day_store.iter_rows()}
    expected = {
        (day, s): Decimal(v)
        for day, stores_ in truth["orders"]["revenue_per_day_store"].items()
        for s, v in stores_.items()
    }
    assert got == expected
    assert facts.height == sum(truth["orders"]["lines_per_day"].values())
    assert facts.filter(pl.col("customer_sk") == -1).height == 0  # every order's customer resolved (real or inferred)


def observable_changes(truth):
    """Segment changes the lake can see: the first snapshot (end of day one) already shows that
    day's changes as the starting state, so history starts after it."""
    first_day = truth["config"]["start"]
    return [c for c in truth["customers"]["segment_changes"] if c["day"] != first_day]


def test_customer_history_follows_the_truth(demo):
    truth, lake = demo.truth, demo.lake
    dim = lake.store().read(TableRef("gold", "retail", "dim_customer")).collect()
    changes = defaultdict(list)
    for change in observable_changes(truth):
        changes[change["customer_id"]].append(change)
    assert changes
    for customer_id, history in changes.items():
        versions = dim.filter(pl.col("customer_id") == customer_id).sort("valid_from")
        segments = versions.get_column("segment").to_list()
        expected = [history[0]["from"], *[c["to"] for c in history]]
        assert [s for i, s in enumerate(segments) if i == 0 or s != segments[i - 1]] == expected, customer_id
        starts = versions.get_column("valid_from").to_list()
        for change in history:
            assert dt.datetime.fromisoformat(change["at"].replace("Z", "+00:00")) in starts
    # late CRM sign-ups were inferred on the day of their first order and completed the next day
    late = [c for day in truth["customers"]["synced_late"].values() for c in day]
    assert late and dim.filter(pl.col("customer_id").is_in(late)).get_column("is_inferred").sum() == 0
    assert dim.filter(pl.col("customer_id").is_in(late)).group_by("customer_id").len().get_column("len").max() >= 1


def test_sales_by_region_and_month_query(demo):
    settings, lake = demo.settings, demo.lake
    lines, orders, stores = silver(lake, "order_lines"), silver(lake, "orders"), silver(lake, "stores")
    expected = (
        lines.join(orders.select("order_id", "store_id"), on="order_id")
        .join(stores.select("store_id", "region"), on="store_id")
        .with_columns(pl.col("order_date").dt.strftime("%Y-%m").alias("year_month"))
        .group_by("region", "year_month")
        .agg(
            pl.col("order_id").n_unique().alias("orders"),
            pl.col("quantity").sum().alias("units"),
            pl.col("net_amount").sum().alias("revenue"),
        )
    )
    got = query_file(settings, "sales_by_region_and_month")

    def as_map(frame):
        return {
            (r["region"], r["year_month"]): (r["orders"], int(r["units"]), Decimal(str(r["revenue"])))
            for r in frame.to_dicts()
        }

    assert as_map(got) == as_map(expected)


def test_top_products_by_margin_query(demo):
    settings, lake = demo.settings, demo.lake
    lines, products = silver(lake, "order_lines"), silver(lake, "products")
    expected = (
        lines.join(products.select("product_id", "unit_cost"), on="product_id")
        .with_columns((pl.col("net_amount") - pl.col("unit_cost") * pl.col("quantity")).alias("margin"))
        .group_by("product_id")
        .agg(pl.col("margin").sum())
        .sort(["margin", "product_id"], descending=[True, False])
        .head(10)
    )
    got = query_file(settings, "top_products_by_margin")
    assert got.get_column("product_id").to_list() == expected.get_column("product_id").to_list()
    assert [Decimal(str(m)) for m in got.get_column("margin")] == [
        Decimal(str(m)) for m in expected.get_column("margin")
    ]


def test_customer_segment_migration_query(demo):
    settings, truth = demo.settings, demo.truth
    pairs = defaultdict(set)
    for change in observable_changes(truth):
        pairs[(change["at"][:7], change["from"], change["to"])].add(change["customer_id"])
    got = query_file(settings, "customer_segment_migration")
    assert {(r["year_month"], r["from_segment"], r["to_segment"]): r["customers"] for r in got.to_dicts()} == {
        k: len(v) for k, v in pairs.items()
    }


def test_year_over_year_growth_query(demo):
    settings, truth = demo.settings, demo.truth
    got = query_file(settings, "year_over_year_growth").to_dicts()
    total = sum(Decimal(v) for v in truth["orders"]["revenue_per_day"].values())
    assert [(r["year_month"], Decimal(str(r["revenue"])), r["prior_year_revenue"]) for r in got] == [
        ("2024-01", total, None)
    ]
