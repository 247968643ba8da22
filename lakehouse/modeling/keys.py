"""Surrogate keys: deterministic 63-bit integers that never change once assigned.

A key is a hash of what identifies the row (the natural key, and for SCD2 the version), so the
same row gets the same key on every run, in every backfill, and after a table is rebuilt from
scratch: nothing has to remember a sequence. ``-1`` is reserved for the unknown member.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

__all__ = ["FIRST_VERSION", "UNKNOWN_SK", "surrogate_key", "surrogate_keys"]

UNKNOWN_SK = -1
#: The version tag of a natural key's first version (and of its inferred placeholder), so the
#: placeholder and the real first version share one surrogate key.
FIRST_VERSION = "first"


def _canonical(value: Any) -> str:
    if value is None:
        return "\x00"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def surrogate_key(*parts: Any) -> int:
    """A positive 63-bit integer from the parts (order matters); never -1."""
    digest = hashlib.sha256("\x1f".join(_canonical(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def surrogate_keys(rows: Iterable[Sequence[Any]]) -> pl.Series:
    """:func:`surrogate_key` for many rows at once, as an Int64 series."""
    return pl.Series([surrogate_key(*row) for row in rows], dtype=pl.Int64)
