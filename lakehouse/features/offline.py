"""Point-in-time-correct reads of feature tables: training sets and the values to serve online.

For each entity row ``(key, t)`` a point-in-time join returns, per view, the row with the latest
``event_timestamp <= t`` that is at most the view's TTL old (``event_timestamp >= t - ttl``), or
nulls. A feature row's ``event_timestamp`` is the end of the window it aggregates, so a value
computed from events after ``t`` can never be joined to ``t``: the join cannot leak the future.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

import polars as pl

from lakehouse.features.exceptions import EntityDataError
from lakehouse.features.registry import FeatureRegistry, Selection
from lakehouse.features.spec import EVENT_TIMESTAMP, FEATURE_DATE, FeatureView, full_name
from lakehouse.settings import Settings
from lakehouse.tables import Lake, Predicate, col

__all__ = [
    "TS_TYPE",
    "get_historical_features",
    "historical_features",
    "latest_values",
    "point_in_time_join",
    "prepare_entities",
    "read_view",
]

TS_TYPE = pl.Datetime("us", "UTC")
_KEY_TYPES: dict[str, pl.DataType] = {"int64": pl.Int64(), "string": pl.String()}
_ROW, _TS = "__row", "__t"


def _lake(lake: Lake | Settings) -> Lake:
    return lake if isinstance(lake, Lake) else Lake(lake)


def _utc(column: str, dtype: pl.DataType) -> pl.Expr:
    """``column`` as microsecond UTC timestamps (naive datetimes are read as UTC, dates as midnight)."""
    expr = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            expr = expr.dt.replace_time_zone("UTC")
        elif dtype.time_zone != "UTC":
            expr = expr.dt.convert_time_zone("UTC")
        return expr.dt.cast_time_unit("us")
    return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _first_bad_row(frame: pl.DataFrame, condition: pl.Expr) -> int:
    return int(frame.with_row_index(_ROW).filter(condition).get_column(_ROW)[0])


def prepare_entities(
    entity_df: pl.DataFrame, views: Sequence[FeatureView], *, timestamp_column: str = EVENT_TIMESTAMP
) -> pl.DataFrame:
    """Validate entity rows and add ``__row`` (original order), ``__t`` (UTC) and typed join keys
    ``__k_<join_key>``.

    Raises:
        EntityDataError: naming the row and the column of the first unusable value.
    """
    if timestamp_column not in entity_df.columns:
        raise EntityDataError(
            f"entity rows have no timestamp column {timestamp_column!r} (columns: {', '.join(entity_df.columns)})"
        )
    ts_type = entity_df.schema[timestamp_column]
    if not isinstance(ts_type, (pl.Datetime, pl.Date)):
        raise EntityDataError(f"entity rows: column {timestamp_column!r} is {ts_type}, not a datetime or date")
    keys = {v.join_key: v.entity for v in views}
    exprs = [pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW), _utc(timestamp_column, ts_type).alias(_TS)]
    for key, entity in keys.items():
        if key not in entity_df.columns:
            raise EntityDataError(
                f"entity rows have no join key column {key!r} for entity {entity.name!r} "
                f"(columns: {', '.join(entity_df.columns)})"
            )
        exprs.append(pl.col(key).cast(_KEY_TYPES[entity.dtype], strict=False).alias(f"__k_{key}"))
    for column in [timestamp_column, *keys]:
        if entity_df.get_column(column).null_count():
            row = _first_bad_row(entity_df, pl.col(column).is_null())
            raise EntityDataError(f"entity rows: row {row} has no value in column {column!r}")
    prepared = entity_df.with_columns(exprs)
    for key, entity in keys.items():
        bad = pl.col(f"__k_{key}").is_null()
        if prepared.select(bad.any()).item():
            row = int(prepared.filter(bad).get_column(_ROW)[0])
            value = entity_df.get_column(key)[row]
            raise EntityDataError(
                f"entity rows: row {row}, column {key!r}: {value!r} is not a valid {entity.dtype} key of entity "
                f"{entity.name!r}"
            )
    return prepared


def read_view(
    lake: Lake | Settings,
    view: FeatureView,
    features: Sequence[str] | None = None,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    version: int | None = None,
) -> pl.LazyFrame:
    """Rows of ``view`` with ``start <= event_timestamp <= end`` (partitions pruned by ``feature_date``)."""
    the_lake = _lake(lake)
    where: Predicate | None = None
    # event_timestamp is the midnight after feature_date: prune partitions with a day's margin
    if start is not None:
        where = col(FEATURE_DATE) >= (start - dt.timedelta(days=1)).date()
    if end is not None:
        upper = col(FEATURE_DATE) <= end.date()
        where = upper if where is None else where & upper
    names = list(features) if features is not None else view.feature_names
    store = the_lake.existing_store(view.ref)
    lf = store.read(view.ref, columns=[view.join_key, EVENT_TIMESTAMP, *names], where=where, version=version)
    if start is not None:
        lf = lf.filter(pl.col(EVENT_TIMESTAMP) >= start)
    if end is not None:
        lf = lf.filter(pl.col(EVENT_TIMESTAMP) <= end)
    return lf


def point_in_time_join(
    prepared: pl.DataFrame, view: FeatureView, features: Sequence[str], rows: pl.DataFrame | pl.LazyFrame
) -> pl.DataFrame:
    """Per prepared entity row (sorted by ``__t``), the view's features as of ``__t`` within TTL,
    named ``view__feature``, aligned row for row with ``prepared``."""
    key = view.join_key
    right = (
        rows.lazy()
        .select(
            pl.col(key).cast(_KEY_TYPES[view.entity.dtype]).alias(f"__k_{key}"),
            pl.col(EVENT_TIMESTAMP).cast(TS_TYPE).alias(_TS),
            *[pl.col(f).alias(full_name(view.name, f)) for f in features],
        )
        .sort(_TS)
    )
    left = prepared.lazy().select(_ROW, f"__k_{key}", _TS)
    joined = left.join_asof(
        right,
        on=_TS,
        by=f"__k_{key}",
        strategy="backward",  # the latest row at or before t: never one from the future
        tolerance=view.ttl,  # and not older than the TTL
        check_sortedness=False,
    )
    return joined.select([full_name(view.name, f) for f in features]).collect()


#: reads a view's rows with ``start <= event_timestamp <= end`` (only ``features`` and the keys)
Reader = Callable[[FeatureView, Sequence[str], dt.datetime, dt.datetime], pl.LazyFrame]


def historical_features(
    entity_df: pl.DataFrame,
    selections: Sequence[Selection],
    read: Reader,
    *,
    timestamp_column: str = EVENT_TIMESTAMP,
) -> pl.DataFrame:
    """The point-in-time join of :func:`get_historical_features` over any source of view rows."""
    clashes = [full_name(v.name, f) for v, fs in selections for f in fs if full_name(v.name, f) in entity_df.columns]
    if clashes:
        raise EntityDataError(f"entity rows already have column(s) {', '.join(clashes)}; rename them first")
    prepared = prepare_entities(entity_df, [v for v, _ in selections], timestamp_column=timestamp_column).sort(_TS)
    if prepared.height == 0:
        columns = {full_name(v.name, f): pl.Series([], dtype=_feature_type(v, f)) for v, fs in selections for f in fs}
        return entity_df.with_columns(**columns)
    start, end = prepared.get_column(_TS).min(), prepared.get_column(_TS).max()
    assert isinstance(start, dt.datetime) and isinstance(end, dt.datetime)
    parts = [prepared.select(_ROW)]
    for view, wanted in selections:
        keys = prepared.select(pl.col(f"__k_{view.join_key}").unique().alias(view.join_key)).lazy()
        rows = read(view, wanted, start - view.ttl, end).join(keys, on=view.join_key, how="semi")
        parts.append(point_in_time_join(prepared, view, wanted, rows))
    joined = pl.concat(parts, how="horizontal").sort(_ROW).drop(_ROW)
    return pl.concat([entity_df, joined], how="horizontal")


def get_historical_features(
    lake: Lake | Settings,
    entity_df: pl.DataFrame,
    features: Sequence[str | FeatureView],
    *,
    registry: FeatureRegistry | None = None,
    timestamp_column: str = EVENT_TIMESTAMP,
    versions: Mapping[str, int] | None = None,
) -> pl.DataFrame:
    """A training set: ``entity_df`` with, for each row and each requested feature, its value as
    of the row's ``timestamp_column`` (point in time, within the view's TTL; null otherwise).

    ``features``: ``"view"``, ``"view:feature"`` or views; ``registry`` defaults to the views
    found in the lake; ``versions`` pins a view's table version (time travel) for reproducibility.
    Columns are named ``view__feature``; row order and the entity columns are kept as given.

    Raises:
        UnknownFeatureError: for a reference that matches no registered view or feature.
        EntityDataError: for entity rows without a usable key or timestamp (names row and column).
    """
    the_lake = _lake(lake)
    selections = (registry or FeatureRegistry.from_lake(the_lake)).resolve(features)
    pinned = versions or {}

    def read(view: FeatureView, wanted: Sequence[str], start: dt.datetime, end: dt.datetime) -> pl.LazyFrame:
        return read_view(the_lake, view, wanted, start=start, end=end, version=pinned.get(view.name))

    return historical_features(entity_df, selections, read, timestamp_column=timestamp_column)


def _feature_type(view: FeatureView, name: str) -> pl.DataType:
    from lakehouse.features.windows import polars_type

    return polars_type(view.feature(name).dtype)


def latest_values(
    lake: Lake | Settings, view: FeatureView, *, as_of: dt.datetime, version: int | None = None
) -> pl.DataFrame:
    """Per entity, its latest row with ``as_of - ttl <= event_timestamp <= as_of``: exactly what a
    point-in-time join at ``as_of`` returns, for every entity that has a value then."""
    rows = read_view(lake, view, start=as_of - view.ttl, end=as_of, version=version)
    return (
        rows.sort(EVENT_TIMESTAMP)
        .unique(subset=[view.join_key], keep="last")
        .sort(view.join_key)
        .select(view.join_key, EVENT_TIMESTAMP, *view.feature_names)
        .collect()
    )
