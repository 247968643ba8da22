"""Errors raised by the lakehouse library. Each class says in one line when it is raised."""

from __future__ import annotations

__all__ = [
    "AlertDeliveryError",
    "InvalidTableKeyError",
    "LakehouseError",
    "PartitionMismatchError",
    "QueryError",
    "SchemaMismatchError",
    "SettingsError",
    "StorageError",
    "TableNotFoundError",
]


class LakehouseError(Exception):
    """Base class of every error this library raises on purpose."""


class SettingsError(LakehouseError, ValueError):
    """An environment variable (``LAKEHOUSE_*``) holds a value the settings cannot accept."""


class AlertDeliveryError(LakehouseError, RuntimeError):
    """An alert channel refused to deliver safely (e.g. an SMTP login without TLS); names the server."""


class InvalidTableKeyError(LakehouseError, ValueError):
    """An asset key or table name does not have the shape ``[layer, domain, table]`` in snake_case."""


class TableNotFoundError(LakehouseError, LookupError):
    """A table was read, changed or time-travelled that does not exist (or not at that version)."""


class SchemaMismatchError(LakehouseError, TypeError):
    """A write would change the type of an existing column incompatibly; nothing was written."""

    def __init__(self, table: str, column: str, table_type: object, new_type: object) -> None:
        self.table = table
        self.column = column
        self.table_type = table_type
        self.new_type = new_type
        super().__init__(
            f"{table}: column {column!r} has type {table_type} in the table but {new_type} in the "
            "data being written; this is not a safe widening, so nothing was written. "
            "Cast the column, or write it under a new name."
        )


class PartitionMismatchError(LakehouseError, ValueError):
    """Rows handed to a partition overwrite lie outside the partitions being replaced."""


class StorageError(LakehouseError, OSError):
    """The storage behind the warehouse is unreachable or misconfigured (e.g. a missing bucket)."""


class QueryError(LakehouseError, RuntimeError):
    """A query over the lake failed; the message names the engine and the statement."""


class UnreadableFileError(LakehouseError, ValueError):
    """A landing file cannot be read at all (wrong format, corrupt); the message names the file."""


class SpecError(LakehouseError, ValueError):
    """A source spec (YAML) is invalid; the message names the file, the entry and the field."""


class ChangeFeedUnavailableError(LakehouseError):
    """A table cannot list its changes since a version (no change feed, or the versions are gone)."""


class RetentionError(LakehouseError):
    """A restore or time travel targets a version older than the table's retention window."""
