"""The `lakehouse` command as users run it: subprocesses on a fresh state folder."""

import json
from pathlib import Path

from conftest import DEMO_DAYS, daily_check_count, run_cli


def run(args, home: Path, **env):
    return run_cli(args, home, **env)


def test_demo_then_query_and_tables(demo):
    summary, truth, home = demo.summary, demo.truth, demo.home
    assert summary["format"] == demo.format and summary["daily_runs"] == DEMO_DAYS and summary["checks_failed"] == []
    checks = daily_check_count()
    assert len(demo.daily_checks) == DEMO_DAYS * checks
    assert summary["checks_passed"] + len(summary["checks_warned"]) == len(summary["checks"])

    query = demo.cli("query", "select count(*) as n from silver_retail.orders", "--json")
    assert query.returncode == 0, query.stderr[-2000:]
    assert json.loads(query.stdout) == [{"n": truth["orders"]["distinct_orders"]}]

    tables = demo.cli("tables", "--json")
    listed = {t["table"]: t for t in json.loads(tables.stdout)}
    assert set(listed) >= {
        "bronze.retail.orders",
        "bronze.retail.orders__quarantine",
        "bronze.retail.products",
        "bronze.retail.web_logs",
        "silver.retail.orders",
        "silver.retail.orders__quarantine",
        "gold.retail.daily_sales",
    }
    assert all(t["format"] == demo.format and isinstance(t["version"], int) for t in listed.values())
    assert listed["silver.retail.orders"]["rows"] == truth["orders"]["distinct_orders"]
    bronze = listed["bronze.retail.orders"]["rows"] + listed["bronze.retail.orders__quarantine"]["rows"]
    assert bronze == sum(truth["orders"]["rows_per_day"].values())
    # the embedded Dagster instance recorded the runs under the state folder
    assert (home / "dagster" / "dagster.yaml").is_file() and (home / "dagster" / "storage").is_dir()


def test_switching_format_on_an_existing_lake_is_refused_with_a_hint(tmp_path):
    home = tmp_path / "state"
    export = tmp_path / "export.csv"
    export.write_text("id,name\n1,a\n")
    # a lake with one Delta table (quicker to make than a demo)
    assert run(["ingest", str(export), "--table", "bronze.adhoc.export"], home).returncode == 0
    switched = run(["demo", "--days", "1", "--format", "iceberg"], home)
    assert switched.returncode == 2
    assert "delta table(s)" in switched.stderr and "--reset" in switched.stderr
    # what --reset does before the demo runs (the shared demo fixture runs `demo --reset` itself)
    from lakehouse.cli import reset_lake
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    settings = get_settings({"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLE_FORMAT": "iceberg"})
    assert [i.ref.name for i in Lake(settings).tables()] == ["export", "export__quarantine"]
    reset_lake(settings)
    assert Lake(settings).tables() == []


def test_bad_settings_and_bad_sql_give_clear_errors(tmp_path):
    bad = run(["tables"], tmp_path, LAKEHOUSE_TABLE_FORMAT="parquet")
    assert bad.returncode == 2
    assert "LAKEHOUSE_TABLE_FORMAT='parquet' is not valid; accepted values: delta, iceberg" in bad.stderr
    sql = run(["query", "select * from nowhere.nothing"], tmp_path)
    assert sql.returncode == 2 and "DuckDB:" in sql.stderr and "nothing" in sql.stderr


def test_ingest_reads_reports_and_writes_idempotently(tmp_path):
    home = tmp_path / "state"
    path = tmp_path / "export.csv"
    path.write_bytes("kunde;name;betrag\n00123;José;1,7\n00124;Zoë\n00125;Jürgen;2,5\n".encode("latin-1"))
    first = run(["ingest", str(path), "--table", "bronze.adhoc.export", "--json"], home)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["format"], summary["encoding"], summary["delimiter"]) == ("csv", "latin-1", ";")
    assert (summary["rows_read"], summary["rows_written"], summary["rows_quarantined"]) == (3, 2, 1)
    assert summary["first_reasons"] == [{"_source_line": 3, "_reason": "expected 3 fields, found 2"}]
    assert summary["schema"] == {"kunde": "string", "name": "string", "betrag": "string"}
    again = run(["ingest", str(path), "--table", "bronze.adhoc.export", "--json"], home)
    assert json.loads(again.stdout)["table_version"] > summary["table_version"]
    count = run(["query", "select count(*) as n, min(name) as first from bronze_adhoc.export", "--json"], home)
    assert json.loads(count.stdout) == [{"n": 2, "first": "José"}]  # re-ingesting the file replaced its rows
    human = run(["ingest", str(path)], home)
    assert (
        human.returncode == 0 and "rows read 3, written 2, quarantined 1" in human.stdout and "line 3:" in human.stdout
    )


def test_ingest_refuses_what_it_cannot_read(tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 not really")
    result = run(["ingest", str(junk)], tmp_path)
    assert result.returncode == 2 and "junk.parquet: not a readable Parquet file" in result.stderr
    missing = run(["ingest", str(tmp_path / "nope.csv")], tmp_path)
    assert missing.returncode == 2 and "nope.csv: cannot open the file" in missing.stderr
