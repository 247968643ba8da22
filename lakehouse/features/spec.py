"""Feature definitions in code: entities, features and feature views.

A :class:`FeatureView` declares what a feature table holds and how long a value stays valid; it
becomes the daily-partitioned table ``gold/features/<name>`` with the entity's join key,
``event_timestamp`` (when the values became known), ``feature_date`` (the partition) and the
features. The declaration is serialised into the table's commit metadata, so the lake describes
itself: the CLI, the online store and time travel read it back without importing ``assets/``.

This module is deliberately light (no polars, no Dagster): the online lookup path imports it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from lakehouse.features.exceptions import FeatureDefinitionError, UnknownFeatureError
from lakehouse.naming import TableRef

__all__ = [
    "DOMAIN",
    "EVENT_TIMESTAMP",
    "FEATURE_DATE",
    "FEATURE_DTYPES",
    "KEY_DTYPES",
    "SPEC_KEY",
    "VERSION_KEY",
    "Entity",
    "Feature",
    "FeatureDtype",
    "FeatureSource",
    "FeatureView",
    "KeyDtype",
    "full_name",
]

FeatureDtype = Literal["int64", "float64", "bool", "string"]
KeyDtype = Literal["int64", "string"]
FEATURE_DTYPES: tuple[FeatureDtype, ...] = get_args(FeatureDtype)
KEY_DTYPES: tuple[KeyDtype, ...] = get_args(KeyDtype)

#: the domain of every feature table: ``gold/features/<view>``
DOMAIN = "features"
#: when a row's values became known; a point-in-time join takes the latest row at or before t
EVENT_TIMESTAMP = "event_timestamp"
#: the daily partition a row was computed for (its values cover events before the next midnight)
FEATURE_DATE = "feature_date"
#: commit-metadata keys carrying the declaration and its version on every write
SPEC_KEY = "lakehouse.feature_view"
VERSION_KEY = "lakehouse.feature_view.version"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = {EVENT_TIMESTAMP, FEATURE_DATE}


def full_name(view: str, feature: str) -> str:
    """``view__feature``: how a feature is named in training sets and online responses."""
    return f"{view}__{feature}"


def _check_name(kind: str, name: str, where: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or "__" in name:
        raise FeatureDefinitionError(
            f"{where}: {kind} name {name!r} is not snake_case (lower-case letters, digits and single _, "
            "starting with a letter)"
        )


@dataclass(frozen=True)
class Entity:
    """What features describe (a customer, a product); ``join_key`` is the column naming one."""

    name: str
    join_key: str
    dtype: KeyDtype = "int64"
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("entity", self.name, f"entity {self.name!r}")
        _check_name("join key", self.join_key, f"entity {self.name!r}")
        if self.dtype not in KEY_DTYPES:
            raise FeatureDefinitionError(
                f"entity {self.name!r}: join key type {self.dtype!r} is not one of {', '.join(KEY_DTYPES)}"
            )

    def parse_key(self, value: object) -> int | str:
        """A key as the join key's type (``"42"`` -> ``42`` for an int64 key).

        Raises:
            FeatureDefinitionError: when the value cannot be read as the key type.
        """
        if self.dtype == "string":
            return str(value)
        if isinstance(value, bool):
            raise FeatureDefinitionError(f"entity {self.name!r}: key {value!r} is not an integer {self.join_key}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise FeatureDefinitionError(
                f"entity {self.name!r}: key {value!r} is not an integer {self.join_key}"
            ) from None


@dataclass(frozen=True)
class Feature:
    """One feature: its type, what it means, the window it aggregates and the source columns."""

    name: str
    dtype: FeatureDtype
    description: str
    #: days of history the value aggregates (None: not a window aggregate); drift is only judged
    #: once a full window of data exists
    window_days: int | None = None
    #: source columns: ``(asset key path, column)`` pairs, for ``dagster/column_lineage``
    lineage: Sequence[tuple[Sequence[str], str]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "lineage", tuple((tuple(key), column) for key, column in self.lineage))


@dataclass(frozen=True)
class FeatureSource:
    """A table a feature view reads: the columns it needs and, for a partitioned table, the
    partition column the view's look-back is applied to (None reads the whole table)."""

    ref: TableRef
    columns: Sequence[str]
    partition_column: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))

    @property
    def name(self) -> str:
        return self.ref.name


@dataclass(frozen=True)
class FeatureView:
    """A feature table: entity, features, sources, time to live, owner and version.

    ``ttl``: a value older than this (by ``event_timestamp``) is not returned by a point-in-time
    join or materialised online; ``lookback_days``: how many days of each partitioned source one
    partition reads (the longest window). Bump ``version`` whenever the meaning of a feature
    changes; it is recorded with every write and shown with every online value.
    """

    name: str
    entity: Entity
    features: Sequence[Feature]
    ttl: dt.timedelta
    owner: str
    version: int
    description: str
    sources: Sequence[FeatureSource] = ()
    lookback_days: int = 1
    #: population stability index above which the drift check warns
    drift_threshold: float = 0.2
    #: fewer rows than this in either window and drift is not judged (PSI is noise on tiny samples)
    drift_min_rows: int = 100
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "sources", tuple(self.sources))
        where = f"feature view {self.name!r}"
        _check_name("feature view", self.name, where)
        if not self.features:
            raise FeatureDefinitionError(f"{where}: declares no features")
        seen: set[str] = set()
        for f in self.features:
            _check_name("feature", f.name, where)
            if f.name in seen or f.name in _RESERVED or f.name == self.entity.join_key:
                raise FeatureDefinitionError(
                    f"{where}: feature name {f.name!r} is used twice or clashes with the join key, "
                    f"{EVENT_TIMESTAMP} or {FEATURE_DATE}"
                )
            seen.add(f.name)
            if f.dtype not in FEATURE_DTYPES:
                raise FeatureDefinitionError(
                    f"{where}: feature {f.name!r} has type {f.dtype!r}; accepted: {', '.join(FEATURE_DTYPES)}"
                )
            if f.window_days is not None and not 1 <= f.window_days <= self.lookback_days:
                raise FeatureDefinitionError(
                    f"{where}: feature {f.name!r} has window_days={f.window_days}, outside 1..lookback_days "
                    f"({self.lookback_days})"
                )
            if not f.description:
                raise FeatureDefinitionError(f"{where}: feature {f.name!r} has no description")
        if self.ttl <= dt.timedelta(0):
            raise FeatureDefinitionError(f"{where}: ttl must be positive, got {self.ttl}")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise FeatureDefinitionError(f"{where}: version must be an integer >= 1, got {self.version!r}")
        if not self.owner.startswith(("team:", "user:")) and "@" not in self.owner:
            raise FeatureDefinitionError(f"{where}: owner {self.owner!r} must be 'team:<name>' or an e-mail address")
        if self.lookback_days < 1:
            raise FeatureDefinitionError(f"{where}: lookback_days must be >= 1, got {self.lookback_days}")
        if not self.drift_threshold > 0:
            raise FeatureDefinitionError(f"{where}: drift_threshold must be positive, got {self.drift_threshold}")

    # -- naming -----------------------------------------------------------------------------------

    @property
    def ref(self) -> TableRef:
        return TableRef("gold", DOMAIN, self.name)

    @property
    def join_key(self) -> str:
        return self.entity.join_key

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise UnknownFeatureError(
            f"feature view {self.name!r} has no feature {name!r}; it has: {', '.join(self.feature_names)}"
        )

    @property
    def columns(self) -> list[str]:
        """The table's columns, in order."""
        return [self.join_key, EVENT_TIMESTAMP, FEATURE_DATE, *self.feature_names]

    # -- serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The declaration as plain JSON types (what the table's commit metadata carries)."""
        return {
            "name": self.name,
            "version": self.version,
            "entity": {
                "name": self.entity.name,
                "join_key": self.entity.join_key,
                "dtype": self.entity.dtype,
                "description": self.entity.description,
            },
            "ttl_seconds": int(self.ttl.total_seconds()),
            "owner": self.owner,
            "description": self.description,
            "lookback_days": self.lookback_days,
            "drift_threshold": self.drift_threshold,
            "drift_min_rows": self.drift_min_rows,
            "features": [
                {
                    "name": f.name,
                    "dtype": f.dtype,
                    "description": f.description,
                    "window_days": f.window_days,
                    "lineage": [["/".join(key), column] for key, column in f.lineage],
                }
                for f in self.features
            ],
            "sources": [
                {"table": str(s.ref), "columns": list(s.columns), "partition_column": s.partition_column}
                for s in self.sources
            ],
            "tags": dict(self.tags),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FeatureView:
        """The inverse of :meth:`to_dict`.

        Raises:
            FeatureDefinitionError: when the document is not a feature view declaration.
        """
        try:
            entity = Entity(
                name=spec["entity"]["name"],
                join_key=spec["entity"]["join_key"],
                dtype=cast(KeyDtype, spec["entity"]["dtype"]),
                description=spec["entity"].get("description", ""),
            )
            return cls(
                name=spec["name"],
                entity=entity,
                features=[
                    Feature(
                        name=f["name"],
                        dtype=cast(FeatureDtype, f["dtype"]),
                        description=f["description"],
                        window_days=f.get("window_days"),
                        lineage=[(tuple(key.split("/")), column) for key, column in f.get("lineage", [])],
                    )
                    for f in spec["features"]
                ],
                ttl=dt.timedelta(seconds=int(spec["ttl_seconds"])),
                owner=spec["owner"],
                version=int(spec["version"]),
                description=spec.get("description", ""),
                sources=[
                    FeatureSource(
                        ref=TableRef.parse(s["table"]),
                        columns=tuple(s["columns"]),
                        partition_column=s.get("partition_column"),
                    )
                    for s in spec.get("sources", [])
                ],
                lookback_days=int(spec.get("lookback_days", 1)),
                drift_threshold=float(spec.get("drift_threshold", 0.2)),
                drift_min_rows=int(spec.get("drift_min_rows", 100)),
                tags=dict(spec.get("tags", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FeatureDefinitionError):
                raise
            raise FeatureDefinitionError(
                f"not a feature view declaration ({type(exc).__name__}: {exc}): {str(dict(spec))[:200]}"
            ) from None

    @classmethod
    def from_json(cls, text: str) -> FeatureView:
        return cls.from_dict(json.loads(text))

    def commit_metadata(self) -> dict[str, str]:
        """What every write of this view records in the table's history."""
        return {SPEC_KEY: self.to_json(), VERSION_KEY: str(self.version)}
