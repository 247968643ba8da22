"""Building feature rows: trailing-window aggregates per entity and day, and the check that a
view's output matches its declaration before anything is written.

A row for day ``D`` aggregates events on days ``D-w+1 .. D`` (``w`` the window) and gets
``event_timestamp = D+1 00:00 UTC``: the moment every event it covers has happened, so a
point-in-time join never hands it to an earlier timestamp.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from lakehouse.features.exceptions import FeatureOutputError
from lakehouse.features.spec import EVENT_TIMESTAMP, FEATURE_DATE, FeatureDtype, FeatureView

__all__ = ["conform_output", "event_timestamp_of", "polars_type", "trailing_windows"]

_TYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "bool": pl.Boolean(),
    "string": pl.String(),
}


def polars_type(dtype: FeatureDtype | str) -> pl.DataType:
    return _TYPES[dtype]


def event_timestamp_of(day: dt.date) -> dt.datetime:
    """The ``event_timestamp`` of the row computed for ``day``: the following midnight, UTC."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)


def trailing_windows(
    frame: pl.DataFrame,
    *,
    key: str,
    day: str,
    days: Sequence[dt.date],
    windows: Mapping[int, Sequence[pl.Expr]],
    zero: Sequence[str] = (),
) -> pl.DataFrame:
    """Per entity and day ``D`` of ``days``: each window's aggregations over ``D-w+1 .. D``.

    Rows are emitted for every entity with an event in the longest window as of ``D`` *or*
    ``D-1``, so the day an entity leaves its window is written (counts 0, averages null) instead
    of its last value living on until the TTL expires. Columns in ``zero`` are 0 instead of null
    when the entity had no event in that window.
    """
    longest = max(windows)
    out = []
    for d in days:
        active = (
            frame.filter(pl.col(day).is_between(d - dt.timedelta(days=longest), d))
            .select(pl.col(key).unique())
            .drop_nulls()
        )
        row = active
        for w, aggs in windows.items():
            inside = frame.filter(pl.col(day).is_between(d - dt.timedelta(days=w - 1), d))
            row = row.join(inside.group_by(key).agg(aggs), on=key, how="left")
        out.append(row.with_columns(pl.lit(d).alias(FEATURE_DATE)))
    result = pl.concat(out, how="diagonal_relaxed") if out else pl.DataFrame()
    present = [c for c in zero if c in result.columns]
    return result.with_columns(pl.col(present).fill_null(0)) if present else result


def conform_output(view: FeatureView, frame: pl.DataFrame, days: Sequence[dt.date]) -> pl.DataFrame:
    """``frame`` as the view's table rows: declared columns in order, typed, ``event_timestamp``
    added, sorted; an empty frame gets the full schema.

    Raises:
        FeatureOutputError: for a missing or undeclared column, a value that does not fit its type,
            a null key, a day outside the partitions being written, or a key twice on one day.
    """
    where = f"feature view {view.name}"
    key_type = _TYPES[view.entity.dtype]
    schema: dict[str, pl.DataType] = {
        view.join_key: key_type,
        EVENT_TIMESTAMP: pl.Datetime("us", "UTC"),
        FEATURE_DATE: pl.Date(),
        **{f.name: _TYPES[f.dtype] for f in view.features},
    }
    if frame.width == 0 and frame.height == 0:
        return pl.DataFrame(schema=schema)
    wanted = [view.join_key, FEATURE_DATE, *view.feature_names]
    missing = [c for c in wanted if c not in frame.columns]
    extra = [c for c in frame.columns if c not in wanted and c != EVENT_TIMESTAMP]
    if missing or extra:
        raise FeatureOutputError(
            f"{where}: the computation returned columns that do not match the declaration "
            f"(missing: {', '.join(missing) or '-'}; undeclared: {', '.join(extra) or '-'})"
        )
    indexed = frame.with_row_index("__row")
    for name in wanted:
        target = key_type if name == view.join_key else schema[name]
        cast = pl.col(name).cast(target, strict=False)
        bad = indexed.filter(cast.is_null() & pl.col(name).is_not_null())
        if bad.height:
            row = int(bad.get_column("__row")[0])
            raise FeatureOutputError(
                f"{where}: row {row}, column {name!r}: {bad.get_column(name)[0]!r} is not a {target}"
            )
    typed = frame.select([pl.col(c).cast(schema[c]) for c in wanted])
    for name in (view.join_key, FEATURE_DATE):
        if typed.get_column(name).null_count():
            row = int(typed.with_row_index("__row").filter(pl.col(name).is_null()).get_column("__row")[0])
            raise FeatureOutputError(f"{where}: row {row} has no {name}")
    outside = typed.filter(~pl.col(FEATURE_DATE).is_in(list(days)))
    if outside.height:
        raise FeatureOutputError(
            f"{where}: {outside.height} row(s) have {FEATURE_DATE} outside the partitions being written "
            f"{[str(d) for d in days[:5]]} (e.g. {outside.get_column(FEATURE_DATE)[0]})"
        )
    dupes = (
        typed.group_by(view.join_key, FEATURE_DATE).len().filter(pl.col("len") > 1).sort(view.join_key, FEATURE_DATE)
    )
    if dupes.height:
        first = dupes.row(0, named=True)
        raise FeatureOutputError(
            f"{where}: {dupes.height} {view.join_key}/{FEATURE_DATE} pair(s) occur more than once, e.g. "
            f"{view.join_key}={first[view.join_key]!r} on {first[FEATURE_DATE]}"
        )
    stamped = typed.with_columns(
        (pl.col(FEATURE_DATE).cast(pl.Datetime("us")).dt.replace_time_zone("UTC") + pl.duration(days=1)).alias(
            EVENT_TIMESTAMP
        )
    )
    return stamped.select(list(schema)).sort(FEATURE_DATE, view.join_key)
