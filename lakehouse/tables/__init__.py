"""The table layer: the only code that imports ``deltalake`` or ``pyiceberg``.

Use :class:`Lake` to get the :class:`TableStore` for a table; the format is a setting (for the
whole lake, or per asset), never a code path.
"""

from __future__ import annotations

from lakehouse.exceptions import LakehouseError, TableNotFoundError
from lakehouse.naming import TableRef, table_location
from lakehouse.settings import TABLE_FORMATS, Settings, TableFormat, get_settings
from lakehouse.tables.base import Commit, Frame, TableInfo, TableStore, WriteResult
from lakehouse.tables.predicates import Predicate, col

__all__ = [
    "Commit",
    "FormatConflictError",
    "Frame",
    "Lake",
    "Predicate",
    "TableInfo",
    "TableRef",
    "TableStore",
    "WriteResult",
    "col",
    "table_location",
]


class FormatConflictError(LakehouseError):
    """A table exists in one format but is about to be written in the other."""


class Lake:
    """All tables of one warehouse, in either format."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._stores: dict[str, TableStore] = {}

    def store(self, fmt: TableFormat | None = None) -> TableStore:
        """The store for ``fmt`` (default: the lake's configured format)."""
        fmt = fmt or self.settings.table_format
        if fmt not in self._stores:
            if fmt == "delta":
                from lakehouse.tables.delta import DeltaStore

                self._stores[fmt] = DeltaStore(self.settings)
            elif fmt == "iceberg":
                from lakehouse.tables.iceberg import IcebergStore

                self._stores[fmt] = IcebergStore(self.settings)
            else:
                raise ValueError(f"unknown table format {fmt!r}; accepted values: {', '.join(TABLE_FORMATS)}")
        return self._stores[fmt]

    def format_of(self, ref: TableRef) -> TableFormat | None:
        """The format the table exists in, or None when it does not exist yet."""
        for fmt in (self.settings.table_format, *[f for f in TABLE_FORMATS if f != self.settings.table_format]):
            if self.store(fmt).exists(ref):
                return fmt
        return None

    def store_for(self, ref: TableRef, declared: TableFormat | None = None) -> TableStore:
        """The store to write ``ref`` with: its declared (or the lake's) format.

        Raises:
            FormatConflictError: when the table already exists in the other format.
        """
        wanted = declared or self.settings.table_format
        other = next(f for f in TABLE_FORMATS if f != wanted)
        if not self.store(wanted).exists(ref) and self.store(other).exists(ref):
            raise FormatConflictError(
                f"table {ref} already exists as {other} at {table_location(ref, self.settings)}, but it is "
                f"configured as {wanted}. Point LAKEHOUSE_HOME/LAKEHOUSE_WAREHOUSE at a new lake, run "
                f"`lakehouse demo --reset`, or set the asset's format back to {other}."
            )
        return self.store(wanted)

    def existing_store(self, ref: TableRef) -> TableStore:
        """The store of an existing table, whatever its format."""
        fmt = self.format_of(ref)
        if fmt is None:
            raise TableNotFoundError(f"table {ref} does not exist in the lake at {self.settings.warehouse}")
        return self.store(fmt)

    def table_refs(self) -> list[tuple[TableRef, TableFormat]]:
        """Every table in the warehouse with its format, from the catalog/listing only (no metadata read)."""
        return sorted((ref, fmt) for fmt in TABLE_FORMATS for ref in self.store(fmt).list_tables())

    def tables(self) -> list[TableInfo]:
        """Every table in the warehouse (both formats), sorted by name."""
        infos = []
        for fmt in TABLE_FORMATS:
            store = self.store(fmt)
            for ref in store.list_tables():
                infos.append(store.info(ref))
        return sorted(infos, key=lambda i: (i.ref, i.format))
