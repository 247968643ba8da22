"""Data contracts: what a data product promises its consumers, declared in YAML next to its assets
(``assets/<domain>/contracts/*.yaml``) and enforced twice:

- **before the write lands**: :class:`ContractIOManager` refuses an output that breaks its
  contract (a promised column missing or retyped, nulls in a non-nullable column), so the table
  keeps its previous version and every downstream asset of the run is skipped;
- **as a blocking asset check** (``data_contract``) on the table as written, per partition:
  schema, primary key, quality rules and freshness (a freshness miss only warns). Assets that
  write their table themselves are covered by this check, which stops their consumers.

``lakehouse contracts verify`` evaluates every contract against the lake and lists violations.
"""

import datetime as dt
import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import polars as pl
import pyarrow as pa
import yaml

from lakehouse.exceptions import LakehouseError
from lakehouse.governance.classifier import PII_CLASSES, PiiClass
from lakehouse.governance.masking import redact_value, redaction_key
from lakehouse.io_manager import LakehouseIOManager
from lakehouse.naming import TableRef
from lakehouse.resource import LakeResource
from lakehouse.settings import project_root
from lakehouse.tables import Lake, Predicate, col
from lakehouse.tables.schema import is_text_type

__all__ = [
    "CONTRACT_CHECK",
    "Contract",
    "ContractError",
    "ContractIOManager",
    "ContractViolationError",
    "Violation",
    "check_frame",
    "check_schema",
    "contract_checks",
    "contract_for",
    "contract_paths",
    "declared_pii",
    "evaluate",
    "load_contracts",
    "type_name",
]

CONTRACT_CHECK = "data_contract"
Severity = Literal["error", "warn"]


class ContractError(LakehouseError, ValueError):
    """A contract YAML is invalid; the message names the file and the field."""


class ContractViolationError(LakehouseError):
    """An output breaks its data contract; nothing was written. The message lists the violations."""


@dataclass(frozen=True)
class ContractColumn:
    name: str
    type: str
    nullable: bool = True
    description: str = ""
    pii: PiiClass | None = None


@dataclass(frozen=True)
class QualityRule:
    column: str | None
    kind: Literal["accepted_values", "min", "max", "pattern", "not_null", "min_rows"]
    value: Any

    def describe(self) -> str:
        target = self.column or "table"
        return f"{target} {self.kind.replace('_', ' ')} {self.value!r}"


@dataclass(frozen=True)
class Contract:
    name: str
    path: str
    ref: TableRef
    owner: str
    description: str
    version: str
    columns: tuple[ContractColumn, ...]
    primary_key: tuple[str, ...] = ()
    freshness_hours: float | None = None
    quality: tuple[QualityRule, ...] = ()
    consumers: tuple[Mapping[str, str], ...] = ()
    partitioned: bool = False
    partition_column: str | None = None

    @property
    def pii(self) -> dict[str, PiiClass]:
        return {c.name: c.pii for c in self.columns if c.pii is not None}


@dataclass(frozen=True)
class Violation:
    contract: str
    table: str
    kind: str  # missing_column, type_changed, not_nullable, primary_key, quality, freshness, missing_table
    message: str
    severity: Severity = "error"
    breaking: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- types -----------------------------------------------------------------------------------------


def type_name(t: pa.DataType) -> str:
    """The contract's name for an Arrow type (the names column schemas use: int64, string, ...)."""
    if is_text_type(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, {t.tz}]" if t.tz else f"timestamp[{t.unit}]"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list"
    return str(t)


def _same_type(declared: str, actual: str) -> bool:
    norm = declared.replace(" ", "").lower()
    return norm == actual.replace(" ", "").lower() or (norm == "timestamp" and actual.startswith("timestamp"))


# -- loading ---------------------------------------------------------------------------------------

_RULE_KINDS = ("accepted_values", "min", "max", "pattern", "not_null", "min_rows")


def _fail(path: str, where: str, problem: str) -> ContractError:
    return ContractError(f"{path}: {where}: {problem}")


def _parse(path: Path) -> Contract:
    name = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ContractError(f"{name}: cannot read the contract ({exc})") from None
    if not isinstance(doc, Mapping):
        raise _fail(name, "top level", "must be a mapping")
    for required in ("contract", "asset", "owner", "schema"):
        if required not in doc:
            raise _fail(name, required, "is required")
    try:
        ref = TableRef.from_key(str(doc["asset"]))
    except ValueError as exc:
        raise _fail(name, "asset", str(exc)) from None
    owner = str(doc["owner"])
    if not owner.startswith("team:"):
        raise _fail(name, "owner", f"{owner!r} must be a team (team:<name>)")
    schema_doc = doc["schema"]
    if not isinstance(schema_doc, Mapping) or not schema_doc:
        raise _fail(name, "schema", "must map column names to {type, nullable, description, pii}")
    columns = []
    for column, raw_spec in schema_doc.items():
        spec = raw_spec if isinstance(raw_spec, Mapping) else {"type": raw_spec}
        if not isinstance(spec.get("type"), str):
            raise _fail(name, f"schema.{column}.type", "is required (int64, string, date, decimal(18,2), ...)")
        pii = spec.get("pii")
        if pii is not None and pii not in PII_CLASSES:
            raise _fail(name, f"schema.{column}.pii", f"{pii!r} is not a PII class; accepted: {', '.join(PII_CLASSES)}")
        columns.append(
            ContractColumn(
                str(column), str(spec["type"]), bool(spec.get("nullable", True)), str(spec.get("description", "")), pii
            )
        )
    names = {c.name for c in columns}
    primary_key = tuple(str(k) for k in (doc.get("primary_key") or ()))
    unknown = [k for k in primary_key if k not in names]
    if unknown:
        raise _fail(name, "primary_key", f"columns {unknown} are not in the schema")
    rules = []
    for i, rule in enumerate(doc.get("quality") or ()):
        kinds = [k for k in _RULE_KINDS if isinstance(rule, Mapping) and k in rule]
        if len(kinds) != 1:
            raise _fail(name, f"quality[{i}]", f"needs exactly one of {', '.join(_RULE_KINDS)}")
        column = rule.get("column")
        if column is not None and column not in names:
            raise _fail(name, f"quality[{i}].column", f"{column!r} is not in the schema")
        if kinds[0] != "min_rows" and column is None:
            raise _fail(name, f"quality[{i}]", f"{kinds[0]} needs a column")
        if kinds[0] == "pattern":
            try:
                re.compile(str(rule["pattern"]))
            except re.error as exc:
                raise _fail(name, f"quality[{i}].pattern", f"not a regular expression ({exc})") from None
        rules.append(QualityRule(column, kinds[0], rule[kinds[0]]))  # type: ignore[arg-type]
    partitions = str(doc.get("partitions", "none"))
    if partitions not in ("daily", "none"):
        raise _fail(name, "partitions", f"{partitions!r}; accepted values: daily, none")
    partition_column = doc.get("partition_column")
    if partition_column is not None and partition_column not in names:
        raise _fail(name, "partition_column", f"{partition_column!r} is not in the schema")
    freshness = doc.get("freshness_hours")
    return Contract(
        name=str(doc["contract"]),
        path=name,
        ref=ref,
        owner=owner,
        description=str(doc.get("description", "")),
        version=str(doc.get("version", "1")),
        columns=tuple(columns),
        primary_key=primary_key,
        freshness_hours=float(freshness) if freshness is not None else None,
        quality=tuple(rules),
        consumers=tuple(dict(c) for c in (doc.get("consumers") or ())),
        partitioned=partitions == "daily",
        partition_column=str(partition_column) if partition_column else None,
    )


@functools.lru_cache(maxsize=64)
def _parse_cached(path: str, mtime_ns: int) -> Contract:
    return _parse(Path(path))


def contract_paths(root: Path | None = None) -> list[Path]:
    """Every contract file: ``assets/<domain>/contracts/*.yaml`` under the project (or ``root``)."""
    base = root or project_root() / "assets"
    return sorted([*base.glob("*/contracts/*.yaml"), *base.glob("*/contracts/*.yml")])


def load_contracts(paths: Iterable[str | Path] | None = None) -> list[Contract]:
    """Parse contracts (default: :func:`contract_paths`); one contract per table."""
    files = [Path(p) for p in paths] if paths is not None else contract_paths()
    contracts = [_parse_cached(str(p.resolve()), p.stat().st_mtime_ns) for p in files]
    seen: dict[TableRef, str] = {}
    for c in contracts:
        if c.ref in seen:
            raise ContractError(f"{c.path}: {c.ref} already has a contract in {seen[c.ref]}")
        seen[c.ref] = c.path
    return contracts


# -- evaluation ------------------------------------------------------------------------------------


def check_schema(contract: Contract, schema: pa.Schema) -> list[Violation]:
    """Breaking schema changes: promised columns that are missing or have another type."""
    out = []
    actual = {f.name: type_name(f.type) for f in schema}
    for c in contract.columns:
        if c.name not in actual:
            out.append(
                Violation(
                    contract.name,
                    str(contract.ref),
                    "missing_column",
                    f"column {c.name!r} ({c.type}) is missing",
                    breaking=True,
                )
            )
        elif not _same_type(c.type, actual[c.name]):
            out.append(
                Violation(
                    contract.name,
                    str(contract.ref),
                    "type_changed",
                    f"column {c.name!r} is {actual[c.name]}, the contract promises {c.type}",
                    breaking=True,
                )
            )
    return out


def _rule_failures(rule: QualityRule, frame: pl.DataFrame, secret: bytes | None) -> tuple[int, str]:
    """Rows failing ``rule`` and a sample of them for the message: row numbers (in the checked
    frame) and keyed hashes of the values, never the values themselves. The message goes to the
    event log, ``contract_results`` and the audit log, which right-to-erasure does not rewrite."""
    if rule.kind == "min_rows":
        return (0 if frame.height >= int(rule.value) else 1), f"{frame.height} row(s)"
    assert rule.column is not None
    if rule.column not in frame.columns:
        return 0, ""
    values = frame.get_column(rule.column)
    if rule.kind == "not_null":
        bad = values.is_null()
    elif rule.kind == "accepted_values":
        bad = ~values.is_in(list(rule.value)) & values.is_not_null()
    elif rule.kind == "pattern":
        bad = ~values.cast(pl.String).str.contains(str(rule.value)) & values.is_not_null()
    elif rule.kind == "min":
        bad = (values < rule.value) & values.is_not_null()
    else:
        bad = (values > rule.value) & values.is_not_null()
    rows = pl.Series(bad).fill_null(False).arg_true()
    sample = [f"row {i} ({redact_value(values[i], secret)})" for i in rows.head(3).to_list()]
    return rows.len(), ", ".join(sample)


def check_frame(
    contract: Contract, frame: pl.DataFrame, *, table: str | None = None, secret: bytes | None = None
) -> list[Violation]:
    """Non-null columns, the primary key and the quality rules over ``frame``. Messages never
    quote a value: failing values are shown as keyed hashes with ``secret`` (the masking key), or
    not at all without it."""
    out = check_schema(contract, frame.to_arrow().schema)
    where = table or str(contract.ref)
    for c in contract.columns:
        if not c.nullable and c.name in frame.columns:
            nulls = frame.get_column(c.name).null_count()
            if nulls:
                out.append(
                    Violation(
                        contract.name, where, "not_nullable", f"column {c.name!r} has {nulls} null(s)", breaking=True
                    )
                )
    key = [k for k in contract.primary_key if k in frame.columns]
    if key and len(key) == len(contract.primary_key) and frame.height:
        dupes = frame.select(key).filter(~pl.any_horizontal([pl.col(k).is_null() for k in key])).is_duplicated().sum()
        null_keys = frame.select(key).filter(pl.any_horizontal([pl.col(k).is_null() for k in key])).height
        if dupes or null_keys:
            out.append(
                Violation(
                    contract.name,
                    where,
                    "primary_key",
                    f"primary key {'+'.join(key)}: {dupes} duplicated row(s), {null_keys} null key(s)",
                )
            )
    for rule in contract.quality:
        failing, sample = _rule_failures(rule, frame, secret)
        if failing:
            out.append(
                Violation(contract.name, where, "quality", f"{rule.describe()}: {failing} row(s) fail, e.g. {sample}")
            )
    return out


def evaluate(
    contract: Contract, lake: Lake, *, where: Predicate | None = None, now: dt.datetime | None = None
) -> tuple[list[Violation], int]:
    """Every violation of the table as it is now (in ``where``, e.g. one partition) and the rows checked."""
    fmt = lake.format_of(contract.ref)
    if fmt is None:
        return [Violation(contract.name, str(contract.ref), "missing_table", f"table {contract.ref} does not exist")], 0
    store = lake.store(fmt)
    schema = store.schema(contract.ref)
    out = check_schema(contract, schema)
    present = [c.name for c in contract.columns if c.name in schema.names]
    needed = sorted(
        {c.name for c in contract.columns if not c.nullable}
        | set(contract.primary_key)
        | {r.column for r in contract.quality if r.column}
    )
    frame = store.read(contract.ref, columns=[c for c in needed if c in present], where=where).collect()
    checked = check_frame(contract, frame, secret=redaction_key(lake.settings))
    out += [v for v in checked if v.kind not in ("missing_column", "type_changed")]
    if contract.freshness_hours is not None:
        history = store.history(contract.ref, limit=1)
        now = now or dt.datetime.now(dt.UTC)
        if history and now - history[0].timestamp > dt.timedelta(hours=contract.freshness_hours):
            age = (now - history[0].timestamp).total_seconds() / 3600
            out.append(
                Violation(
                    contract.name,
                    str(contract.ref),
                    "freshness",
                    f"last updated {age:.1f} h ago; the contract promises {contract.freshness_hours:g} h",
                    severity="warn",
                )
            )
    return out, frame.height


# -- enforcement -------------------------------------------------------------------------------------


def contract_for(ref: TableRef, contracts: Sequence[Contract] | None = None) -> Contract | None:
    for c in contracts if contracts is not None else load_contracts():
        if c.ref == ref:
            return c
    return None


class ContractIOManager(LakehouseIOManager):
    """The lake's IO manager, refusing outputs that break their data contract before writing."""

    contract_paths: list[str] | None = None

    def _handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is not None and isinstance(obj, pl.DataFrame | pl.LazyFrame):
            ref = TableRef.from_key(context.asset_key)
            contract = contract_for(
                ref, load_contracts(self.contract_paths) if self.contract_paths is not None else None
            )
            if contract is not None:
                frame = obj.collect() if isinstance(obj, pl.LazyFrame) else obj
                breaking = [v for v in check_frame(contract, frame) if v.breaking]
                if breaking:
                    raise ContractViolationError(
                        f"{ref}: the output breaks contract {contract.name} ({contract.path}); nothing was written: "
                        + "; ".join(v.message for v in breaking)
                    )
                obj = frame
        super()._handle_output(context, obj)


def contract_checks(
    contracts: Sequence[Contract], partitions_def: dg.PartitionsDefinition | None = None
) -> list[dg.AssetChecksDefinition]:
    """A blocking ``data_contract`` check per contract (partitioned like its asset when
    ``partitioned``): an error stops the asset's consumers in the same run; a freshness miss warns."""
    checks = []
    for contract in contracts:
        checks.append(_check(contract, partitions_def if contract.partitioned else None))
    return checks


def _check(contract: Contract, partitions_def: dg.PartitionsDefinition | None) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(contract.ref.path),
        name=CONTRACT_CHECK,
        description=f"Contract {contract.name} v{contract.version} ({Path(contract.path).name}): schema, primary key, "
        "quality rules and freshness promised to its consumers.",
        blocking=True,
        partitions_def=partitions_def,
    )
    def _contract(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        where = None
        if contract.partition_column and (context.has_partition_key or context.has_partition_key_range):
            from lakehouse.partitions import partition_values

            where = col(contract.partition_column).is_in(partition_values(context.partition_keys))
        violations, rows = evaluate(contract, lake.lake(), where=where)
        errors = [v for v in violations if v.severity == "error"]
        return dg.AssetCheckResult(
            passed=not violations,
            severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
            description="; ".join(v.message for v in violations)[:1000]
            or f"{rows} rows keep contract {contract.name} v{contract.version}",
            metadata={
                "contract": contract.name,
                "contract_version": contract.version,
                "rows_checked": rows,
                "violations": dg.MetadataValue.json([v.as_dict() for v in violations]) if violations else "none",
                "consumers": ", ".join(c.get("asset", c.get("name", "?")) for c in contract.consumers) or "none",
            },
        )

    return _contract


def declared_pii(contracts: Sequence[Contract], pattern: str = "*") -> dict[TableRef, dict[str, PiiClass]]:
    """PII classes the contracts declare, by table."""
    return {c.ref: c.pii for c in contracts if c.pii and fnmatch.fnmatchcase(str(c.ref), pattern)}
