"""The feature store: feature views as lakehouse tables, point-in-time training sets, and an
online store (embedded SQLite or Redis).

Declare entities and feature views (:mod:`lakehouse.features.spec`), turn them into assets
(:mod:`lakehouse.features.factory`), read training sets with :func:`get_historical_features` and
serve with :func:`get_online_features` after :func:`materialize_online`.

Names are imported on first use, so ``lakehouse features get`` does not pay for polars or Dagster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakehouse.features.exceptions import (
        EntityDataError,
        FeatureDefinitionError,
        FeatureOutputError,
        OnlineStoreError,
        UnknownFeatureError,
    )
    from lakehouse.features.offline import get_historical_features
    from lakehouse.features.online import (
        OnlineFeatures,
        erase,
        get_online_features,
        materialize_online,
        online_status,
    )
    from lakehouse.features.registry import FeatureRegistry
    from lakehouse.features.spec import Entity, Feature, FeatureSource, FeatureView

__all__ = [
    "Entity",
    "EntityDataError",
    "Feature",
    "FeatureDefinitionError",
    "FeatureOutputError",
    "FeatureRegistry",
    "FeatureSource",
    "FeatureView",
    "OnlineFeatures",
    "OnlineStoreError",
    "UnknownFeatureError",
    "erase",
    "get_historical_features",
    "get_online_features",
    "materialize_online",
    "online_status",
]

_HOMES = {
    "Entity": "spec",
    "Feature": "spec",
    "FeatureSource": "spec",
    "FeatureView": "spec",
    "FeatureRegistry": "registry",
    "get_historical_features": "offline",
    "OnlineFeatures": "online",
    "erase": "online",
    "get_online_features": "online",
    "materialize_online": "online",
    "online_status": "online",
    "EntityDataError": "exceptions",
    "FeatureDefinitionError": "exceptions",
    "FeatureOutputError": "exceptions",
    "OnlineStoreError": "exceptions",
    "UnknownFeatureError": "exceptions",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lakehouse.features' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lakehouse.features.{home}"), name)
    globals()[name] = value
    return value
