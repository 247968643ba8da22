"""Table contents to compare two lakes (or one lake before and after): every table of some layers
and a domain, read whole, sorted, without the columns that only record *when* a row was loaded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

#: columns whose value is the time of the run, not of the data
LOAD_TIME_COLUMNS = ("_ingested_at", "_fetched_at", "_loaded_at")


def table_contents(
    lake: Any, layers: Sequence[str] = ("silver", "gold"), domain: str = "retail"
) -> dict[str, pl.DataFrame]:
    """``{"layer.domain.table": rows}`` for every table of ``layers`` in ``domain``."""
    out = {}
    for info in lake.tables():
        if info.ref.layer not in layers or info.ref.domain != domain:
            continue
        df = lake.store(info.format).read(info.ref).collect()
        df = df.drop([c for c in df.columns if c in LOAD_TIME_COLUMNS])
        out[str(info.ref)] = df.select(sorted(df.columns)).sort(sorted(df.columns))
    return out


def differences(left: dict[str, pl.DataFrame], right: dict[str, pl.DataFrame]) -> list[str]:
    """What differs, one line per table (empty: the same tables with the same rows)."""
    problems = [f"{name}: only in one lake" for name in sorted(set(left) ^ set(right))]
    for name in sorted(set(left) & set(right)):
        a, b = left[name], right[name]
        if a.columns != b.columns:
            problems.append(f"{name}: columns {a.columns} != {b.columns}")
        elif not a.equals(b):
            problems.append(f"{name}: {a.height} rows vs {b.height}, contents differ")
    return problems
