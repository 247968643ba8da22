"""A small, format-neutral predicate language for deletes, partition overwrites and reads.

One predicate is translated to a delta-rs SQL string (through the quoting helper), a pyiceberg
expression and a polars expression, so callers never write format-specific filters::

    from lakehouse.tables import col
    where = col("order_date").is_in([d1, d2]) & (col("store_id") == 3)
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from lakehouse.sql import literal_list, quote_ident, quote_literal

__all__ = [
    "And",
    "Column",
    "Compare",
    "In",
    "IsNull",
    "Not",
    "Or",
    "Predicate",
    "all_of",
    "any_of",
    "col",
    "split_large_in",
    "to_iceberg",
    "to_polars",
    "to_sql",
]

Op = Literal["=", "!=", "<", "<=", ">", ">="]


class Predicate:
    """Base of every predicate node; combine with ``&``, ``|`` and ``~``."""

    def __and__(self, other: Predicate) -> Predicate:
        return And((self, other))

    def __or__(self, other: Predicate) -> Predicate:
        return Or((self, other))

    def __invert__(self) -> Predicate:
        return Not(self)


@dataclass(frozen=True)
class Compare(Predicate):
    column: str
    op: Op
    value: Any


@dataclass(frozen=True)
class In(Predicate):
    column: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class IsNull(Predicate):
    column: str


@dataclass(frozen=True)
class And(Predicate):
    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class Or(Predicate):
    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class Not(Predicate):
    part: Predicate


class Column:
    """A column reference that builds predicates: ``col("x") == 1``, ``col("x").is_in([...])``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.name, "=", value)

    def __ne__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.name, "!=", value)

    def __lt__(self, value: object) -> Compare:
        return Compare(self.name, "<", value)

    def __le__(self, value: object) -> Compare:
        return Compare(self.name, "<=", value)

    def __gt__(self, value: object) -> Compare:
        return Compare(self.name, ">", value)

    def __ge__(self, value: object) -> Compare:
        return Compare(self.name, ">=", value)

    def __hash__(self) -> int:
        return hash(self.name)

    def is_in(self, values: Iterable[Any]) -> In:
        return In(self.name, tuple(dict.fromkeys(values)))

    def is_null(self) -> IsNull:
        return IsNull(self.name)

    def between(self, low: Any, high: Any) -> Predicate:
        return And((Compare(self.name, ">=", low), Compare(self.name, "<=", high)))


def col(name: str) -> Column:
    """A column to build a predicate on."""
    return Column(name)


def all_of(parts: Sequence[Predicate]) -> Predicate:
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def any_of(parts: Sequence[Predicate]) -> Predicate:
    return parts[0] if len(parts) == 1 else Or(tuple(parts))


# -- translations -----------------------------------------------------------------------------


def to_sql(pred: Predicate, alias: str | None = None) -> str:
    """SQL text for delta-rs (DataFusion) or DuckDB; every value goes through the quoting helper.
    ``alias`` qualifies every column (``t."id"``), for predicates inside a MERGE."""

    def column(name: str) -> str:
        return f"{alias}.{quote_ident(name)}" if alias else quote_ident(name)

    if isinstance(pred, Compare):
        if pred.value is None:
            return f"{column(pred.column)} IS {'NOT ' if pred.op == '!=' else ''}NULL"
        return f"{column(pred.column)} {pred.op} {quote_literal(pred.value)}"
    if isinstance(pred, In):
        if not pred.values:
            return "FALSE"
        non_null = [v for v in pred.values if v is not None]
        parts = []
        if non_null:
            parts.append(f"{column(pred.column)} IN {literal_list(non_null)}")
        if len(non_null) != len(pred.values):
            parts.append(f"{column(pred.column)} IS NULL")
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
    if isinstance(pred, IsNull):
        return f"{column(pred.column)} IS NULL"
    if isinstance(pred, And):
        return "(" + " AND ".join(to_sql(p, alias) for p in pred.parts) + ")"
    if isinstance(pred, Or):
        return "(" + " OR ".join(to_sql(p, alias) for p in pred.parts) + ")"
    if isinstance(pred, Not):
        return f"(NOT {to_sql(pred.part, alias)})"
    raise TypeError(f"not a predicate: {pred!r}")


def split_large_in(pred: Predicate, threshold: int) -> tuple[In, Predicate | None] | None:
    """``(the In, the rest)`` when ``pred`` is a membership test of more than ``threshold``
    non-null values, alone or ANDed with other conditions; None otherwise. Engines that parse a
    predicate as SQL text cannot take an IN list of tens of thousands of values (delta-rs
    crashes), so such deletes become a join against the values instead."""
    parts = list(pred.parts) if isinstance(pred, And) else [pred]
    for i, part in enumerate(parts):
        if isinstance(part, In) and len(part.values) > threshold and None not in part.values:
            rest = parts[:i] + parts[i + 1 :]
            return part, (None if not rest else rest[0] if len(rest) == 1 else And(tuple(rest)))
    return None


def to_polars(pred: Predicate) -> pl.Expr:
    """A polars expression with the same meaning (``NULL`` compares as false)."""
    if isinstance(pred, Compare):
        c = pl.col(pred.column)
        if pred.value is None:
            return c.is_not_null() if pred.op == "!=" else c.is_null()
        v = pl.lit(pred.value)
        expr = {
            "=": c == v,
            "!=": c != v,
            "<": c < v,
            "<=": c <= v,
            ">": c > v,
            ">=": c >= v,
        }[pred.op]
        return expr.fill_null(False)
    if isinstance(pred, In):
        non_null = [v for v in pred.values if v is not None]
        expr = pl.col(pred.column).is_in(non_null).fill_null(False) if non_null else pl.lit(False)
        if len(non_null) != len(pred.values):
            expr = expr | pl.col(pred.column).is_null()
        return expr
    if isinstance(pred, IsNull):
        return pl.col(pred.column).is_null()
    if isinstance(pred, And):
        out = to_polars(pred.parts[0])
        for p in pred.parts[1:]:
            out = out & to_polars(p)
        return out
    if isinstance(pred, Or):
        out = to_polars(pred.parts[0])
        for p in pred.parts[1:]:
            out = out | to_polars(p)
        return out
    if isinstance(pred, Not):
        return ~to_polars(pred.part)
    raise TypeError(f"not a predicate: {pred!r}")


def _iceberg_value(value: Any) -> Any:
    # pyiceberg literals take ISO strings for dates/timestamps
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def to_iceberg(pred: Predicate) -> Any:
    """A pyiceberg ``BooleanExpression``."""
    # pyiceberg's constructors accept column names at run time; its stubs only admit terms
    ie: Any = importlib.import_module("pyiceberg.expressions")

    if isinstance(pred, Compare):
        if pred.value is None:
            return ie.NotNull(pred.column) if pred.op == "!=" else ie.IsNull(pred.column)
        cls = {
            "=": ie.EqualTo,
            "!=": ie.NotEqualTo,
            "<": ie.LessThan,
            "<=": ie.LessThanOrEqual,
            ">": ie.GreaterThan,
            ">=": ie.GreaterThanOrEqual,
        }[pred.op]
        return cls(pred.column, _iceberg_value(pred.value))
    if isinstance(pred, In):
        non_null = [_iceberg_value(v) for v in pred.values if v is not None]
        expr: Any = ie.In(pred.column, non_null) if non_null else ie.AlwaysFalse()
        if len(non_null) != len(pred.values):
            expr = ie.Or(expr, ie.IsNull(pred.column))
        return expr
    if isinstance(pred, IsNull):
        return ie.IsNull(pred.column)
    if isinstance(pred, And):
        return ie.And(*[to_iceberg(p) for p in pred.parts]) if len(pred.parts) > 1 else to_iceberg(pred.parts[0])
    if isinstance(pred, Or):
        return ie.Or(*[to_iceberg(p) for p in pred.parts]) if len(pred.parts) > 1 else to_iceberg(pred.parts[0])
    if isinstance(pred, Not):
        return ie.Not(to_iceberg(pred.part))
    raise TypeError(f"not a predicate: {pred!r}")
