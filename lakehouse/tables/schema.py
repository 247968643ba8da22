"""Arrow schema normalisation and safe evolution, shared by the Delta and Iceberg stores.

Rules (the same for both formats):

* a column in the data but not in the table is added to the table as nullable;
* a column in the table but not in the data is written as nulls;
* a column whose type differs is cast when the cast cannot change a value: integers to any
  integer width and decimals to any precision of the same scale (checked value by value: an
  overflow raises), float32->float64, any string flavour to string, any time zone to the
  table's time zone, null to anything; anything else raises :class:`~lakehouse.exceptions.SchemaMismatchError` naming the column and
  both types, before a single byte is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from lakehouse.exceptions import SchemaMismatchError

__all__ = ["SchemaPlan", "conform", "is_text_type", "normalize_schema", "normalize_type", "plan_write", "to_arrow"]

_INT_ORDER = [pa.int8(), pa.int16(), pa.int32(), pa.int64()]
_UINT_TO_INT = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(), pa.uint64(): pa.int64()}


def is_text_type(t: pa.DataType) -> bool:
    """Whether ``t`` is one of Arrow's string flavours (string, large_string, string_view)."""
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def normalize_type(t: pa.DataType) -> pa.DataType:
    """Map an Arrow type onto the subset both Delta and Iceberg store.

    string flavours -> string; large/view lists -> list; ns/ms/s timestamps -> us with UTC for
    any zone; unsigned ints -> the next signed int; dictionaries -> their value type;
    null -> string (a column of only nulls has to be given *some* type).
    """
    if pa.types.is_dictionary(t):
        return normalize_type(t.value_type)
    if is_text_type(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_null(t):
        return pa.string()
    if t in _UINT_TO_INT:
        return _UINT_TO_INT[t]
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_time(t):
        return pa.time64("us")
    if pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(pa.field("element", normalize_type(t.value_type), nullable=True))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(pa.field("element", normalize_type(t.value_type), nullable=True))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, normalize_type(f.type), nullable=True) for f in t])
    if pa.types.is_map(t):
        return pa.map_(normalize_type(t.key_type), normalize_type(t.item_type))
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_date64(t):
        return pa.date32()
    return t


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, normalize_type(f.type), nullable=True) for f in schema])


def to_arrow(data: pl.DataFrame | pl.LazyFrame | pa.Table) -> pa.Table:
    """Any supported frame as an Arrow table with normalised types."""
    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    if isinstance(data, pl.DataFrame):
        table = data.to_arrow(compat_level=pl.CompatLevel.oldest())
    elif isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    else:
        raise TypeError(f"cannot write {type(data).__name__}; expected a polars DataFrame/LazyFrame or an Arrow table")
    target = normalize_schema(table.schema)
    if target != table.schema:
        table = table.cast(target)
    return table


def _widens(src: pa.DataType, dst: pa.DataType) -> bool:
    """True when values of ``src`` can be cast to ``dst`` without loss (or are equal)."""
    if src == dst or pa.types.is_null(src):
        return True
    if src in _INT_ORDER and dst in _INT_ORDER:
        return True  # narrowing is value-checked in conform(): an overflow raises
    if src == pa.float32() and dst == pa.float64():
        return True
    if pa.types.is_decimal(src) and pa.types.is_decimal(dst):
        return bool(src.scale == dst.scale)  # precision is value-checked in conform()
    if pa.types.is_timestamp(src) and pa.types.is_timestamp(dst):
        return src.unit == dst.unit and (src.tz is None) == (dst.tz is None)
    if pa.types.is_list(src) and pa.types.is_list(dst):
        return _widens(src.value_type, dst.value_type)
    if pa.types.is_struct(src) and pa.types.is_struct(dst):
        dst_fields = {f.name: f.type for f in dst}
        return all(f.name in dst_fields and _widens(f.type, dst_fields[f.name]) for f in src)
    return False


@dataclass(frozen=True)
class SchemaPlan:
    """What a write will do to the table schema."""

    new_columns: list[pa.Field]
    missing_columns: list[str]
    target: pa.Schema  # the table schema after evolution, in table column order


def plan_write(table_name: str, table_schema: pa.Schema, data_schema: pa.Schema) -> SchemaPlan:
    """Compare the table schema with the data's; raise before writing if a type is incompatible."""
    table_schema = normalize_schema(table_schema)
    data_schema = normalize_schema(data_schema)
    existing = {f.name: f for f in table_schema}
    new_columns: list[pa.Field] = []
    for f in data_schema:
        if f.name in existing:
            if not _widens(f.type, existing[f.name].type):
                raise SchemaMismatchError(table_name, f.name, existing[f.name].type, f.type)
        else:
            new_columns.append(pa.field(f.name, f.type, nullable=True))
    data_names = set(data_schema.names)
    missing = [n for n in table_schema.names if n not in data_names]
    target = pa.schema(list(table_schema) + new_columns)
    return SchemaPlan(new_columns=new_columns, missing_columns=missing, target=target)


def conform(table: pa.Table, target: pa.Schema, *, table_name: str = "table") -> pa.Table:
    """Reorder, null-fill and cast ``table`` to exactly ``target`` (after :func:`plan_write`).

    Casts are checked: a value that does not fit the table's type (an int64 beyond int32, a
    decimal with too many digits) raises :class:`SchemaMismatchError` naming the column.
    """
    columns = []
    for f in target:
        if f.name in table.column_names:
            column = table.column(f.name)
            if column.type != f.type:
                try:
                    column = column.cast(f.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaMismatchError(table_name, f.name, f.type, f"{column.type} ({exc})") from None
            columns.append(column)
        else:
            columns.append(pa.nulls(table.num_rows, type=f.type))
    return pa.Table.from_arrays(columns, schema=target)
