"""Helpers that turn column declarations into the metadata analysts read in the Dagster UI.

Column schemas (``dagster/column_schema``) and column lineage (``dagster/column_lineage``) are
declared next to each asset with these helpers, so every asset documents its columns the same
way, and the IO manager reports the *actual* schema of what was written next to them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
import polars as pl
import pyarrow as pa

__all__ = [
    "Column",
    "arrow_table_schema",
    "column_lineage",
    "columns_metadata",
    "outs_from_specs",
    "polars_schema",
    "table_schema",
]

_POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int64": pl.Int64(),
    "int32": pl.Int32(),
    "float64": pl.Float64(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "timestamp[us, UTC]": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class Column:
    """One column of a table as the catalog shows it."""

    name: str
    type: str
    description: str
    nullable: bool = True
    unique: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    #: upstream columns this one is derived from: ``(asset key path, column name)`` pairs
    lineage: Sequence[tuple[Sequence[str], str]] = ()


def table_schema(columns: Sequence[Column]) -> dg.TableSchema:
    """A ``TableSchema`` with descriptions, nullability and uniqueness constraints."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=c.type,
                description=c.description,
                constraints=dg.TableColumnConstraints(nullable=c.nullable, unique=c.unique),
                tags=dict(c.tags),
            )
            for c in columns
        ]
    )


def column_lineage(columns: Sequence[Column]) -> dg.TableColumnLineage:
    """``dagster/column_lineage`` from the ``lineage`` of each column (columns without any are skipped)."""
    deps = {
        c.name: [dg.TableColumnDep(asset_key=dg.AssetKey(list(key)), column_name=name) for key, name in c.lineage]
        for c in columns
        if c.lineage
    }
    return dg.TableColumnLineage(deps_by_column=deps)


def columns_metadata(columns: Sequence[Column]) -> dict[str, object]:
    """Definition metadata for an asset: its column schema and, if any column declares it, lineage."""
    meta: dict[str, object] = {"dagster/column_schema": table_schema(columns)}
    if any(c.lineage for c in columns):
        meta["dagster/column_lineage"] = column_lineage(columns)
    return meta


def arrow_table_schema(schema: pa.Schema, descriptions: Mapping[str, str] | None = None) -> dg.TableSchema:
    """The schema of a written table, as reported with each materialization."""
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[dg.TableColumn(name=f.name, type=str(f.type), description=descriptions.get(f.name)) for f in schema]
    )


def polars_schema(columns: Sequence[Column]) -> dict[str, pl.DataType]:
    """The polars schema of declared columns (``decimal(p,s)`` and the names above)."""
    out: dict[str, pl.DataType] = {}
    for c in columns:
        if c.type.startswith("decimal("):
            precision, scale = (int(x) for x in c.type[len("decimal(") : -1].split(","))
            out[c.name] = pl.Decimal(precision, scale)
        elif c.type in _POLARS_TYPES:
            out[c.name] = _POLARS_TYPES[c.type]
        else:
            raise ValueError(f"column {c.name}: no polars type for declared type {c.type!r}")
    return out


def outs_from_specs(specs: Sequence[dg.AssetSpec]) -> dict[str, dg.AssetOut]:
    """``outs`` for a ``multi_asset`` whose outputs are polars frames stored by the IO manager, or
    ``None`` when the asset wrote the table itself (e.g. a merge applied day by day).

    (A multi_asset built from ``specs=`` types its outputs as Nothing, so it cannot return values.)
    """
    return {
        spec.key.to_python_identifier(): dg.AssetOut.from_spec(spec, dagster_type=dg.Optional[pl.DataFrame])
        for spec in specs
    }
