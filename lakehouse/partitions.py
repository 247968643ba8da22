"""The partition definitions every layer shares.

Daily partitions start at ``LAKEHOUSE_START_DATE`` (default 2024-01-01) and include today, so a
file that lands today can be processed today. Partition keys are ISO dates (``YYYY-MM-DD``);
:func:`partition_values` turns them into the values of the table's partition column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import dagster as dg

from lakehouse.settings import get_settings

__all__ = ["DAILY_FORMAT", "daily_partitions", "partition_dates", "partition_values"]

DAILY_FORMAT = "%Y-%m-%d"


def _daily() -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=get_settings().start_date.isoformat(),
        fmt=DAILY_FORMAT,
        end_offset=1,
    )


#: Daily partitions shared by bronze, silver, gold and features.
daily_partitions = _daily()


def partition_values(keys: Iterable[str]) -> list[object]:
    """Partition keys as column values: ISO dates become ``datetime.date``, others stay strings."""
    out: list[object] = []
    for key in keys:
        try:
            out.append(dt.date.fromisoformat(key))
        except ValueError:
            out.append(key)
    return out


def partition_dates(start: dt.date, days: int) -> Sequence[str]:
    """``days`` consecutive partition keys starting at ``start``."""
    return [(start + dt.timedelta(days=i)).strftime(DAILY_FORMAT) for i in range(days)]
