"""Partition overwrite must stay O(partition): overwriting one day of a 365-day table, against
writing the same day into an empty table (goal: ratio <= 1.5)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile

import polars as pl

from bench import Figure, median_time

DAYS = 365
ROWS_PER_DAY = 2_000


def _day(day: dt.date, n: int = ROWS_PER_DAY) -> pl.DataFrame:
    return pl.DataFrame(
        {"day": [day] * n, "id": range(n), "amount": [float(i) for i in range(n)], "note": ["x" * 20] * n}
    )


def partition_overwrite(fmt: str, repeat: int = 5) -> Figure:
    from lakehouse.naming import TableRef
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    home = tempfile.mkdtemp(prefix="bench-lake-")
    settings = get_settings({**os.environ, "LAKEHOUSE_HOME": home, "LAKEHOUSE_TABLE_FORMAT": fmt})
    store = Lake(settings).store(fmt)
    big, empty = TableRef("silver", "bench", "year"), TableRef("silver", "bench", "empty")
    start = dt.date(2024, 1, 1)
    year = pl.concat([_day(start + dt.timedelta(days=i)) for i in range(DAYS)])
    store.overwrite_partitions(big, year, partition_by="day", values=year.get_column("day").unique().to_list())
    target = start + dt.timedelta(days=180)
    one_day = _day(target)

    def overwrite_in_year() -> None:
        store.overwrite_partitions(big, one_day, partition_by="day", values=[target])

    def write_into_empty() -> None:
        store.overwrite_partitions(empty, one_day, partition_by="day", values=[target])

    def drop_empty() -> None:
        store.drop(empty)

    measured = median_time(overwrite_in_year, repeat=repeat)
    baseline = median_time(write_into_empty, repeat=repeat, setup=drop_empty)
    return Figure(
        name=f"overwrite 1 day of a {DAYS}-day table ({fmt})",
        seconds=measured,
        baseline_name="same day into an empty table",
        baseline_seconds=baseline,
        goal="<= 1.5",
        details={"rows_per_day": ROWS_PER_DAY, "days": DAYS},
    )
