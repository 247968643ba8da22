"""Web traffic per day: clickstream sessions (a new session after 30 minutes without an event, and
at midnight UTC, as web analytics tools count them) and daily request aggregates, as pure
DataFrame -> DataFrame functions.

The same logic exists twice, on purpose: :func:`daily_web_traffic_spark` (window functions, for
volumes beyond one machine) and :func:`daily_web_traffic_polars` (the default engine, and the
reference the Spark job is tested against). Neither touches storage: the asset feeds them the
silver tables (read by Spark's Delta/Iceberg connectors, see lakehouse.compute) and commits their
result through the TableStore.
"""

from __future__ import annotations

from typing import Any

import polars as pl

__all__ = [
    "OUTPUT_COLUMNS",
    "SESSION_GAP_MINUTES",
    "daily_web_traffic_polars",
    "daily_web_traffic_spark",
    "sessions_polars",
    "sessions_spark",
]

SESSION_GAP_MINUTES = 30

#: output column -> description
OUTPUT_COLUMNS = {
    "traffic_date": "Day (UTC); the partition.",
    "requests": "Requests in the web server logs.",
    "bot_requests": "Requests from crawlers (by user agent).",
    "unique_clients": "Distinct client addresses among human requests.",
    "error_rate": "Share of requests answered 5xx.",
    "bytes_served": "Bytes sent (requests that logged them).",
    "product_page_views": "Human requests for /products/{id} pages.",
    "sessions": "Clickstream sessions (30 minutes of inactivity ends one).",
    "avg_session_minutes": "Average session length in minutes (first to last event).",
    "events": "Clickstream events.",
    "purchases": "Purchase events.",
    "conversion_rate": "Share of sessions with at least one purchase.",
}


def _visitor() -> pl.Expr:
    return pl.coalesce(
        pl.col("customer_id").cast(pl.String).str.replace(r"^", "c:"), pl.col("anonymous_id").str.replace(r"^", "a:")
    )


def sessions_polars(events: pl.DataFrame, gap_minutes: int = SESSION_GAP_MINUTES) -> pl.DataFrame:
    """One row per session: visitor, session number, start, end, events and purchases."""
    gap = pl.duration(minutes=gap_minutes)
    marked = (
        events.with_columns(_visitor().alias("visitor"))
        .sort("visitor", "event_ts", "event_id")
        .with_columns(
            (
                ((pl.col("event_ts") - pl.col("event_ts").shift(1).over("visitor")) > gap)
                | (pl.col("event_ts").dt.date() != pl.col("event_ts").shift(1).over("visitor").dt.date())
            )
            .fill_null(True)
            .alias("new_session")
        )
        .with_columns(pl.col("new_session").cast(pl.Int64).cum_sum().over("visitor").alias("session_number"))
    )
    return (
        marked.group_by("visitor", "session_number")
        .agg(
            pl.col("event_ts").min().alias("session_start"),
            pl.col("event_ts").max().alias("session_end"),
            pl.len().alias("events"),
            (pl.col("event_type") == "purchase").sum().alias("purchases"),
        )
        .with_columns(pl.col("session_start").dt.date().alias("traffic_date"))
        .sort("visitor", "session_number")
    )


def daily_web_traffic_polars(
    requests: pl.DataFrame, events: pl.DataFrame, gap_minutes: int = SESSION_GAP_MINUTES
) -> pl.DataFrame:
    """Daily request and session aggregates (see :data:`OUTPUT_COLUMNS`)."""
    web = requests.group_by(pl.col("log_date").alias("traffic_date")).agg(
        pl.len().cast(pl.Int64).alias("requests"),
        pl.col("is_bot").sum().cast(pl.Int64).alias("bot_requests"),
        pl.col("client_ip").filter(~pl.col("is_bot")).n_unique().cast(pl.Int64).alias("unique_clients"),
        ((pl.col("status") >= 500).sum() / pl.len()).alias("error_rate"),
        pl.col("bytes").sum().cast(pl.Int64).alias("bytes_served"),
        (pl.col("product_id").is_not_null() & ~pl.col("is_bot")).sum().cast(pl.Int64).alias("product_page_views"),
    )
    sessions = (
        sessions_polars(events, gap_minutes)
        .group_by("traffic_date")
        .agg(
            pl.len().cast(pl.Int64).alias("sessions"),
            ((pl.col("session_end") - pl.col("session_start")).dt.total_seconds() / 60)
            .mean()
            .alias("avg_session_minutes"),
            pl.col("events").sum().cast(pl.Int64).alias("events"),
            pl.col("purchases").sum().cast(pl.Int64).alias("purchases"),
            ((pl.col("purchases") > 0).sum() / pl.len()).alias("conversion_rate"),
        )
    )
    return (
        web.join(sessions, on="traffic_date", how="full", coalesce=True)
        .select(list(OUTPUT_COLUMNS))
        .sort("traffic_date")
    )


def sessions_spark(events: Any, gap_minutes: int = SESSION_GAP_MINUTES) -> Any:
    """The Spark version of :func:`sessions_polars` (lag + running sum over a window)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    visitor = F.coalesce(
        F.concat(F.lit("c:"), F.col("customer_id").cast("string")), F.concat(F.lit("a:"), F.col("anonymous_id"))
    )
    by_visitor = Window.partitionBy("visitor").orderBy("event_ts", "event_id")
    previous = F.lag(F.col("event_ts")).over(by_visitor)
    seconds = F.col("event_ts").cast("long") - previous.cast("long")
    starts = previous.isNull() | (seconds > gap_minutes * 60) | (F.to_date("event_ts") != F.to_date(previous))
    marked = (
        events.withColumn("visitor", visitor)
        .withColumn("new_session", F.when(starts, 1).otherwise(0))
        .withColumn("session_number", F.sum("new_session").over(by_visitor.rowsBetween(Window.unboundedPreceding, 0)))
    )
    return (
        marked.groupBy("visitor", "session_number")
        .agg(
            F.min("event_ts").alias("session_start"),
            F.max("event_ts").alias("session_end"),
            F.count(F.lit(1)).alias("events"),
            F.sum(F.when(F.col("event_type") == "purchase", 1).otherwise(0)).alias("purchases"),
        )
        .withColumn("traffic_date", F.to_date("session_start"))
    )


def daily_web_traffic_spark(requests: Any, events: Any, gap_minutes: int = SESSION_GAP_MINUTES) -> Any:
    """The Spark version of :func:`daily_web_traffic_polars`."""
    from pyspark.sql import functions as F

    human = ~F.col("is_bot")
    web = requests.groupBy(F.col("log_date").alias("traffic_date")).agg(
        F.count(F.lit(1)).alias("requests"),
        F.sum(F.col("is_bot").cast("long")).alias("bot_requests"),
        F.countDistinct(F.when(human, F.col("client_ip"))).alias("unique_clients"),
        (F.sum(F.when(F.col("status") >= 500, 1).otherwise(0)) / F.count(F.lit(1))).alias("error_rate"),
        F.sum("bytes").alias("bytes_served"),
        F.sum(F.when(F.col("product_id").isNotNull() & human, 1).otherwise(0)).alias("product_page_views"),
    )
    sessions = (
        sessions_spark(events, gap_minutes)
        .groupBy("traffic_date")
        .agg(
            F.count(F.lit(1)).alias("sessions"),
            F.avg((F.col("session_end").cast("long") - F.col("session_start").cast("long")) / 60.0).alias(
                "avg_session_minutes"
            ),
            F.sum("events").alias("events"),
            F.sum("purchases").alias("purchases"),
            (F.sum(F.when(F.col("purchases") > 0, 1).otherwise(0)) / F.count(F.lit(1))).alias("conversion_rate"),
        )
    )
    return web.join(sessions, on="traffic_date", how="full").select(*OUTPUT_COLUMNS).orderBy("traffic_date")


def main(argv: list[str] | None = None) -> None:
    """``spark-submit spark/web_traffic.py --requests DIR --events DIR --output DIR``: the same job
    over Parquet folders, for running on a cluster outside Dagster."""
    import argparse

    from pyspark.sql import SparkSession

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", required=True, help="Parquet files of silver web_requests.")
    parser.add_argument("--events", required=True, help="Parquet files of silver events.")
    parser.add_argument("--output", required=True, help="Where to write the daily aggregates (Parquet).")
    parser.add_argument("--gap-minutes", type=int, default=SESSION_GAP_MINUTES)
    args = parser.parse_args(argv)
    spark = SparkSession.builder.appName("web_traffic_daily").getOrCreate()
    result = daily_web_traffic_spark(
        spark.read.parquet(args.requests), spark.read.parquet(args.events), args.gap_minutes
    )
    result.write.mode("overwrite").partitionBy("traffic_date").parquet(args.output)


if __name__ == "__main__":
    main()
