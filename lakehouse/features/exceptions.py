"""Errors of the feature store. Each class says in one line when it is raised."""

from __future__ import annotations

from lakehouse.exceptions import LakehouseError

__all__ = [
    "EntityDataError",
    "FeatureDefinitionError",
    "FeatureOutputError",
    "OnlineStoreError",
    "UnknownFeatureError",
]


class FeatureDefinitionError(LakehouseError, ValueError):
    """An entity, feature or feature view is declared wrongly; the message names it and the field."""


class UnknownFeatureError(LakehouseError, LookupError):
    """A feature reference (``view:feature``) or an entity names nothing that is registered."""


class EntityDataError(LakehouseError, ValueError):
    """Entity rows handed to a training-set or online lookup are unusable; names the row and column."""


class FeatureOutputError(LakehouseError, ValueError):
    """A feature view's computation returned rows that do not match its declaration."""


class OnlineStoreError(LakehouseError, RuntimeError):
    """The online store is unreachable, or holds nothing for the request (never materialised)."""
