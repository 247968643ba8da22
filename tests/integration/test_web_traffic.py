"""The Spark job (spark/web_traffic.py) on a real local Spark session equals its polars twin: on
crafted sessions, on a real Apache log (tests/data), and as the gold asset over the demo lake."""

import datetime as dt
import importlib.util
import shutil
import time

import dagster as dg
import polars as pl
import pytest
from conftest import TEST_DATA, require
from polars.testing import assert_frame_equal

from lakehouse.ingest.readers import read_file
from lakehouse.naming import TableRef
from lakehouse.partitions import partition_dates
from spark.web_traffic import daily_web_traffic_polars, daily_web_traffic_spark, sessions_polars, sessions_spark

WEB_TRAFFIC = TableRef("gold", "retail", "web_traffic_daily")
SPARK_START_SECONDS: list[float] = []


@pytest.fixture(scope="session")
def spark():
    require(importlib.util.find_spec("pyspark") is not None, "pyspark is not installed (pip install .[spark])")
    require(shutil.which("java") is not None, "Java 17 is not installed (Spark needs it)")
    from lakehouse.compute import ComputeResource

    started = time.perf_counter()
    session = ComputeResource(spark_master="local[2]").spark()
    session.range(1).count()  # the JVM and an executor are up
    SPARK_START_SECONDS.append(time.perf_counter() - started)
    print(f"\nSpark session start: {SPARK_START_SECONDS[0]:.1f}s")
    yield session
    session.stop()


def ts(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, minute, tzinfo=dt.UTC)


EVENTS = pl.DataFrame(
    {
        "event_id": [f"e{i}" for i in range(9)],
        "event_ts": [
            ts(1, 10, 0), ts(1, 10, 20), ts(1, 10, 50),  # visitor c:1: one session (gaps of 20, 30 minutes)
            ts(1, 11, 21),  # 31 minutes later: a second session, with a purchase
            ts(1, 23, 50), ts(2, 0, 10),  # a:x: split at midnight UTC although only 20 minutes apart
            ts(2, 9, 0), ts(2, 9, 0), ts(2, 9, 5),  # a:y: same timestamp twice, then a purchase
        ],
        "event_type": ["page_view", "page_view", "add_to_cart", "purchase", "page_view", "page_view",
                       "page_view", "page_view", "purchase"],
        "customer_id": [1, 1, 1, 1, None, None, None, None, None],
        "anonymous_id": ["a:1", "a:1", "a:1", "a:1", "x", "x", "y", "y", "y"],
    },
    schema_overrides={"event_ts": pl.Datetime("us", "UTC"), "customer_id": pl.Int64},
)  # fmt: skip


def test_sessions_end_after_30_idle_minutes_and_at_midnight():
    sessions = sessions_polars(EVENTS).select("visitor", "session_number", "events", "purchases", "traffic_date")
    assert sessions.rows() == [
        ("a:x", 1, 1, 0, dt.date(2024, 1, 1)),
        ("a:x", 2, 1, 0, dt.date(2024, 1, 2)),
        ("a:y", 1, 3, 1, dt.date(2024, 1, 2)),
        ("c:1", 1, 3, 0, dt.date(2024, 1, 1)),
        ("c:1", 2, 1, 1, dt.date(2024, 1, 1)),
    ]


def to_polars(frame) -> pl.DataFrame:
    return pl.from_arrow(frame.toArrow())


def test_spark_sessions_equal_polars(spark):
    got = to_polars(sessions_spark(spark.createDataFrame(EVENTS.to_arrow()))).sort("visitor", "session_number")
    want = sessions_polars(EVENTS)
    assert_frame_equal(got.select(want.columns), want, check_dtypes=False)


def shared_log_requests() -> pl.DataFrame:
    rows = read_file((TEST_DATA / "apache_logs" / "apache_logs.gz").read_bytes(), source="apache_logs.gz").rows
    return rows.select(
        pl.col("request_ts").dt.date().alias("log_date"),
        "client_ip",
        "status",
        "bytes",
        pl.col("user_agent").str.contains(r"(?i)bot|crawler|spider").fill_null(False).alias("is_bot"),
        pl.col("path").str.extract(r"^/products/([0-9]+)", 1).cast(pl.Int64, strict=False).alias("product_id"),
    )


def test_daily_traffic_over_the_shared_log_gives_its_known_answers_on_both_engines(spark):
    requests = shared_log_requests()
    want = daily_web_traffic_polars(requests, EVENTS.clear())
    # 2015-05-17 .. 2015-05-20; 9,999 parsed lines, 2,747,282,505 bytes, three 500s (tests/data/README.md)
    assert want.get_column("traffic_date").to_list() == [dt.date(2015, 5, d) for d in range(17, 21)]
    assert want.get_column("requests").sum() == 9_999
    assert want.get_column("bytes_served").sum() == 2_747_282_505
    assert round((want.get_column("error_rate") * want.get_column("requests")).sum()) == 3
    got = to_polars(
        daily_web_traffic_spark(
            spark.createDataFrame(requests.to_arrow()), spark.createDataFrame(EVENTS.clear().to_arrow())
        )
    )
    assert_frame_equal(got, want, check_dtypes=False)


def test_the_gold_asset_on_spark_equals_the_polars_run(spark, demo, monkeypatch):
    """The demo built web_traffic_daily with polars; re-running two of its partitions on Spark
    writes the same rows (so the shared demo lake is left as it was, or the test fails)."""
    from assets.retail.traffic import web_traffic_daily
    from lakehouse.compute import ComputeResource
    from resources import build_resources

    demo.activate(monkeypatch)
    truth, store = demo.truth, demo.lake.store()
    keys = list(partition_dates(demo.settings.start_date, 2))
    polars_run = store.read(WEB_TRAFFIC).collect().sort("traffic_date")
    lines, truncated = truth["web_logs"]["lines_per_day"], truth["web_logs"]["truncated_per_day"]
    assert polars_run.get_column("requests").to_list() == [lines[k] - truncated[k] for k in sorted(lines)]
    events = store.read(TableRef("silver", "retail", "events")).collect()
    assert polars_run.get_column("events").sum() == events.height > 0
    assert polars_run.get_column("sessions").min() > 0
    version = store.version(WEB_TRAFFIC)

    resources = {**build_resources(demo.settings), "compute": ComputeResource(spark_master="local[2]")}
    for key in keys:
        result = dg.materialize([web_traffic_daily], resources=resources, partition_key=key, raise_on_error=False)
        assert result.success
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        assert meta["engine"].value == "spark"
    assert store.version(WEB_TRAFFIC) >= version + 2  # a partition overwrite per run (Iceberg: 2 snapshots)
    spark_run = store.read(WEB_TRAFFIC).collect().sort("traffic_date")
    assert spark_run.schema == polars_run.schema
    assert_frame_equal(spark_run, polars_run, check_exact=False, rel_tol=1e-9)
