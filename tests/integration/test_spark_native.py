"""Spark with its real connectors (deploy/local/spark.sh: Delta, Iceberg's JDBC catalog, S3A) on
the lake's own tables, on a local folder and on S3: the web-traffic job over native reads equals
its polars twin; rows deleted by Spark (Delta deletion vectors, Iceberg merge-on-read delete
files) read the same in Spark, DuckDB (`lakehouse query`) and the TableStore; and each engine's
commits are seen by the other. One Spark session (this worker's), small tables."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import PROJECT_ROOT, postgres_database, require
from polars.testing import assert_frame_equal

from lakehouse.compute import ComputeResource, native_formats
from lakehouse.naming import TableRef, table_location
from lakehouse.query.duckdb import Query
from lakehouse.settings import Settings, get_settings
from lakehouse.sql import quote_ident, quote_literal, quote_qualified
from lakehouse.tables import Lake, col

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark-native")]

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
SCRIPT = PROJECT_ROOT / "deploy" / "local" / "spark.sh"
STORAGES = ("local", "s3")
DAYS = [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]


@pytest.fixture(scope="session")
def native_spark() -> Iterator[ComputeResource]:
    """This worker's Spark session with the connectors (resolved once by deploy/local/spark.sh)."""
    require(importlib.util.find_spec("pyspark") is not None, "pyspark is not installed (pip install .[spark])")
    require(shutil.which("java") is not None, "Java 17 is not installed (Spark needs it)")
    env = {**os.environ, "LAKEHOUSE_PYTHON": sys.executable}  # the jars of this Python's pyspark
    done = subprocess.run(["bash", str(SCRIPT), "install"], capture_output=True, text=True, timeout=1800, env=env)
    require(done.returncode == 0, f"Spark's connectors could not be installed: {done.stderr.strip()[-1500:]}")
    compute = ComputeResource(spark_master="local[2]", spark_jars=done.stdout.strip().splitlines()[-1])
    session = compute.spark()
    require(bool(native_formats(session)), "this process's Spark session was started without the connectors")
    yield compute
    session.stop()


@pytest.fixture(scope="session")
def catalog_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the Iceberg catalog of the S3 lakes (dropped afterwards)."""
    with postgres_database("lakehouse_spark") as database:
        yield f"{PG}/{database}"


@pytest.fixture(params=[(f, s) for s in STORAGES for f in ("delta", "iceberg")], ids=lambda p: f"{p[0]}-{p[1]}")
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """A lake of its own: a local folder (Iceberg: the embedded SQLite catalog), or a prefix on the
    session's S3 server (Iceberg: the Postgres catalog, under a catalog name of its own)."""
    fmt, storage = request.param
    uid = uuid.uuid4().hex[:8]
    env = {
        "LAKEHOUSE_HOME": str(tmp_path / "lake"),
        "LAKEHOUSE_TABLE_FORMAT": fmt,
        "LAKEHOUSE_CATALOG_NAME": f"lake_{uid}",
    }
    if storage == "s3":
        env.update(request.getfixturevalue("s3_server").env(f"spark-{uid}"))
        if fmt == "iceberg":
            env["LAKEHOUSE_CATALOG_URI"] = request.getfixturevalue("catalog_database")
    return get_settings(env)


def spark_of(compute: ComputeResource, settings: Settings) -> Any:
    """The lake's Spark session, when a connector of its format is published for this pyspark."""
    require(
        compute.reads_natively(settings.table_format),
        f"no {settings.table_format} connector for this pyspark (deploy/local/spark.sh lists them)",
    )
    return compute.lake_spark(settings)


def spark_rows(frame: Any) -> pl.DataFrame:
    out = pl.from_arrow(frame.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out


def spark_name(settings: Settings, ref: TableRef) -> str:
    """How Spark SQL addresses a table: Delta by location, Iceberg in the lake's catalog."""
    if settings.table_format == "delta":
        return f"delta.{quote_ident(table_location(ref, settings))}"
    return quote_qualified(settings.catalog_name, ref.namespace, ref.name)


def history_of(settings: Settings, ref: TableRef) -> str:
    """A Delta table in DESCRIBE HISTORY (Delta's own parser: the location as a string)."""
    return quote_literal(table_location(ref, settings))


# -- (a) the web-traffic job over native reads equals polars -----------------------------------------

REQUESTS = pl.DataFrame(
    {
        "log_date": [DAYS[0]] * 5 + [DAYS[1]] * 4,
        "client_ip": ["10.0.0.1", "10.0.0.1", "10.0.0.2", "66.249.1.1", "10.0.0.3",
                      "10.0.0.1", "10.0.0.4", "10.0.0.4", "66.249.1.1"],
        "status": [200, 200, 500, 200, 404, 200, 200, 503, 200],
        "bytes": [100, 200, None, 50, 10, 300, 20, 0, 70],
        "is_bot": [False, False, False, True, False, False, False, False, True],
        "product_id": [7, None, 7, 3, None, 9, 9, None, None],
        "path": ["/products/7", "/", "/products/7", "/products/3", "/x", "/products/9", "/products/9", "/", "/"],
    },
    schema_overrides={"status": pl.Int64, "bytes": pl.Int64, "product_id": pl.Int64},
)  # fmt: skip


def ts(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, minute, tzinfo=dt.UTC)


EVENTS = pl.DataFrame(
    {
        "event_id": [f"e{i}" for i in range(9)],
        "event_ts": [ts(1, 10, 0), ts(1, 10, 20), ts(1, 10, 50), ts(1, 11, 21), ts(1, 23, 50), ts(2, 0, 10),
                     ts(2, 9, 0), ts(2, 9, 0), ts(2, 9, 5)],
        "event_type": ["page_view", "page_view", "add_to_cart", "purchase", "page_view", "page_view",
                       "page_view", "page_view", "purchase"],
        "customer_id": [1, 1, 1, 1, None, None, None, None, None],
        "anonymous_id": ["a:1", "a:1", "a:1", "a:1", "x", "x", "y", "y", "y"],
    },
    schema_overrides={"event_ts": pl.Datetime("us", "UTC"), "customer_id": pl.Int64},
).with_columns(pl.col("event_ts").dt.date().alias("event_date"))  # fmt: skip


def test_web_traffic_over_native_reads_equals_polars(native_spark, lake, monkeypatch):
    from assets.retail.traffic import EVENTS as EVENTS_TABLE
    from assets.retail.traffic import REQUESTS as REQUESTS_TABLE
    from assets.retail.traffic import _polars, _spark

    tables = Lake(lake)
    store = tables.store()
    store.append(REQUESTS_TABLE.ref, REQUESTS, partition_by=["log_date"])
    store.append(EVENTS_TABLE.ref, EVENTS, partition_by=["event_date"])

    def no_data_files(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Spark path read data files instead of the table through its connector")

    monkeypatch.setattr(ComputeResource, "read_parquet", no_data_files)
    compute = native_spark
    spark_of(compute, lake)
    got = _spark(compute, tables, DAYS[1:])  # one day: the partition filter goes through the connector
    want = _polars(tables, DAYS[1:])
    assert want.get_column("requests").to_list() == [4]
    assert want.get_column("sessions").to_list() == [2]  # a:x after midnight, a:y
    assert_frame_equal(got, want, check_dtypes=False)


# -- (b) rows deleted by Spark's merge-on-read deletes read the same everywhere ---------------------

ITEMS = pl.DataFrame(
    {"id": list(range(12)), "day": [DAYS[i % 2] for i in range(12)], "amount": [i * 1.5 for i in range(12)]}
)
DELETED = [1, 4, 7, 10]


def test_rows_deleted_by_spark_with_deletion_vectors_or_delete_files_read_the_same_everywhere(native_spark, lake):
    ref = TableRef("silver", "spark", f"items_{uuid.uuid4().hex[:6]}")
    store = Lake(lake).store()
    store.append(ref, ITEMS, partition_by=["day"])
    before = store.version(ref)
    spark = spark_of(native_spark, lake)
    name = spark_name(lake, ref)
    if lake.table_format == "delta":
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    else:
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('write.delete.mode' = 'merge-on-read')")
    spark.sql(f"DELETE FROM {name} WHERE id IN ({', '.join(map(str, DELETED))})")

    # the delete left the data files in place and recorded the rows elsewhere
    if lake.table_format == "delta":
        last = spark.sql(f"DESCRIBE HISTORY {history_of(lake, ref)} LIMIT 1").collect()[0]
        assert last["operation"] == "DELETE"
        assert int(last["operationMetrics"]["numDeletionVectorsAdded"]) > 0, last["operationMetrics"]
    else:
        deletes = spark.sql(
            f"SELECT content FROM {quote_qualified(lake.catalog_name, ref.namespace, ref.name, 'delete_files')}"
        )
        contents = [r["content"] for r in deletes.collect()]
        assert contents and set(contents) == {1}, contents  # position deletes
    kept = sorted(set(range(12)) - set(DELETED))
    assert store.version(ref) > before  # the TableStore sees Spark's commit

    read_everywhere_as(kept, spark, lake, ref)

    # the TableStore deletes too, on a table that holds Spark's deletion vectors / delete files
    version = store.version(ref)
    result = store.delete(ref, col("id").is_in([0, 11]))
    assert store.version(ref) > (version or 0)
    read_everywhere_as([i for i in kept if i not in (0, 11)], spark, lake, ref)
    # counted on live rows: Spark's delete files do not count again when the rewrite drops them
    assert result.rows_deleted == 2


def read_everywhere_as(ids: list[int], spark: Any, lake: Settings, ref: TableRef) -> None:
    """Spark, DuckDB (``lakehouse query``) and the TableStore read exactly the rows ``ids``."""
    name = spark_name(lake, ref)
    assert sorted(r["id"] for r in spark.sql(f"SELECT id FROM {name}").collect()) == ids
    with Query(lake) as q:
        duck = q.sql(f"SELECT id, amount FROM {quote_qualified(ref.namespace, ref.name)} ORDER BY id")
    assert duck.get_column("id").to_list() == ids
    assert duck.get_column("amount").to_list() == [i * 1.5 for i in ids]
    table_store = Lake(lake).store().read(ref).collect().sort("id")
    assert table_store.get_column("id").to_list() == ids


# -- (c) commits of one engine are read by the other -------------------------------------------------


def test_spark_commits_are_read_by_the_table_store_and_its_commits_by_spark(native_spark, lake):
    ref = TableRef("silver", "spark", f"ledger_{uuid.uuid4().hex[:6]}")
    store = Lake(lake).store()
    store.append(ref, ITEMS.head(4), partition_by=["day"])
    v0 = store.version(ref)
    spark = spark_of(native_spark, lake)
    name = spark_name(lake, ref)
    first = spark_rows(spark.sql(f"SELECT id, day, amount FROM {name} ORDER BY id"))
    assert_frame_equal(first, ITEMS.head(4), check_dtypes=False)

    # Spark writes: an append through its connector
    extra = spark.createDataFrame(ITEMS.slice(4, 3).to_arrow())
    if lake.table_format == "delta":
        extra.write.format("delta").mode("append").save(table_location(ref, lake))
    else:
        extra.writeTo(quote_qualified(lake.catalog_name, ref.namespace, ref.name)).append()
    v1 = store.version(ref)
    assert v1 is not None and v0 is not None and v1 > v0
    assert_frame_equal(store.read(ref).collect().sort("id"), ITEMS.head(7), check_column_order=False)

    # the TableStore writes: Spark reads the new version (no stale cached snapshot)
    store.append(ref, ITEMS.slice(7, 2))
    assert store.version(ref) > v1
    got = spark_rows(spark.sql(f"SELECT id, day, amount FROM {name} ORDER BY id"))
    assert_frame_equal(got, ITEMS.head(9), check_dtypes=False)
    if lake.table_format == "delta":
        version = spark.sql(f"DESCRIBE HISTORY {history_of(lake, ref)} LIMIT 1").collect()[0]["version"]
    else:
        version = spark.sql(
            f"SELECT count(*) AS n FROM {quote_qualified(lake.catalog_name, ref.namespace, ref.name, 'snapshots')}"
        ).collect()[0]["n"]
    assert version == store.version(ref), json.dumps({"spark": version, "table_store": store.version(ref)})
