"""The PII inventory: every column of every table that holds personal data, with class and confidence.

Findings come from the classifier (a sample of each table) and from declarations (a column tagged
``pii: <class>`` in its asset's column schema or in a data contract); a declaration wins. The
inventory is the table ``governance/catalog/pii_inventory``; masking and erasure read it and
classify on the spot any table it does not cover yet, so a new table is never shown in clear.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import polars as pl

from lakehouse.governance.classifier import PII_CLASSES, Finding, PiiClass, classify_frame
from lakehouse.naming import TableRef
from lakehouse.settings import Settings
from lakehouse.tables import Lake, TableStore

__all__ = [
    "INVENTORY",
    "INVENTORY_SCHEMA",
    "SAMPLE_ROWS",
    "SCANNED_MARKER",
    "PiiColumn",
    "declared_classes",
    "pii_columns",
    "read_inventory",
    "scan_table",
    "scan_tables",
]

INVENTORY = TableRef("governance", "catalog", "pii_inventory")
#: commit metadata of an inventory write: JSON {table: [columns scanned]}, so a table without
#: personal data is known to be scanned, and a column added since is classified when read
SCANNED_MARKER = "lakehouse_pii_scanned"
#: rows read from each table for classification (the classifier looks at up to 500 distinct values)
SAMPLE_ROWS = 2000
#: technical columns that never hold personal data (``_raw`` may: it is classified)
_TECHNICAL = {"_source_file", "_source_line", "_ingested_at", "_row_hash", "_partition_date", "_fetched_at", "_reason"}

INVENTORY_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.String(),
    "column": pl.String(),
    "pii_class": pl.String(),
    "confidence": pl.Float64(),
    "sample_size": pl.Int64(),
    "matched": pl.Int64(),
    "evidence": pl.String(),
    "table_version": pl.Int64(),
    "scanned_at": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class PiiColumn:
    ref: TableRef
    column: str
    pii_class: PiiClass
    confidence: float
    sample_size: int
    matched: int
    evidence: str
    table_version: int | None


def scan_table(
    store: TableStore,
    ref: TableRef,
    *,
    min_confidence: float,
    declared: Mapping[str, PiiClass] | None = None,
    sample_rows: int = SAMPLE_ROWS,
) -> list[PiiColumn]:
    """Classify a sample of one table; declared classes override the classifier."""
    declared = declared or {}
    version = store.version(ref)
    sample = store.read(ref).head(sample_rows).collect()
    found = {
        f.column: f
        for f in classify_frame(
            sample, min_confidence=min_confidence, skip=[c for c in sample.columns if c in _TECHNICAL]
        )
    }
    for column, pii_class in declared.items():
        if column in sample.columns:
            size = sample.get_column(column).drop_nulls().n_unique()
            found[column] = Finding(column, pii_class, 1.0, size, size, "declared")
    return [
        PiiColumn(ref, f.column, f.pii_class, f.confidence, f.sample_size, f.matched, f.evidence, version)
        for f in sorted(found.values(), key=lambda f: sample.columns.index(f.column))
    ]


def scan_tables(
    lake: Lake,
    refs: Iterable[TableRef],
    *,
    min_confidence: float,
    declared: Mapping[TableRef, Mapping[str, PiiClass]] | None = None,
) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    """The inventory rows of ``refs`` (one per PII column) and the columns scanned per table."""
    declared = declared or {}
    now = dt.datetime.now(dt.UTC)
    rows = []
    scanned: dict[str, list[str]] = {}
    for ref in refs:
        store = lake.existing_store(ref)
        scanned[str(ref)] = list(store.schema(ref).names)
        for c in scan_table(store, ref, min_confidence=min_confidence, declared=declared.get(ref)):
            rows.append(
                {
                    "table": str(c.ref),
                    "column": c.column,
                    "pii_class": c.pii_class,
                    "confidence": c.confidence,
                    "sample_size": c.sample_size,
                    "matched": c.matched,
                    "evidence": c.evidence,
                    "table_version": c.table_version,
                    "scanned_at": now,
                }
            )
    return pl.DataFrame(rows, schema=INVENTORY_SCHEMA), scanned


def read_inventory(lake: Lake) -> tuple[dict[TableRef, dict[str, PiiClass]], dict[TableRef, set[str]]]:
    """PII classes by table and column from the inventory table, and the columns it scanned per
    table (both empty when there is no inventory yet)."""
    if lake.format_of(INVENTORY) is None:
        return {}, {}
    store = lake.existing_store(INVENTORY)
    frame = store.read(INVENTORY, columns=["table", "column", "pii_class"]).collect()
    found: dict[TableRef, dict[str, PiiClass]] = {}
    for row in frame.iter_rows(named=True):
        if row["pii_class"] in PII_CLASSES:
            found.setdefault(TableRef.parse(row["table"]), {})[row["column"]] = cast(PiiClass, row["pii_class"])
    scanned: dict[TableRef, set[str]] = {ref: set(columns) for ref, columns in found.items()}
    for commit in store.history(INVENTORY, limit=20):  # newest write that says what it scanned
        marker = commit.user_metadata.get(SCANNED_MARKER)
        if marker:
            scanned = {TableRef.parse(t): set(cols) for t, cols in json.loads(marker).items()}
            break
    return found, scanned


def pii_columns(
    settings: Settings, refs: Iterable[tuple[TableRef, str]], *, lake: Lake | None = None
) -> dict[TableRef, dict[str, PiiClass]]:
    """PII columns of each table: from the inventory; tables (or columns) it has not scanned yet
    are classified now, so nothing new is ever shown in clear by omission."""
    lake = lake or Lake(settings)
    known, scanned = read_inventory(lake)
    out: dict[TableRef, dict[str, PiiClass]] = {}
    for ref, fmt in refs:
        if ref.layer == "governance":
            out[ref] = {}  # not classified: the policy denies their content to masked roles (governance.*)
            continue
        store = lake.store(fmt)  # type: ignore[arg-type]
        classes = dict(known.get(ref, {}))
        if ref not in scanned or set(store.schema(ref).names) - scanned[ref]:
            fresh = scan_table(store, ref, min_confidence=settings.pii_min_confidence)
            for c in fresh:
                if c.column not in scanned.get(ref, set()):
                    classes[c.column] = c.pii_class
        out[ref] = classes
    return out


def declared_classes(graph: Any, contracts: Iterable[Any] = ()) -> dict[TableRef, dict[str, PiiClass]]:
    """PII classes declared by owners: a column tag ``pii: <class>`` in an asset's column schema,
    or ``pii:`` on a contract column (the tag wins)."""
    out: dict[TableRef, dict[str, PiiClass]] = {}
    for contract in contracts:
        if contract.pii:
            out.setdefault(contract.ref, {}).update(contract.pii)
    if graph is None:
        return out
    for key in graph.get_all_asset_keys():
        schema = graph.get(key).metadata.get("dagster/column_schema")
        schema = getattr(schema, "value", schema)
        columns = getattr(schema, "columns", None) or []
        try:
            ref = TableRef.from_key(key)
        except ValueError:
            continue
        for column in columns:
            tag = (column.tags or {}).get("pii")
            if tag in PII_CLASSES:
                out.setdefault(ref, {})[column.name] = cast(PiiClass, tag)
    return out
