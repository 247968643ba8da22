"""Turning what the readers read into a bronze batch: typed as far as is lossless, typed like
the existing table where a column already exists (rows that do not fit go to quarantine),
schema drift detected, lineage columns added. Pure functions; the Dagster asset lives in
:mod:`lakehouse.ingest.factory`."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from lakehouse.ingest.infer import cast_text, infer_types, parse_type
from lakehouse.ingest.lineage import with_lineage
from lakehouse.ingest.result import QUARANTINE_SCHEMA, ReadResult

__all__ = [
    "PARTITION_COLUMN",
    "TECHNICAL",
    "BronzeBatch",
    "apply_types",
    "column_names",
    "prepare_bronze",
    "snake_case",
    "type_name",
]

PARTITION_COLUMN = "_partition_date"
TECHNICAL = ("_source_file", "_source_line", "_ingested_at", "_row_hash", PARTITION_COLUMN, "_raw", "_fetched_at")


def type_name(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Decimal):
        return f"decimal({dtype.precision},{dtype.scale})"
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    names = {pl.String: "string", pl.Int64: "int64", pl.Float64: "float64", pl.Boolean: "bool", pl.Date: "date"}
    return names.get(type(dtype), str(dtype).lower())


@dataclass
class BronzeBatch:
    """Rows ready for the bronze table and its quarantine, with what happened on the way."""

    rows: pl.DataFrame
    quarantine: pl.DataFrame
    rows_read: int
    types: dict[str, str]
    new_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    renamed_columns: dict[str, str] = field(default_factory=dict)

    @property
    def rows_written(self) -> int:
        return self.rows.height

    @property
    def rows_quarantined(self) -> int:
        return self.quarantine.height


_NOT_SNAKE = re.compile(r"[^a-z0-9_]+")
# letters NFKD does not decompose into ASCII
_TRANSLITERATE = str.maketrans(
    {"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D"}
)


def snake_case(name: str) -> str:
    """A source column name as a lakehouse column name: ``"Order ID"`` -> ``order_id``."""
    spelled = name.translate(_TRANSLITERATE)
    ascii_name = unicodedata.normalize("NFKD", spelled).encode("ascii", "ignore").decode()
    snake = _NOT_SNAKE.sub("_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_name).lower()).strip("_")
    return f"c_{snake}" if snake[:1].isdigit() else snake


def column_names(columns: Sequence[str]) -> dict[str, str]:
    """Map every column to a unique snake_case name; our lineage columns keep theirs."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in columns:
        if name in TECHNICAL:
            out[name] = name
            taken.add(name)
    for i, name in enumerate(columns):
        if name in out:
            continue
        new = snake_case(name) or f"column_{i + 1}"
        candidate, n = new, 1
        while candidate in taken:
            n += 1
            candidate = f"{new}_{n}"
        out[name] = candidate
        taken.add(candidate)
    return out


def apply_types(frame: pl.DataFrame, types: Mapping[str, pl.DataType]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast each column to its type; a row with a non-null value that does not fit is rejected
    (returned separately with ``_reason`` naming the column, the value and the type)."""
    typed: dict[str, pl.Series] = {}
    misfits: dict[str, pl.Series] = {}
    for name, target in types.items():
        if name not in frame.columns or frame.schema[name] == target:
            continue
        source = frame.get_column(name)
        try:
            cast = cast_text(source, target)
        except pl.exceptions.PolarsError:  # e.g. a list column declared int64: nothing fits
            cast = pl.Series(name, [None] * frame.height, dtype=target)
        typed[name] = cast
        misfit = source.is_not_null() & cast.is_null()
        if misfit.any():
            misfits[name] = misfit
    good = frame.with_columns(list(typed.values())) if typed else frame
    if not misfits:  # the common case: no row to split off, no filtering
        return good, frame.clear().with_columns(pl.lit(None, dtype=pl.String).alias("_reason"))
    is_bad = pl.Series(np.logical_or.reduce([m.to_numpy() for m in misfits.values()]))
    reasons = [
        pl.when(mask).then(
            pl.format(f"column {name}: {{}} does not fit {type_name(types[name])}", _shown(frame.get_column(name)))
        )
        for name, mask in misfits.items()
    ]
    bad = frame.with_columns(pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias("_reason")).filter(is_bad)
    return good.filter(~is_bad), bad


def _shown(column: pl.Series) -> pl.Series:
    """How a misfit value is quoted in a reason."""
    if isinstance(column.dtype, (pl.List, pl.Struct)):
        return pl.Series(["(nested value)"] * column.len())
    return column.cast(pl.String, strict=False)


def _data_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if not c.startswith("_")]


def prepare_bronze(
    results: Sequence[ReadResult],
    *,
    table_schema: pa.Schema | None,
    hints: Mapping[str, str] | None = None,
    ingested_at: dt.datetime,
) -> BronzeBatch:
    """Combine the files of one partition into a bronze batch (see the module docstring)."""
    renamed: dict[str, str] = {}
    frames = []
    for r in results:
        if r.rows.width:
            mapping = column_names(r.rows.columns)
            renamed.update({old: new for old, new in mapping.items() if old != new})
            frames.append(r.rows.rename(mapping))
    rows = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    quarantine = (
        pl.concat([r.quarantine for r in results], how="vertical")
        if results
        else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    )
    rows_read = rows.height + quarantine.height
    existing: dict[str, pl.DataType] = {}
    if table_schema is not None:
        empty = pl.from_arrow(table_schema.empty_table())
        assert isinstance(empty, pl.DataFrame)
        existing = {n: t for n, t in empty.schema.items() if not n.startswith("_")}
    data_columns = _data_columns(rows)
    inferred = infer_types(rows.select(data_columns), hints) if data_columns else {}
    types: dict[str, pl.DataType] = {}
    for name in data_columns:
        if hints and name in hints:
            types[name] = parse_type(hints[name])
        elif name in existing:
            types[name] = existing[name]
        else:
            types[name] = inferred[name]
    typed, rejected = apply_types(rows, types) if data_columns else (rows, pl.DataFrame())
    if rejected.height:
        rejected_q = rejected.select(
            pl.col("_source_file"),
            pl.col("_source_line"),
            pl.struct(
                [
                    pl.col(c).cast(pl.String, strict=False)
                    if not isinstance(rejected.schema[c], (pl.List, pl.Struct))
                    else pl.col(c)
                    for c in data_columns
                ]
            )
            .struct.json_encode()
            .alias("_raw"),
            pl.col("_reason"),
        )
        quarantine = pl.concat([quarantine, rejected_q], how="vertical_relaxed")
    if typed.height:
        typed = with_lineage(typed, data_columns=data_columns, ingested_at=ingested_at)
    new_columns = [c for c in data_columns if existing and c not in existing]
    missing = [c for c in existing if c not in data_columns] if rows.height else []
    return BronzeBatch(
        renamed_columns=renamed,
        rows=typed,
        quarantine=quarantine,
        rows_read=rows_read,
        types={n: type_name(t) for n, t in types.items()},
        new_columns=new_columns,
        missing_columns=missing,
    )
