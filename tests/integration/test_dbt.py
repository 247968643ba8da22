"""The dbt marts as lakehouse tables: built by the demo, checked by dbt tests as asset checks,
partition-aware, and one dbt invocation for a whole backfill."""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

import dagster as dg
import polars as pl
import pytest

from lakehouse.naming import TableRef
from lakehouse.tables import col

MARTS = [
    "mart_sales_daily",
    "mart_sales_monthly",
    "mart_sales_growth",
    "mart_customer_value",
    "mart_product_performance",
]
FCT = TableRef("gold", "retail", "fct_sales")
DAILY = TableRef("gold", "marts", "mart_sales_daily")


def table(lake, ref):
    return lake.existing_store(ref).read(ref).collect()


def mart_frame(demo):
    frame = table(demo.lake, DAILY)
    return frame.sort(["order_date", "store_id", "category"])


def manifest_tests_on_marts():
    from lakehouse.dbt.project import manifest_path

    manifest = json.loads(manifest_path().read_text())
    return {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test" and node.get("attached_node", "").startswith("model.lakehouse.mart_")
    }


def test_the_demo_builds_every_mart_and_every_dbt_test_passes_as_a_check(demo):
    nightly = [r for r in demo.summary["checks"] if r["check"].startswith("gold/marts/")]
    assert {c["check"].split(":", 1)[1] for c in nightly} == manifest_tests_on_marts()
    assert all(c["passed"] for c in nightly), [c for c in nightly if not c["passed"]]
    listed = {t["table"]: t for t in demo.summary["tables"]}
    for name in MARTS:
        assert listed[f"gold.marts.{name}"]["format"] == demo.format and listed[f"gold.marts.{name}"]["rows"] > 0

    # the marts agree with the simulator and with the star schema, computed independently here
    query = demo.cli(
        "query", "select order_date, sum(revenue) as revenue from gold_marts.mart_sales_daily group by 1", "--json"
    )
    assert query.returncode == 0, query.stderr[-2000:]
    got = {r["order_date"]: Decimal(r["revenue"]) for r in json.loads(query.stdout)}
    assert got == {day: Decimal(v) for day, v in demo.truth["orders"]["revenue_per_day"].items()}

    facts, customers = table(demo.lake, FCT), table(demo.lake, TableRef("gold", "retail", "dim_customer"))
    expected = (
        facts.join(customers.select("customer_sk", "customer_id"), on="customer_sk")
        .group_by("customer_id")
        .agg(pl.col("order_id").n_unique().alias("orders"), pl.col("net_amount").sum().alias("lifetime_value"))
    )
    value = table(demo.lake, TableRef("gold", "marts", "mart_customer_value"))
    assert value.height == expected.height
    joined = value.join(expected, on="customer_id", suffix="_expected")
    assert joined.filter(
        (pl.col("orders") != pl.col("orders_expected"))
        | (pl.col("lifetime_value") != pl.col("lifetime_value_expected"))
    ).is_empty()
    assert set(value.get_column("rfm_segment")) <= {"champions", "loyal", "new", "at_risk", "hibernating", "promising"}
    growth = table(demo.lake, TableRef("gold", "marts", "mart_sales_growth"))
    assert growth.get_column("prior_year_revenue").null_count() == growth.height  # the lake holds one year


def test_marts_carry_lineage_to_the_star_schema_and_the_table_metadata(demo):
    with dg.DagsterInstance.from_config(str(demo.home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(DAILY.path))
    assert event is not None
    meta = event.asset_materialization.metadata
    assert meta["dagster/table_name"].value == "gold_marts.mart_sales_daily"
    assert meta["lakehouse/format"].value == demo.format
    assert meta["dagster/row_count"].value == table(demo.lake, DAILY).height
    lineage = meta["dagster/column_lineage"].value.deps_by_column
    assert {(d.asset_key.to_user_string(), d.column_name) for d in lineage["revenue"]} == {
        ("gold/retail/fct_sales", "net_amount")
    }
    assert {(d.asset_key.to_user_string(), d.column_name) for d in lineage["category"]} == {
        ("gold/retail/dim_product", "category")
    }


def test_a_thirty_day_backfill_is_one_run_and_one_dbt_invocation(demo):
    before = mart_frame(demo)
    done = demo.cli(
        "backfill",
        'key:"gold/marts/mart_sales_daily"',
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-30",
        "--in-process",
        "--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    assert outcome["partitions"] == 30 and len(outcome["runs"]) == 1 and outcome["success"]
    run_id = outcome["runs"][0]["run_id"]
    with dg.DagsterInstance.from_config(str(demo.home / "dagster")) as instance:
        records = instance.fetch_materializations(dg.AssetKey(DAILY.path), limit=100).records
        ours = [r for r in records if r.run_id == run_id]
    assert ours
    invocations = {r.asset_materialization.metadata["invocation_id"].value for r in ours}
    assert len(invocations) == 1  # every partition of the range from one `dbt build`
    # the days with data are rewritten to identical content; the others are empty partitions
    assert mart_frame(demo).equals(before)


def _materialize_day(demo, day: str):
    from assets.marts import dbt_daily_marts
    from resources import build_resources

    with dg.DagsterInstance.from_config(str(demo.home / "dagster")) as instance:
        return dg.materialize(
            [dbt_daily_marts],
            partition_key=day,
            resources=build_resources(),
            instance=instance,
            raise_on_error=False,
        )


def test_a_partition_rerun_rewrites_only_its_day_and_a_failing_test_is_a_failed_check(demo, monkeypatch):
    demo.activate(monkeypatch)
    lake = demo.lake
    store, marts = lake.existing_store(FCT), lake.existing_store(DAILY)
    before_mart, before_mart_version = mart_frame(demo), marts.version(DAILY)
    before_fct = store.version(FCT)
    day3, day4 = dt.date(2024, 1, 3), dt.date(2024, 1, 4)
    try:
        # 1. the facts of days 3 and 4 change; a run of day 3 rewrites day 3 only
        changed = (
            store.read(FCT, where=col("order_date").is_in([day3, day4]))
            .collect()
            .with_columns((pl.col("net_amount") * 2).cast(pl.Decimal(18, 2)))
        )
        store.merge(FCT, changed, keys=["order_id", "line_number"])
        result = _materialize_day(demo, "2024-01-03")
        assert result.success
        after = mart_frame(demo)
        for day in before_mart.get_column("order_date").unique():
            old = before_mart.filter(pl.col("order_date") == day)
            new = after.filter(pl.col("order_date") == day)
            if day == day3:
                assert new.get_column("revenue").sum() == 2 * old.get_column("revenue").sum()
                assert new.drop("revenue").equals(old.drop("revenue"))
            else:
                assert new.equals(old), day  # day 4 changed upstream, but was not re-run

        # 2. a planted fact whose store is unknown: dbt's not_null test fails as an asset check
        store.restore(FCT, version=before_fct)
        planted = store.read(FCT, where=col("order_date") == day3).head(1).collect()
        planted = planted.with_columns(pl.lit(999_999).alias("order_id"), pl.lit(-42).alias("store_sk"))
        store.append(FCT, planted)
        result = _materialize_day(demo, "2024-01-03")
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        failed = checks["not_null_mart_sales_daily_store_id"]
        assert not failed.passed
        assert failed.metadata["dagster_dbt/failed_row_count"].value == 1
        assert all(e.passed for name, e in checks.items() if name != "not_null_mart_sales_daily_store_id")
    finally:  # leave the shared demo lake as it was (restores are new commits of the old content)
        if store.version(FCT) != before_fct:
            store.restore(FCT, version=before_fct)
        if marts.version(DAILY) != before_mart_version:
            marts.restore(DAILY, version=before_mart_version)
    assert mart_frame(demo).equals(before_mart)


@pytest.mark.parametrize(
    ("lo", "hi", "message"),
    [("2024-01-03", None, "must both be dates"), ("2024-1-3", "2024-01-04", "must both be dates")],
)
def test_a_bad_partition_range_stops_dbt_with_a_clear_error(lo, hi, message, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from lakehouse.dbt.project import DBT_PROJECT_DIR

    dbt = Path(sys.executable).parent / "dbt"
    variables = json.dumps({"min_date": lo, "max_date": hi})
    done = subprocess.run(
        [str(dbt), "compile", "--select", "mart_sales_daily", "--vars", variables, "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target")],
        capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "LAKEHOUSE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode != 0 and message in done.stdout


def test_per_model_docs_state_the_grain():
    from lakehouse.dbt.project import manifest_path

    manifest = json.loads(manifest_path().read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert models and all("grain" in n["description"] for n in models), [
        n["name"] for n in models if "grain" not in n["description"]
    ]
    owners = defaultdict(set)
    for n in models:
        owners[n["config"]["meta"].get("owner")].add(n["name"])
    assert set(owners) == {"team:retail-analytics"}


def test_the_marts_compile_for_the_trino_target_as_trino_sql(tmp_path):
    """The scale-out target: dbt-trino compiles every mart (offline: no cache, no server) into SQL
    that Trino's dialect parses, reading the catalog of the lake's format."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import sqlglot

    from lakehouse.dbt.project import DBT_PROJECT_DIR

    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(tmp_path),
        "LAKEHOUSE_QUERY_ENGINE": "trino",
        "LAKEHOUSE_TRINO_URL": "http://analyst@127.0.0.1:1",
        "LAKEHOUSE_TABLE_FORMAT": "iceberg",
    }
    target = tmp_path / "target"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "compile", "--no-populate-cache", "--select", "marts",
         "--vars", json.dumps({"min_date": "2024-01-01", "max_date": "2024-01-31"}),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    compiled = sorted((target / "compiled" / "lakehouse" / "models" / "marts").glob("*.sql"))
    assert [p.stem for p in compiled] == sorted(MARTS)
    for path in compiled:
        sql = path.read_text()
        assert '"iceberg"."gold_' in sql, path.name  # sources and refs in the lake's Trino catalog
        sqlglot.parse_one(sql, read="trino")  # raises on anything Trino would not parse
    daily = (target / "compiled" / "lakehouse" / "models" / "marts" / "mart_sales_daily.sql").read_text()
    assert "order_date between date '2024-01-01' and date '2024-01-31'" in daily
