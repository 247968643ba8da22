"""Type inference for text columns, typed only as far as is lossless, and checked casting.

A column gets a type only when *every* non-null value has that exact shape:

* ``int64``: an optional sign and digits without a leading zero (``0`` itself is fine), at most
  18 digits. ``00123`` and long digit strings (card or account numbers) stay text.
* ``decimal(p,s)``: like int with a ``.`` and decimals (``12.50``), at least one value having
  the point; ``s`` is the largest scale seen, so no value is rounded. ``1,7`` never becomes 17 or 1.7: it stays text.
* ``float64``: exponent notation (``1e-3``), or ``inf``/``nan``.
* ``bool``: ``true``/``false`` in any case.
* ``date``: ``YYYY-MM-DD``; ``timestamp``: ISO 8601 with ``T`` or a space, optional fraction and
  ``Z``/offset (converted to UTC; naive values are taken as UTC).
* otherwise ``string``.

Explicit hints override inference. :func:`cast_text` is the checked cast that
:func:`lakehouse.ingest.bronze.apply_types` uses to type a column and reject what does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl
import pyarrow as pa

__all__ = ["TYPE_NAMES", "cast_text", "infer_types", "parse_type"]

# surrounding blanks are tolerated (the cast trims them), so no pass is spent stripping
_INT = r"^\s*[+-]?(0|[1-9][0-9]{0,17})\s*$"
_DECIMAL = r"^\s*[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?\s*$"
_FLOAT = r"^\s*[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+|inf|infinity|nan)\s*$"
_BOOL = r"^(?i)\s*(true|false)\s*$"
_DATE = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*$"
_TIMESTAMP = (
    r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?\s*$"
)

TYPE_NAMES = ("string", "int64", "int32", "float64", "bool", "date", "timestamp", "decimal(p,s)")


def parse_type(name: str) -> pl.DataType:
    """A polars type from a type name used in specs and hints (see :data:`TYPE_NAMES`)."""
    simple: dict[str, pl.DataType] = {
        "string": pl.String(),
        "str": pl.String(),
        "text": pl.String(),
        "int": pl.Int64(),
        "int64": pl.Int64(),
        "int32": pl.Int32(),
        "integer": pl.Int64(),
        "float": pl.Float64(),
        "float64": pl.Float64(),
        "double": pl.Float64(),
        "bool": pl.Boolean(),
        "boolean": pl.Boolean(),
        "date": pl.Date(),
        "timestamp": pl.Datetime("us", "UTC"),
        "datetime": pl.Datetime("us", "UTC"),
    }
    key = name.strip().lower()
    if key in simple:
        return simple[key]
    if key.startswith("decimal(") and key.endswith(")"):
        try:
            precision, scale = (int(x) for x in key[len("decimal(") : -1].split(","))
        except ValueError:
            raise ValueError(f"type {name!r}: write decimal(precision,scale), e.g. decimal(12,2)") from None
        if not 0 <= scale <= precision <= 38:
            raise ValueError(f"type {name!r}: need 0 <= scale <= precision <= 38")
        return pl.Decimal(precision, scale)
    raise ValueError(f"unknown type {name!r}; accepted: {', '.join(TYPE_NAMES)}")


def _all(values: pl.Series, pattern: str) -> bool:
    return bool(values.str.contains(pattern).all())


_RULES = ("bool", "int", "decimal", "float", "date", "timestamp")
_SAMPLE = 2_000


def _decimal_shape(values: pl.Series) -> tuple[int, int]:
    """(integer digits, scale) of the widest values, measured without a regex."""
    body = values.str.strip_chars().str.strip_chars_start("+-")
    point = body.str.find(".", literal=True)
    length = body.str.len_bytes()
    scale = (length - point - 1).fill_null(0).max()
    digits = point.fill_null(length).max()
    return int(str(digits or 1)), int(str(scale or 0))


def _matches(values: pl.Series, rule: str) -> pl.DataType | None:
    """The type ``rule`` gives ``values`` (non-null, stripped), or None when some value does not fit."""
    if rule == "bool":
        return pl.Boolean() if _all(values, _BOOL) else None
    if rule == "int":
        return pl.Int64() if _all(values, _INT) else None
    if rule == "decimal":
        # digits alone are identifiers, not amounts: a decimal needs at least one value with a point
        if _all(values, _DECIMAL) and values.str.contains(".", literal=True).any():
            digits, scale = _decimal_shape(values)
            return pl.Decimal(min(38, max(digits + scale, 18)), scale) if digits + scale <= 38 else None
        return None
    if rule == "float":  # needs an exponent (or inf/nan) somewhere, else it was int or decimal
        return pl.Float64() if _all(values, _DECIMAL + "|" + _FLOAT) and values.str.contains(_FLOAT).any() else None
    if rule == "date":
        return pl.Date() if _all(values, _DATE) and cast_text(values, pl.Date()).null_count() == 0 else None
    if rule == "timestamp":  # ISO shape checked on the sample; every value must then parse
        sample_ok = _all(values.head(_SAMPLE), _TIMESTAMP)
        ok = sample_ok and cast_text(values, pl.Datetime("us", "UTC")).null_count() == 0
        return pl.Datetime("us", "UTC") if ok else None
    raise ValueError(rule)


def _infer_one(values: pl.Series) -> pl.DataType:
    """Decide on a sample, then verify on the whole column (one pass when the sample was right).

    A value that fits no rule in the sample makes the column text without scanning the rest; a
    later value that breaks the sample's type moves the column to the next rule that fits all.
    """
    values = values.drop_nulls()
    if values.len() == 0:
        return pl.String()
    sample = values.head(_SAMPLE)
    for i, rule in enumerate(_RULES):
        if _matches(sample, rule) is None:
            continue
        if values.len() <= _SAMPLE:
            return _matches(sample, rule) or pl.String()
        for later in _RULES[i:]:
            found = _matches(values, later)
            if found is not None:
                return found
        return pl.String()
    return pl.String()


def infer_types(frame: pl.DataFrame, hints: Mapping[str, str] | None = None) -> dict[str, pl.DataType]:
    """The inferred type of each String column (other columns keep their type); hints win."""
    hints = hints or {}
    types: dict[str, pl.DataType] = {}
    for name, dtype in frame.schema.items():
        if name in hints:
            types[name] = parse_type(hints[name])
        elif name.startswith("_"):
            types[name] = dtype
        elif dtype == pl.String:
            types[name] = _infer_one(frame.get_column(name))
        else:
            types[name] = dtype
    return types


def _to_timestamp(values: pl.Series) -> pl.Series:
    """Lenient ISO-ish parsing for the values the fast path could not read."""
    text = values.str.replace(" ", "T", literal=True)
    # offsets: +0200 -> +02:00 so one format covers both spellings
    text = text.str.replace(r"([+-][0-9]{2})([0-9]{2})$", "$1:$2")
    return text.str.to_datetime(time_zone="UTC", strict=False, time_unit="us")


def _exact(text: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Careful cast (trims, normalises timestamp spellings, refuses rounding); slower."""
    text = text.str.strip_chars()
    if dtype == pl.Boolean:
        lowered = text.str.to_lowercase()
        return pl.select(pl.when(lowered == "true").then(True).when(lowered == "false").then(False)).to_series()
    if isinstance(dtype, pl.Datetime):
        return _to_timestamp(text).alias(text.name)
    if dtype == pl.Date:
        return text.str.to_date("%Y-%m-%d", strict=False)
    if isinstance(dtype, pl.Decimal):
        return _decimal(text, dtype)
    if dtype.is_integer():
        return text.cast(dtype, strict=False)
    return text.cast(dtype, strict=False)


def _decimal(text: pl.Series, dtype: pl.Decimal) -> pl.Series:
    """Cast to a decimal, refusing values with more decimals than the scale (polars would round)."""
    point = text.str.find(".", literal=True)
    decimals = (text.str.len_bytes() - point - 1).fill_null(0)
    cast = text.cast(dtype, strict=False)
    too_precise = decimals > (dtype.scale or 0)
    return (
        cast
        if not too_precise.any()
        else pl.select(pl.when(too_precise).then(None).otherwise(cast)).to_series().alias(text.name)
    )


_TIMESTAMP_FORMATS = (
    ("%Y-%m-%dT%H:%M:%S%.f%#z", True),
    ("%Y-%m-%d %H:%M:%S%.f%#z", True),
    ("%Y-%m-%dT%H:%M:%S%.f", False),
    ("%Y-%m-%d %H:%M:%S%.f", False),
)


def _timestamps(text: pl.Series) -> pl.Series:
    """Parse ISO 8601 timestamps fast; values in other spellings stay null for the repair pass.

    Arrow's ISO 8601 cast (C++, ~10x polars on unique values) takes the column when every value
    parses (with a zone, or naive = UTC); otherwise one explicit format chosen on a sample.
    """
    arrow = text.to_arrow().cast(pa.large_string())
    for target, naive in ((pa.timestamp("us", tz="UTC"), False), (pa.timestamp("us"), True)):
        try:
            parsed = pl.from_arrow(arrow.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        assert isinstance(parsed, pl.Series)
        return (parsed.dt.replace_time_zone("UTC") if naive else parsed).alias(text.name)
    probe = text.drop_nulls().head(100)
    for fmt, zoned in _TIMESTAMP_FORMATS:
        if probe.len() and probe.str.to_datetime(fmt, strict=False, time_unit="us").null_count() == 0:
            parsed = text.str.to_datetime(fmt, strict=False, time_unit="us", cache=False)
            return parsed.dt.convert_time_zone("UTC") if zoned else parsed.dt.replace_time_zone("UTC")
    return pl.Series(text.name, [None] * text.len(), dtype=pl.Datetime("us", "UTC"))


def _quick(text: pl.Series, dtype: pl.DataType) -> pl.Series:
    """The cheap cast that is right for clean values (a failure is repaired by :func:`_exact`)."""
    if isinstance(dtype, pl.Datetime):
        return _timestamps(text)
    if isinstance(dtype, pl.Decimal):
        return _decimal(text, dtype)
    if dtype == pl.Boolean or dtype == pl.Date:
        return _exact(text, dtype)
    return text.cast(dtype, strict=False)


def cast_text(series: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Checked cast: a value that does not have the type's exact shape becomes null.

    Casts everything the cheap way first and redoes only the values that failed the careful way
    (surrounding blanks, ``2024-01-02 10:00``, ``+0200`` offsets), so clean columns cost one pass.
    """
    if dtype == pl.String:
        return series.cast(pl.String)
    if series.dtype != pl.String:
        return series.cast(dtype, strict=False)
    out = _quick(series, dtype)
    failed = out.is_null() & series.is_not_null()
    if failed.any():
        where = failed.arg_true()
        out = out.scatter(where, _exact(series.gather(where), dtype))
    return out.alias(series.name)
