"""Asset-check factories. Each returns a (partitioned, when the asset is) ``AssetChecksDefinition``
that reads the table through the lake and reports what it counted as metadata.

Check names are constants so sensors, tests and the UI refer to the same names.
"""

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

from lakehouse.naming import TableRef
from lakehouse.partitions import partition_values
from lakehouse.resource import LakeResource
from lakehouse.tables import Lake, Predicate, col

__all__ = [
    "AGGREGATE_MATCH",
    "RECONCILED",
    "UNIQUE_KEY",
    "CheckOutcome",
    "aggregate_match_check",
    "lake_check",
    "partition_filter",
    "unique_key_check",
]

# Partitioned asset checks are what the platform needs (a check per partition); Dagster marks
# them "preview" in 1.13. Silence that one notice rather than every warning.
warnings.filterwarnings("ignore", message=r"Specifying a partitions_def on an AssetCheckSpec is currently in preview")

UNIQUE_KEY = "unique_key"
RECONCILED = "rows_reconcile"
AGGREGATE_MATCH = "totals_match"


@dataclass
class CheckOutcome:
    """The result of evaluating a check on one partition (or the whole table)."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def partition_filter(context: dg.AssetCheckExecutionContext, column: str | None) -> Predicate | None:
    """``column IN (the partitions this check run covers)``, or None for an unpartitioned check."""
    if column is None or (not context.has_partition_key and not context.has_partition_key_range):
        return None
    return col(column).is_in(partition_values(context.partition_keys))


def lake_check(
    *,
    asset: Sequence[str],
    name: str,
    description: str,
    evaluate: Callable[[Lake, Predicate | None, dg.AssetCheckExecutionContext], CheckOutcome],
    partitions_def: dg.PartitionsDefinition | None = None,
    partition_column: str | None = None,
    blocking: bool = True,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    additional_deps: Sequence[Sequence[str]] = (),
) -> dg.AssetChecksDefinition:
    """A check that evaluates ``evaluate(lake, partition_filter, context)``.

    ``blocking`` checks stop downstream assets in the same run when they fail, so bad data
    does not propagate.
    """

    @dg.asset_check(
        asset=dg.AssetKey(list(asset)),
        name=name,
        description=description,
        blocking=blocking,
        partitions_def=partitions_def,
        additional_deps=[dg.AssetKey(list(d)) for d in additional_deps],
    )
    def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        outcome = evaluate(lake.lake(), partition_filter(context, partition_column), context)
        return dg.AssetCheckResult(
            passed=outcome.passed,
            description=outcome.description,
            metadata=outcome.metadata,
            severity=severity,
        )

    return _check


def _redacted_keys(dupes: pl.DataFrame, keys: Sequence[str], lake: Lake) -> list[dict[str, Any]]:
    """Duplicated keys as the event log may hold them: a keyed hash of each key value (keys are
    often personal: a customer id, an e-mail), never the value, and how many rows share it."""
    from lakehouse.governance.masking import redact_value, redaction_key

    secret = redaction_key(lake.settings)
    return [
        {**{k: redact_value(row[k], secret) for k in keys}, "rows": row["len"]} for row in dupes.iter_rows(named=True)
    ]


def unique_key_check(
    *,
    asset: Sequence[str],
    columns: Sequence[str],
    partitions_def: dg.PartitionsDefinition | None = None,
    partition_column: str | None = None,
    where: Predicate | None = None,
) -> dg.AssetChecksDefinition:
    """The key ``columns`` are never null and unique (within each checked partition)."""
    ref = TableRef.from_key(asset)
    keys = list(columns)

    def evaluate(lake: Lake, part: Predicate | None, _: dg.AssetCheckExecutionContext) -> CheckOutcome:
        scope = part if where is None else (where if part is None else part & where)
        frame = lake.existing_store(ref).read(ref, columns=keys, where=scope).collect()
        nulls = frame.filter(pl.any_horizontal([pl.col(k).is_null() for k in keys])).height
        dupes = frame.drop_nulls().group_by(keys).len().filter(pl.col("len") > 1)
        sample = _redacted_keys(dupes.head(5), keys, lake)
        passed = nulls == 0 and dupes.height == 0
        return CheckOutcome(
            passed=passed,
            description=(
                f"{'+'.join(keys)} unique and not null over {frame.height} rows"
                if passed
                else f"{nulls} null key(s) and {dupes.height} duplicated key(s) in {'+'.join(keys)}"
            ),
            metadata={
                "rows": frame.height,
                "null_keys": nulls,
                "duplicated_keys": dupes.height,
                "sample_duplicates": dg.MetadataValue.json(sample) if sample else "none",
            },
        )

    return lake_check(
        asset=asset,
        name=UNIQUE_KEY,
        description=f"{'+'.join(keys)} is never null and unique",
        evaluate=evaluate,
        partitions_def=partitions_def,
        partition_column=partition_column,
    )


def aggregate_match_check(
    *,
    asset: Sequence[str],
    upstream: Sequence[str],
    aggregates: dict[str, tuple[pl.Expr, pl.Expr]],
    partitions_def: dg.PartitionsDefinition | None = None,
    partition_column: str | None = None,
    upstream_partition_column: str | None = None,
    upstream_where: Predicate | None = None,
    name: str = AGGREGATE_MATCH,
    description: str | None = None,
) -> dg.AssetChecksDefinition:
    """Totals of ``asset`` equal totals of ``upstream`` over the same partition.

    ``aggregates`` maps a label to ``(expression on asset, expression on upstream)``; each pair
    must give exactly the same value (decimals compare exactly).
    """
    ref, up = TableRef.from_key(asset), TableRef.from_key(upstream)

    def evaluate(lake: Lake, part: Predicate | None, context: dg.AssetCheckExecutionContext) -> CheckOutcome:
        up_part = partition_filter(context, upstream_partition_column or partition_column)
        if upstream_where is not None:
            up_part = upstream_where if up_part is None else up_part & upstream_where
        mine = (
            lake.existing_store(ref)
            .read(ref, where=part)
            .select([expr.alias(label) for label, (expr, _) in aggregates.items()])
            .collect()
        )
        theirs = (
            lake.existing_store(up)
            .read(up, where=up_part)
            .select([expr.alias(label) for label, (_, expr) in aggregates.items()])
            .collect()
        )
        metadata: dict[str, Any] = {}
        mismatches = []
        for label in aggregates:
            a, b = mine.get_column(label).item(), theirs.get_column(label).item()
            a = 0 if a is None else a
            b = 0 if b is None else b
            metadata[f"{label} ({ref.name})"] = str(a)
            metadata[f"{label} ({up.name})"] = str(b)
            if a != b:
                mismatches.append(f"{label}: {a} != {b}")
        return CheckOutcome(
            passed=not mismatches,
            description="totals match " + str(up) if not mismatches else "; ".join(mismatches),
            metadata=metadata,
        )

    return lake_check(
        asset=asset,
        name=name,
        description=description or f"totals equal those of {up}",
        evaluate=evaluate,
        partitions_def=partitions_def,
        partition_column=partition_column,
        additional_deps=[upstream],
    )
