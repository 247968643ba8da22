"""The date dimension: one row per day for the whole range, with calendar and fiscal attributes."""

from __future__ import annotations

import datetime as dt

import polars as pl

__all__ = ["DATE_COLUMNS", "date_dimension", "date_sk"]

#: column -> description, for the catalog
DATE_COLUMNS = {
    "date_sk": "Surrogate key: the date as an integer yyyymmdd (stable forever).",
    "date": "The calendar date.",
    "day_of_month": "Day of the month (1-31).",
    "day_of_year": "Day of the year (1-366).",
    "weekday": "ISO weekday, 1 = Monday ... 7 = Sunday.",
    "weekday_name": "Monday ... Sunday.",
    "is_weekend": "Saturday or Sunday.",
    "week_start": "Monday of the ISO week.",
    "iso_week": "ISO 8601 week number (1-53).",
    "iso_year": "ISO 8601 week-numbering year.",
    "month": "Month (1-12).",
    "month_name": "January ... December.",
    "year_month": "yyyy-mm, handy for grouping.",
    "quarter": "Calendar quarter (1-4).",
    "year": "Calendar year.",
    "fiscal_year": "Fiscal year (named after the calendar year it ends in).",
    "fiscal_quarter": "Fiscal quarter (1-4).",
    "fiscal_period": "Fiscal month (1-12) within the fiscal year.",
}


def date_sk(column: str | pl.Expr) -> pl.Expr:
    """yyyymmdd as Int64 from a date (or timestamp) column."""
    expr = pl.col(column) if isinstance(column, str) else column
    # parts first to Int64: polars' month and day are Int8, and 12 * 100 would wrap
    return expr.dt.year().cast(pl.Int64) * 10_000 + expr.dt.month().cast(pl.Int64) * 100 + expr.dt.day().cast(pl.Int64)


def date_dimension(start: dt.date, end: dt.date, *, fiscal_year_start_month: int = 2) -> pl.DataFrame:
    """Every day from ``start`` to ``end`` inclusive. The fiscal year starts on the first day of
    ``fiscal_year_start_month`` (February by default, as many retail calendars do)."""
    if not 1 <= fiscal_year_start_month <= 12:
        raise ValueError("fiscal_year_start_month must be 1..12")
    days = pl.date_range(start, end, interval="1d", eager=True).alias("date")
    shift = (pl.col("month") - fiscal_year_start_month) % 12  # months into the fiscal year
    return (
        pl.DataFrame({"date": days})
        .with_columns(
            date_sk("date").alias("date_sk"),
            pl.col("date").dt.day().cast(pl.Int32).alias("day_of_month"),
            pl.col("date").dt.ordinal_day().cast(pl.Int32).alias("day_of_year"),
            pl.col("date").dt.weekday().cast(pl.Int32).alias("weekday"),
            pl.col("date").dt.strftime("%A").alias("weekday_name"),
            (pl.col("date").dt.weekday() >= 6).alias("is_weekend"),
            (pl.col("date") - pl.duration(days=pl.col("date").dt.weekday() - 1)).alias("week_start"),
            pl.col("date").dt.week().cast(pl.Int32).alias("iso_week"),
            pl.col("date").dt.iso_year().cast(pl.Int32).alias("iso_year"),
            pl.col("date").dt.month().cast(pl.Int32).alias("month"),
            pl.col("date").dt.strftime("%B").alias("month_name"),
            pl.col("date").dt.strftime("%Y-%m").alias("year_month"),
            pl.col("date").dt.quarter().cast(pl.Int32).alias("quarter"),
            pl.col("date").dt.year().cast(pl.Int32).alias("year"),
        )
        .with_columns(
            (
                pl.col("year")
                + pl.when(fiscal_year_start_month > 1)
                .then((pl.col("month") >= fiscal_year_start_month).cast(pl.Int32))
                .otherwise(0)
            ).alias("fiscal_year"),
            (shift // 3 + 1).cast(pl.Int32).alias("fiscal_quarter"),
            (shift + 1).cast(pl.Int32).alias("fiscal_period"),
        )
        .select(list(DATE_COLUMNS))
    )
