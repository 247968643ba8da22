"""Bronze -> silver conformance, declared instead of hand-written per entity: types, required
columns, string clean-up, deduplication on the natural key (latest record wins, ties broken
deterministically), and rejected rows with reasons so counts reconcile:

    bronze rows = silver rows + duplicates removed + rejected rows
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from lakehouse.ingest.bronze import apply_types

__all__ = ["ConformSpec", "Conformed", "conform", "country_code"]

_COUNTRIES = {
    "germany": "DE", "deutschland": "DE", "france": "FR", "spain": "ES", "españa": "ES", "italy": "IT",
    "italia": "IT", "poland": "PL", "polska": "PL", "denmark": "DK", "danmark": "DK",
    "united kingdom": "GB", "uk": "GB", "united states": "US", "usa": "US",
}  # fmt: skip


def country_code(expr: pl.Expr) -> pl.Expr:
    """ISO 3166 alpha-2 from the spellings exports use (``de``, `` DE ``, ``Germany``)."""
    cleaned = expr.str.strip_chars()
    lowered = cleaned.str.to_lowercase()
    return (
        pl.when(lowered.is_in(list(_COUNTRIES))).then(lowered.replace(_COUNTRIES)).otherwise(cleaned.str.to_uppercase())
    )


@dataclass(frozen=True)
class ConformSpec:
    """How one silver entity is made from its bronze rows."""

    keys: Sequence[str]
    types: Mapping[str, pl.DataType]
    required: Sequence[str] = ()
    latest_by: Sequence[str] = ()
    trim: Sequence[str] = ()
    lower: Sequence[str] = ()
    upper: Sequence[str] = ()
    countries: Sequence[str] = ()
    derive: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    validate: Callable[[pl.DataFrame], pl.Expr] | None = None
    columns: Sequence[str] = ()
    lineage: Sequence[str] = ("_source_file", "_source_line", "_row_hash")
    raw_columns: Sequence[str] = field(default=())


@dataclass
class Conformed:
    rows: pl.DataFrame
    rejected: pl.DataFrame  # _source_file, _source_line, _raw, _reason
    duplicates: int


def conform(bronze: pl.DataFrame, spec: ConformSpec) -> Conformed:
    """Apply ``spec`` to bronze rows (see the module docstring)."""
    # columns a file may lack (added to the export later, say) are null, not an error
    for name in [*spec.types, *spec.trim, *spec.lower, *spec.upper, *spec.countries, *spec.required, *spec.columns]:
        if name not in bronze.columns:
            bronze = bronze.with_columns(pl.lit(None, dtype=spec.types.get(name, pl.String())).alias(name))
    raw_columns = list(spec.raw_columns) or [c for c in bronze.columns if not c.startswith("_")]
    typed, misfit = apply_types(bronze, spec.types)
    typed = typed.with_columns(
        *[pl.col(c).str.strip_chars() for c in spec.trim],
        *[pl.col(c).str.strip_chars().str.to_lowercase() for c in spec.lower],
        *[pl.col(c).str.strip_chars().str.to_uppercase() for c in spec.upper],
        *[country_code(pl.col(c)) for c in spec.countries],
    )
    if spec.derive is not None:
        typed = spec.derive(typed)
    checks: list[pl.Expr] = [pl.when(pl.col(c).is_null()).then(pl.lit(f"{c} is missing")) for c in spec.required]
    if spec.validate is not None:
        checks.append(spec.validate(typed))
    typed = typed.with_columns(
        pl.concat_str(checks, separator="; ", ignore_nulls=True).fill_null("").alias("_reason")
        if checks
        else pl.lit("").alias("_reason")
    )
    invalid = typed.filter(pl.col("_reason") != "")
    good = typed.filter(pl.col("_reason") == "")

    def as_rejected(frame: pl.DataFrame) -> pl.DataFrame:
        shown = [
            pl.col(c).cast(pl.String, strict=False)
            if not isinstance(frame.schema[c], (pl.List, pl.Struct))
            else pl.col(c)
            for c in raw_columns
            if c in frame.columns
        ]
        return frame.select(
            pl.col("_source_file"),
            pl.col("_source_line"),
            pl.struct(shown).struct.json_encode().alias("_raw"),
            pl.col("_reason"),
        )

    rejected = pl.concat(
        [as_rejected(f) for f in (misfit, invalid) if f.height]
        or [
            pl.DataFrame(
                schema={"_source_file": pl.String, "_source_line": pl.Int64, "_raw": pl.String, "_reason": pl.String}
            )
        ]
    )
    order = [*spec.keys, *spec.latest_by, "_source_file", "_source_line"]
    descending = [False] * len(spec.keys) + [True] * (len(spec.latest_by) + 2)
    columns = list(spec.columns) or [c for c in good.columns if c != "_reason"]
    deduped = good.sort(order, descending=descending, nulls_last=True).unique(
        subset=list(spec.keys), keep="first", maintain_order=True
    )
    return Conformed(rows=deduped.select(columns), rejected=rejected, duplicates=good.height - deduped.height)
