"""``gold/retail/web_traffic_daily``: sessions and request aggregates per day, computed by the
``spark/web_traffic`` job on Spark when ``LAKEHOUSE_SPARK_MASTER`` is set, else by its polars twin.

On Spark the silver tables are read by Spark's Delta/Iceberg connectors when they are installed
(deploy/local/spark.sh), else from their current data files as listed by the TableStore. Either
way the result is committed by the IO manager as a partition overwrite, so the commit protocol
stays in one place.
"""

import datetime as dt
import time
from collections.abc import Sequence

import dagster as dg
import polars as pl

from assets.retail.silver import BY_NAME
from lakehouse.checks import aggregate_match_check
from lakehouse.compute import ComputeResource
from lakehouse.io_manager import PARTITION_EXPR
from lakehouse.metadata import Column, columns_metadata, polars_schema
from lakehouse.naming import TableRef, pool_for
from lakehouse.partitions import daily_partitions, partition_values
from lakehouse.resource import LakeResource
from lakehouse.tables import Lake, col
from spark.web_traffic import OUTPUT_COLUMNS, daily_web_traffic_polars, daily_web_traffic_spark

OWNER = "team:web-analytics"
REQUESTS, EVENTS = BY_NAME["web_requests"], BY_NAME["events"]
WEB_TRAFFIC = TableRef("gold", "retail", "web_traffic_daily")

_TYPES = {
    "traffic_date": "date",
    "error_rate": "float64",
    "avg_session_minutes": "float64",
    "conversion_rate": "float64",
}
_LINEAGE: dict[str, list[tuple[TableRef, str]]] = {
    "traffic_date": [(REQUESTS.ref, "log_date"), (EVENTS.ref, "event_ts")],
    "requests": [(REQUESTS.ref, "request_ts")],
    "bot_requests": [(REQUESTS.ref, "is_bot")],
    "unique_clients": [(REQUESTS.ref, "client_ip"), (REQUESTS.ref, "is_bot")],
    "error_rate": [(REQUESTS.ref, "status")],
    "bytes_served": [(REQUESTS.ref, "bytes")],
    "product_page_views": [(REQUESTS.ref, "product_id"), (REQUESTS.ref, "is_bot")],
    "sessions": [(EVENTS.ref, "customer_id"), (EVENTS.ref, "anonymous_id"), (EVENTS.ref, "event_ts")],
    "avg_session_minutes": [(EVENTS.ref, "event_ts")],
    "events": [(EVENTS.ref, "event_id")],
    "purchases": [(EVENTS.ref, "event_type")],
    "conversion_rate": [(EVENTS.ref, "event_type"), (EVENTS.ref, "event_ts")],
}
COLUMNS = [
    Column(
        name,
        _TYPES.get(name, "int64"),
        description,
        nullable=name != "traffic_date",
        lineage=[(ref.path, c) for ref, c in _LINEAGE[name]],
    )
    for name, description in OUTPUT_COLUMNS.items()
]

_REQUEST_COLUMNS = ["log_date", "client_ip", "status", "bytes", "is_bot", "product_id"]
_EVENT_COLUMNS = ["event_id", "event_ts", "event_type", "customer_id", "anonymous_id"]


def _polars(lake: Lake, days: Sequence[object]) -> pl.DataFrame:
    requests = lake.store_for(REQUESTS.ref).read(
        REQUESTS.ref, columns=_REQUEST_COLUMNS, where=col("log_date").is_in(days)
    )
    events = lake.store_for(EVENTS.ref).read(EVENTS.ref, columns=_EVENT_COLUMNS, where=col("event_date").is_in(days))
    return daily_web_traffic_polars(requests.collect(), events.collect())


def _spark(compute: ComputeResource, lake: Lake, days: Sequence[object]) -> pl.DataFrame:
    spark = compute.spark()

    def frame(ref: TableRef, column: str, wanted: list[str]):  # type: ignore[no-untyped-def]
        store = lake.store_for(ref)
        if compute.reads_natively(store.format):  # the connector: deletion vectors / delete files honoured
            table = compute.read_table(lake.settings, ref, store.format)
            return table.where(table[column].isin(list(days))).select(*wanted)
        # no connector for this pyspark (none is published for Spark 4.3): the current data files
        files, root = store.data_files(ref, where=col(column).is_in(days))
        if not files:  # an empty partition: Spark cannot infer a schema from no files
            empty = store.read(ref, columns=wanted).head(0).collect().to_arrow()
            return spark.createDataFrame(empty)
        return compute.read_parquet(files, root).select(*wanted)

    result = daily_web_traffic_spark(
        frame(REQUESTS.ref, "log_date", _REQUEST_COLUMNS), frame(EVENTS.ref, "event_date", _EVENT_COLUMNS)
    )
    out = pl.from_arrow(result.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out


@dg.asset(
    key=WEB_TRAFFIC.path,
    pool=pool_for(WEB_TRAFFIC),
    deps=[REQUESTS.ref.path, EVENTS.ref.path],
    partitions_def=daily_partitions,
    owners=[OWNER],
    kinds={"spark", "polars"},
    description=(
        "Web traffic per day (grain: traffic_date): requests, bots, unique clients, error rate and "
        "bytes from the access logs; sessions (30 minutes of inactivity or midnight UTC ends one), "
        "session length and conversion from the clickstream. Computed by spark/web_traffic.py on "
        "Spark when LAKEHOUSE_SPARK_MASTER is set, else by the same logic in polars."
    ),
    metadata={PARTITION_EXPR: "traffic_date", **columns_metadata(COLUMNS)},
)
def web_traffic_daily(
    context: dg.AssetExecutionContext, lake: LakeResource, compute: ComputeResource
) -> dg.Output[pl.DataFrame]:
    days = [d for d in partition_values(context.partition_keys) if isinstance(d, dt.date)]
    started = time.perf_counter()
    out = _spark(compute, lake.lake(), days) if compute.uses_spark else _polars(lake.lake(), days)
    out = out.filter(pl.col("traffic_date").is_in(days)) if out.height else pl.DataFrame(schema=polars_schema(COLUMNS))
    out = out.cast(polars_schema(COLUMNS))  # type: ignore[arg-type]
    return dg.Output(
        out,
        metadata={
            "engine": "spark" if compute.uses_spark else "polars",
            "spark_master": compute.spark_master or "",
            "compute_seconds": round(time.perf_counter() - started, 3),
            "sessions": int(out.get_column("sessions").fill_null(0).sum()),
        },
    )


requests_reconcile = aggregate_match_check(
    asset=WEB_TRAFFIC.path,
    upstream=REQUESTS.ref.path,
    aggregates={
        "requests": (pl.col("requests").sum(), pl.len()),
        "bytes_served": (pl.col("bytes_served").sum(), pl.col("bytes").sum()),
    },
    partitions_def=daily_partitions,
    partition_column="traffic_date",
    upstream_partition_column="log_date",
    name="requests_reconcile",
    description="Requests and bytes per day equal the silver web requests' (no log line lost or doubled).",
)
events_reconcile = aggregate_match_check(
    asset=WEB_TRAFFIC.path,
    upstream=EVENTS.ref.path,
    aggregates={
        "events": (pl.col("events").sum(), pl.len()),
        "purchases": (pl.col("purchases").sum(), (pl.col("event_type") == "purchase").sum()),
    },
    partitions_def=daily_partitions,
    partition_column="traffic_date",
    upstream_partition_column="event_date",
    name="events_reconcile",
    description="Every clickstream event of the day is in exactly one session.",
)

defs = dg.Definitions(assets=[web_traffic_daily], asset_checks=[requests_reconcile, events_reconcile])

__all__ = ["WEB_TRAFFIC", "defs", "web_traffic_daily"]
