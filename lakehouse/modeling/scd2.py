"""Slowly changing dimensions: type 2 history with type 1 corrections, inferred members and an
unknown member, written through :meth:`TableStore.merge` for Delta and Iceberg alike.

The merge recomputes the whole version chain of every natural key it touches from (existing
versions + incoming states), so it is

* idempotent: applying the same snapshot twice changes nothing (no commit);
* order-independent: a late snapshot with an older effective time slots into the history;
* stable: surrogate keys are hashes of (natural key, version start), and a key's first version
  always gets the same key, so an *inferred member* created for a fact that arrived before its
  dimension row is completed in place when the real row lands (same key, no duplicate).

Validity intervals are half-open ``[valid_from, valid_to)``, contiguous per key, the first
starting at :data:`MIN_TS` and the current one ending at :data:`MAX_TS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from lakehouse.modeling.keys import FIRST_VERSION, UNKNOWN_SK, surrogate_key
from lakehouse.naming import TableRef
from lakehouse.tables import TableStore, WriteResult, col

__all__ = ["MAX_TS", "MIN_TS", "SCD2Spec", "scd2_merge", "scd2_versions"]

MIN_TS = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
MAX_TS = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
_TS = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class SCD2Spec:
    """How a dimension keeps history.

    ``type2`` attributes start a new version when they change; ``type1`` attributes are
    corrected in place on every version; ``effective_from`` names the incoming column holding
    the time the state became true (e.g. the source's ``updated_at``).
    """

    natural_key: str
    surrogate_key: str
    type2: tuple[str, ...]
    type1: tuple[str, ...] = ()
    effective_from: str = "updated_at"
    unknown: Mapping[str, Any] = field(default_factory=dict)
    valid_from: str = "valid_from"
    valid_to: str = "valid_to"
    is_current: str = "is_current"
    is_inferred: str = "is_inferred"
    effective_at: str = "_effective_at"

    @property
    def attributes(self) -> tuple[str, ...]:
        return (*self.type1, *self.type2)

    @property
    def columns(self) -> list[str]:
        return [
            self.surrogate_key,
            self.natural_key,
            *self.attributes,
            self.valid_from,
            self.valid_to,
            self.is_current,
            self.is_inferred,
            self.effective_at,
        ]


def _state_hash(columns: Sequence[str]) -> pl.Expr:
    if not columns:  # type 1 only: a key never gets a second version
        return pl.lit("")
    return pl.concat_str([pl.col(c).cast(pl.String).fill_null("\x00") for c in columns], separator="\x1f")


def scd2_versions(
    existing: pl.DataFrame,
    incoming: pl.DataFrame,
    spec: SCD2Spec,
    *,
    inferred_keys: Iterable[Any] = (),
    deleted_keys: Iterable[Any] = (),
    schema: Mapping[str, pl.DataType] | None = None,
) -> pl.DataFrame:
    """The complete, recomputed versions of every natural key in ``incoming`` or
    ``inferred_keys``, plus the unknown member (a pure function; see the module docstring).
    Keys in ``deleted_keys`` (gone from the source) get no version, unless facts still refer to
    them, in which case they become inferred placeholders without attributes."""
    nk, eff = spec.natural_key, spec.effective_at
    schema = dict(schema or {})
    deleted = [k for k in deleted_keys if k is not None]
    incoming = incoming.filter(pl.col(nk).is_not_null() & ~pl.col(nk).is_in(deleted))
    inferred = {k for k in inferred_keys if k is not None}
    affected = set(incoming.get_column(nk).to_list()) | inferred
    attrs = list(spec.attributes)
    if existing.height:
        existing = existing.filter(pl.col(nk).is_in(list(affected)) & ~pl.col(nk).is_in(deleted))
    real = existing.filter(~pl.col(spec.is_inferred)) if existing.height else existing
    states = pl.concat(
        [
            frame
            for frame in (
                real.select(nk, pl.col(eff).cast(_TS), *attrs, pl.lit(0).alias("__src")) if real.height else None,
                incoming.select(nk, pl.col(spec.effective_from).cast(_TS).alias(eff), *attrs, pl.lit(1).alias("__src")),
            )
            if frame is not None
        ],
        how="vertical_relaxed",
    )
    states = states.sort([nk, eff, "__src"]).unique([nk, eff], keep="last", maintain_order=True)
    # type 1: the latest known values, applied to every version of the key
    latest = states.group_by(nk, maintain_order=True).last().select(nk, *spec.type1)
    # type 2: a new version only where the tracked attributes change
    marked = states.with_columns(_state_hash(spec.type2).alias("__state"))
    versions = marked.filter((pl.col("__state") != pl.col("__state").shift(1).over(nk)).fill_null(True)).drop(
        "__state", "__src", *spec.type1
    )
    versions = versions.join(latest, on=nk, how="left")
    is_first = pl.col(eff) == pl.col(eff).min().over(nk)
    versions = versions.sort([nk, eff]).with_columns(
        pl.when(is_first).then(pl.lit(MIN_TS, dtype=_TS)).otherwise(pl.col(eff)).alias(spec.valid_from),
    )
    versions = versions.with_columns(
        pl.col(spec.valid_from).shift(-1).over(nk).fill_null(pl.lit(MAX_TS, dtype=_TS)).alias(spec.valid_to),
        pl.lit(False).alias(spec.is_inferred),
    ).with_columns((pl.col(spec.valid_to) == pl.lit(MAX_TS, dtype=_TS)).alias(spec.is_current))
    keys = [
        surrogate_key(k, FIRST_VERSION if first else e)
        for k, e, first in zip(
            versions.get_column(nk).to_list(),
            versions.get_column(eff).to_list(),
            versions.select(is_first).to_series().to_list(),
            strict=True,
        )
    ]
    versions = versions.with_columns(pl.Series(spec.surrogate_key, keys, dtype=pl.Int64))
    # inferred members: keys facts refer to that no source row has described yet
    placeholders = sorted(inferred - set(versions.get_column(nk).to_list()), key=str)
    rows = [versions.select(spec.columns)]
    key_type = schema.get(nk, incoming.schema.get(nk, pl.Int64()))
    if placeholders:
        rows.append(
            _fixed_rows(
                spec,
                placeholders,
                [surrogate_key(k, FIRST_VERSION) for k in placeholders],
                key_type,
                inferred=True,
                like=rows[0],
            )
        )
    rows.append(_fixed_rows(spec, [None], [UNKNOWN_SK], key_type, inferred=False, like=rows[0]))
    out = pl.concat(rows, how="vertical_relaxed")
    return out.with_columns([pl.col(c).cast(t) for c, t in schema.items() if c in out.columns])


def _fixed_rows(
    spec: SCD2Spec,
    keys: Sequence[Any],
    sks: Sequence[int],
    key_type: pl.DataType,
    *,
    inferred: bool,
    like: pl.DataFrame,
) -> pl.DataFrame:
    """Inferred placeholders (attributes null) or the unknown member (``spec.unknown`` values)."""
    n = len(keys)
    data: dict[str, Any] = {
        spec.surrogate_key: pl.Series(sks, dtype=pl.Int64),
        spec.natural_key: pl.Series(keys, dtype=key_type),
    }
    for a in spec.attributes:
        value = None if inferred else spec.unknown.get(a)
        data[a] = pl.Series([value] * n, dtype=like.schema.get(a, pl.String()))
    data[spec.valid_from] = pl.Series([MIN_TS] * n, dtype=_TS)
    data[spec.valid_to] = pl.Series([MAX_TS] * n, dtype=_TS)
    data[spec.is_current] = pl.Series([True] * n)
    data[spec.is_inferred] = pl.Series([inferred] * n)
    data[spec.effective_at] = pl.Series([None] * n, dtype=_TS)
    return pl.DataFrame(data).select(spec.columns)


def scd2_merge(
    store: TableStore,
    ref: TableRef,
    incoming: pl.DataFrame,
    spec: SCD2Spec,
    *,
    inferred_keys: Iterable[Any] = (),
    deleted_keys: Iterable[Any] = (),
    schema: Mapping[str, pl.DataType] | None = None,
    commit_metadata: Mapping[str, str] | None = None,
) -> WriteResult:
    """Apply ``incoming`` states, inferred keys and deleted keys to the dimension in one commit."""
    inferred = [k for k in inferred_keys if k is not None]
    deleted = [k for k in deleted_keys if k is not None]
    affected = list(set(incoming.get_column(spec.natural_key).drop_nulls().to_list()) | set(inferred) | set(deleted))
    existing = pl.DataFrame()
    if store.exists(ref) and affected:
        existing = store.read(ref, where=col(spec.natural_key).is_in(affected)).collect()
    versions = scd2_versions(existing, incoming, spec, inferred_keys=inferred, deleted_keys=deleted, schema=schema)
    return store.merge(
        ref,
        versions,
        keys=[spec.surrogate_key],
        delete_missing=col(spec.natural_key).is_in(affected) if affected else False,
        commit_metadata=commit_metadata,
    )
