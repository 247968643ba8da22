"""PostgreSQL in the scaled-out stack: the Iceberg SQL catalog (Trino's JDBC layout) and Dagster's
instance storage, against the real server on 127.0.0.1:5432."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import PROJECT_ROOT, postgres_database

from lakehouse.naming import TableRef

# one shared server, which the CDC test may restart: these run in one xdist worker
pytestmark = pytest.mark.xdist_group("postgres")

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"


@pytest.fixture
def database():
    """A fresh database for this test, dropped afterwards."""
    with postgres_database("lakehouse") as name:
        yield name


def test_iceberg_catalog_on_postgres_uses_the_jdbc_layout(lake_env, monkeypatch, database):
    import psycopg2

    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    monkeypatch.setenv("LAKEHOUSE_CATALOG_URI", f"{PG}/{database}")
    monkeypatch.setenv("LAKEHOUSE_TABLE_FORMAT", "iceberg")
    store = Lake(get_settings()).store()
    ref = TableRef("silver", "crm", "accounts")
    day = dt.date(2024, 1, 1)
    store.overwrite_partitions(ref, pl.DataFrame({"day": [day, day], "id": [1, 2]}), partition_by="day", values=[day])
    store.merge(ref, pl.DataFrame({"day": [day], "id": [3]}), keys=["id"])
    assert store.read(ref).collect().height == 3 and store.version(ref) >= 2
    with psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}") as conn, conn.cursor() as cur:
        cur.execute("SELECT catalog_name, table_namespace, table_name, metadata_location FROM iceberg_tables")
        rows = cur.fetchall()
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'iceberg_tables' ORDER BY column_name"
        )
        columns = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'iceberg_namespace_properties'")
        assert cur.fetchone()[0] == 1
    assert columns >= {
        "catalog_name",
        "table_namespace",
        "table_name",
        "metadata_location",
        "previous_metadata_location",
    }
    assert [(r[0], r[1], r[2]) for r in rows] == [("lakehouse", "silver_crm", "accounts")]
    assert rows[0][3].endswith(".metadata.json") and "/silver/crm/accounts/metadata/" in rows[0][3]


def test_dagster_instance_storage_on_postgres(tmp_path, monkeypatch, database):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    # SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql:// URL: name the installed driver
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}")

    @dg.asset
    def hello() -> int:
        return 1

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([hello], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("hello")) is not None
    import psycopg2

    with psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs")
        assert cur.fetchone()[0] == 1
    assert Path(home / "dagster.yaml").read_text().count("env: DAGSTER_POSTGRES_URL") == 1
