"""The one quoting helper for text that reaches SQL (DuckDB, delta-rs/DataFusion, Trino).

Values go into SQL as bound parameters wherever the engine allows it. Where it does not (a
delta-rs predicate string, a DuckDB view over a path), they go through :func:`quote_literal`;
identifiers always go through :func:`quote_ident`. Both produce standard SQL quoting (doubled
quote characters, no backslash escapes), which DuckDB, DataFusion and Trino all parse the same
way, so a value containing ``'``, ``;`` or ``--`` stays inside its literal.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterable, Sequence

__all__ = ["literal_list", "quote_ident", "quote_literal", "quote_qualified"]


def quote_ident(name: str) -> str:
    """Quote one identifier, doubling embedded double quotes (``a"b`` becomes ``"a""b"``).

    Raises:
        ValueError: for an empty name or one containing a NUL character.
    """
    if not isinstance(name, str) or name == "" or "\x00" in name:
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_qualified(*parts: str) -> str:
    """Quote a dotted name part by part: ``("silver_retail", "orders")`` -> ``"silver_retail"."orders"``."""
    return ".".join(quote_ident(p) for p in parts)


def quote_literal(value: object) -> str:
    """Render one Python value as a SQL literal.

    Supports None, bool, int, float (finite), Decimal, str, date and datetime. Datetimes with a
    time zone are rendered in UTC with an explicit ``+00:00`` offset.

    >>> quote_literal("it's; -- fine")
    "'it''s; -- fine'"
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot render non-finite float {value!r} as a SQL literal")
        return repr(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot render non-finite decimal {value!r} as a SQL literal")
        return format(value, "f")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            return "TIMESTAMP '" + value.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00:00'"
        return "TIMESTAMP '" + value.strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
    if isinstance(value, dt.date):
        return "DATE '" + value.isoformat() + "'"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("cannot render a string containing NUL as a SQL literal")
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot render {type(value).__name__} as a SQL literal")


def literal_list(values: Iterable[object]) -> str:
    """``(v1, v2, ...)`` of quoted literals, for ``IN`` lists."""
    items: Sequence[object] = list(values)
    if not items:
        raise ValueError("an IN list needs at least one value")
    return "(" + ", ".join(quote_literal(v) for v in items) + ")"
