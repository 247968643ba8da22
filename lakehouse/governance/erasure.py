"""Right to erasure: remove one data subject from every layer, and from every version that could
bring them back, with a certificate in the audit log.

``erase(settings, column="customer_id", value=123)``:

1. **Find the subject everywhere.** Every table of the lake (whatever produced it: Python assets,
   dbt marts, feature views) with a column that identifies the subject is searched. The values
   found in the subject's rows for the policy's other identifiers (e.g. the e-mail address) and
   followed keys (the subject's ``order_id`` values: their order lines are theirs too) are
   searched for in turn, until nothing new turns up. Quarantine tables are searched in ``_raw``
   (the record as it arrived: JSON, or a delimited line read with its file's header).
2. **Landing files.** The records the subject's bronze rows came from are blanked in the landing
   files (an empty line in place of each record, so every other record keeps its line number and
   the landing recount still equals bronze + quarantine); a re-ingestion cannot bring them back.
3. **Delete** the rows, one commit per table; **recompute** the assets downstream that hold no
   subject rows themselves (aggregates such as ``daily_sales``) for the affected partitions,
   through Dagster, so their reconciliation checks hold; erase the **online feature store**.
4. **Purge history**: old versions, the change feed and metadata that still hold the rows are
   removed (Delta vacuum + log cleanup, Iceberg snapshot expiry), so time travel cannot restore them.
5. **Verify**: every version still readable, the change feed and every file left under the
   touched tables hold no trace of the subject; then record the certificate (tables, rows removed,
   versions before/after, landing records, verification) in the audit log. Identifiers appear in
   it only as keyed hashes.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from lakehouse.exceptions import ChangeFeedUnavailableError, LakehouseError
from lakehouse.governance.masking import keyed_hash, masking_key
from lakehouse.governance.policy import ErasureSubject, Policy, load_policy
from lakehouse.naming import TableRef, join_uri
from lakehouse.settings import Settings
from lakehouse.storage import list_files, read_bytes, write_bytes
from lakehouse.tables import Lake, Predicate, TableStore, col
from lakehouse.tables.predicates import all_of, any_of

__all__ = [
    "ErasureError",
    "ErasurePlan",
    "ErasureResult",
    "TablePlan",
    "Verification",
    "erase",
    "parse_subject",
    "plan_erasure",
    "subject_hashes",
    "verify_absent",
    "verify_certificates",
]

_RAW = "_raw"
_LINE_FORMATS = ("csv", "tsv", "ndjson", "log")
_MAX_ROUNDS = 5


class ErasureError(LakehouseError):
    """An erasure request cannot be carried out (bad subject, a landing file that cannot be edited safely)."""


def parse_subject(text: str) -> tuple[str, object]:
    """``customer_id=123`` -> ``("customer_id", 123)`` (digits become an integer)."""
    column, sep, raw = text.partition("=")
    column, raw = column.strip(), raw.strip()
    if not sep or not column or not raw:
        raise ErasureError(f"--subject {text!r} must be COLUMN=VALUE, e.g. customer_id=123")
    value: object = int(raw) if raw.lstrip("-").isdigit() else raw
    return column, value


# -- matching ---------------------------------------------------------------------------------------


def _variants(values: Iterable[object]) -> list[object]:
    """Values as they may be stored: strings also lower-cased (e-mails are case-insensitive)."""
    out: list[object] = []
    for v in values:
        if v is None:
            continue
        out.append(v)
        if isinstance(v, str) and v.lower() != v:
            out.append(v.lower())
    return list(dict.fromkeys(out))


def _typed(values: Iterable[object], dtype: pl.DataType) -> list[object]:
    """The values a column of ``dtype`` can hold (an id searched for as int and as text)."""
    out: list[object] = []
    for v in values:
        if dtype.is_integer():
            if isinstance(v, int) and not isinstance(v, bool):
                out.append(v)
            elif isinstance(v, str) and v.strip().lstrip("-").isdigit():
                out.append(int(v))
        elif dtype == pl.String:
            out.append(v if isinstance(v, str) else str(v))
        elif not isinstance(v, str):
            out.append(v)
    return list(dict.fromkeys(out))


def _predicate(columns: Mapping[str, list[object]]) -> Predicate | None:
    parts = [col(c).is_in(v) for c, v in columns.items() if v]
    if not parts:
        return None
    return any_of(parts)


class _RawMatcher:
    """Finds the subject in quarantined records (``_raw``): JSON objects by key, delimited lines
    with their landing file's header, else by the subject's longer text values."""

    def __init__(self, settings: Settings, values: Mapping[str, set[object]]) -> None:
        self.settings = settings
        self.values = {c: {str(v).lower() for v in vs} for c, vs in values.items() if vs}
        self.texts = sorted(
            {str(v).lower() for vs in values.values() for v in vs if isinstance(v, str) and len(v) >= 6}
        )
        self._headers: dict[str, tuple[list[str], str] | None] = {}

    def _header(self, source_file: str | None) -> tuple[list[str], str] | None:
        if not source_file:
            return None
        if source_file not in self._headers:
            found = None
            try:
                from lakehouse.ingest.text import decompress, detect_encoding, to_utf8

                data = decompress(read_bytes(self.settings, join_uri(self.settings.landing, source_file)))[0]
                text = to_utf8(data[:65536], detect_encoding(data[:65536])).decode("utf-8", errors="replace")
                first = text.splitlines()[0] if text else ""
                dialect = csv.Sniffer().sniff(first, delimiters=",;\t|") if first else None
                delimiter = dialect.delimiter if dialect else ","
                found = (next(csv.reader([first], delimiter=delimiter)), delimiter)
            except Exception:
                found = None
            self._headers[source_file] = found
        return self._headers[source_file]

    def _record(self, raw: str, source_file: str | None) -> dict[str, Any] | None:
        text = raw.strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                return doc
        header = self._header(source_file)
        if header is not None:
            names, delimiter = header
            try:
                fields = next(csv.reader([text], delimiter=delimiter))
            except (csv.Error, StopIteration):
                return None
            return dict(zip(names, fields, strict=False))
        return None

    def matches(self, raw: str | None, source_file: str | None) -> bool:
        if not raw:
            return False
        record = self._record(raw, source_file)
        if record is not None:
            for column, wanted in self.values.items():
                value = record.get(column)
                if value is not None and str(value).strip().lower() in wanted:
                    return True
        lowered = raw.lower()
        return any(t in lowered for t in self.texts)


# -- planning ---------------------------------------------------------------------------------------


@dataclass
class TablePlan:
    ref: TableRef
    format: str
    rows: int
    version_before: int | None
    where: Predicate = field(repr=False)
    #: partition values (ISO days) of the rows removed, for recomputing what is derived from them
    partitions: list[str] = field(default_factory=list)
    #: (landing file, line) of each removed bronze record
    landing: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class ErasurePlan:
    column: str
    value: object
    subject: ErasureSubject
    values: dict[str, set[object]]
    tables: list[TablePlan]
    recompute: list[tuple[list[str], list[str]]]  # (asset key path, partition keys or [] for all)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def landing_records(self) -> dict[str, set[int]]:
        files: dict[str, set[int]] = {}
        for t in self.tables:
            for file, line in t.landing:
                files.setdefault(file, set()).add(line)
        return files


def _tables(lake: Lake) -> list[tuple[TableRef, str, TableStore]]:
    return [
        (info.ref, info.format, lake.store(info.format)) for info in lake.tables() if info.ref.layer != "governance"
    ]


def _partition_columns(defs: Any) -> dict[TableRef, str]:
    if defs is None:
        return {}
    out = {}
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        column = graph.get(key).metadata.get("partition_expr")
        column = getattr(column, "value", column)
        try:
            ref = TableRef.from_key(key)
        except ValueError:
            continue
        if isinstance(column, str):
            out[ref] = column
    return out


def plan_erasure(
    settings: Settings,
    column: str,
    value: object,
    *,
    policy: Policy | None = None,
    lake: Lake | None = None,
    defs: Any = None,
    instance: Any = None,
) -> ErasurePlan:
    """Every row of the subject ``column = value`` in the lake (nothing is changed); with ``defs``,
    also the derived assets to recompute (``instance``: where run-time column lineage is found)."""
    policy = policy or load_policy()
    lake = lake or Lake(settings)
    subject = policy.subject_for(column)
    identifiers = set(subject.identifiers) | {column}
    values: dict[str, set[object]] = {column: set(_variants([value]))}
    tables = _tables(lake)
    schemas = {ref: pl.Schema(store.schema(ref)) for ref, _, store in tables}
    # 1. the subject's identifiers and followed keys, until nothing new turns up
    for _ in range(_MAX_ROUNDS):
        grown = False
        for ref, _fmt, store in tables:
            schema = schemas[ref]
            here = {c: _typed(v, schema[c]) for c, v in values.items() if c in schema}
            where = _predicate(here)
            if where is None:
                continue
            wanted = [
                c
                for c in schema
                if c in identifiers or any(f.column == c and f.applies_to(ref) for f in subject.follow)
            ]
            if not wanted:
                continue
            found = store.read(ref, columns=wanted, where=where).collect()
            for c in found.columns:
                new = set(_variants(found.get_column(c).drop_nulls().unique().to_list())) - values.get(c, set())
                if new:
                    values.setdefault(c, set()).update(new)
                    grown = True
        if not grown:
            break
    # 2. the rows to remove, table by table
    partition_columns = _partition_columns(defs)
    matcher = _RawMatcher(settings, values)
    plans: list[TablePlan] = []
    for ref, fmt, store in tables:
        schema = schemas[ref]
        here = {c: _typed(v, schema[c]) for c, v in values.items() if c in schema}
        where = _predicate(here)
        lineage = [c for c in ("_source_file", "_source_line") if c in schema]
        part = partition_columns.get(ref)
        extra = [c for c in [*lineage, part] if c and c in schema]
        if where is not None:
            found = store.read(ref, columns=list(dict.fromkeys([*here, *extra])) or None, where=where).collect()
        elif _RAW in schema and len(lineage) == 2:
            raw = store.read(ref, columns=list(dict.fromkeys([_RAW, *extra]))).collect()
            hits = (
                raw.filter(
                    pl.Series(
                        [
                            matcher.matches(r, f)
                            for r, f in zip(raw[_RAW].to_list(), raw["_source_file"].to_list(), strict=True)
                        ],
                        dtype=pl.Boolean,
                    )
                )
                if raw.height
                else raw
            )
            found = hits
            if hits.height:
                where = any_of(
                    [
                        all_of([col("_source_file") == f, col("_source_line") == n])
                        for f, n in hits.select(lineage).iter_rows()
                    ]
                )
        else:
            continue
        if where is None or found.height == 0:
            continue
        plan = TablePlan(ref, fmt, found.height, store.version(ref), where)
        if part and part in found.columns:
            plan.partitions = sorted({str(d) for d in found.get_column(part).drop_nulls().to_list()})
        if ref.layer == "bronze" and len(lineage) == 2:
            plan.landing = [(str(f), int(n)) for f, n in found.select(lineage).drop_nulls().iter_rows()]
        plans.append(plan)
    subject_columns = set(values) | {f.column for f in subject.follow}
    recompute = _recompute_plan(defs, plans, schemas, subject_columns, instance)
    return ErasurePlan(column, value, subject, values, plans, recompute)


def _lineage_sources(node: Any, instance: Any) -> set[Any] | None:
    """Asset keys an asset's columns are derived from (definition or run-time column lineage)."""
    import dagster as dg

    lineage = node.metadata.get("dagster/column_lineage")
    lineage = getattr(lineage, "value", lineage)
    if not isinstance(lineage, dg.TableColumnLineage) and instance is not None:
        try:
            event = instance.get_latest_materialization_event(node.key)
            found = event.asset_materialization.metadata.get("dagster/column_lineage") if event else None
            lineage = getattr(found, "value", found)
        except Exception:
            lineage = None
    if not isinstance(lineage, dg.TableColumnLineage) or not lineage.deps_by_column:
        return None
    return {dep.asset_key for deps in lineage.deps_by_column.values() for dep in deps}


def _recompute_plan(
    defs: Any,
    plans: Sequence[TablePlan],
    schemas: Mapping[TableRef, pl.Schema],
    subject_columns: set[str],
    instance: Any = None,
) -> list[tuple[list[str], list[str]]]:
    """Derived assets whose rows mix the subject's data with others' (aggregates): recomputed for
    the partitions whose rows were removed upstream, in dependency order.

    An asset qualifies when its columns derive (by column lineage, else by its upstream assets)
    from a table the erasure changed or from another asset being recomputed, and it has no column
    that identifies the subject (row-level tables were erased directly) and is not produced
    together with an erased table by an asset that cannot run alone (a silver table's quarantine)."""
    if defs is None or not plans:
        return []
    import dagster as dg

    graph = defs.resolve_asset_graph()
    touched = {dg.AssetKey(p.ref.path): p for p in plans}
    partitions: dict[Any, set[str]] = {k: set(p.partitions) for k, p in touched.items()}
    out = []
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if key in touched or key.path[0] == "governance" or not node.is_materializable:
            continue
        assets_def = getattr(node, "assets_def", None)
        if assets_def is not None and not assets_def.can_subset and set(assets_def.keys) & set(touched):
            continue  # it would run again with the erased table it is produced with
        try:
            ref: TableRef | None = TableRef.from_key(key)
        except ValueError:
            ref = None
        columns = set(schemas.get(ref, {}).keys()) if ref is not None else set()
        if columns & (subject_columns | {_RAW}):
            continue
        sources = _lineage_sources(node, instance)
        sources = set(node.parent_keys) if sources is None else sources
        changed = [s for s in sources if s in partitions]
        if not changed:
            continue
        partitioned = node.partitions_def is not None
        keys = sorted({d for s in changed for d in partitions[s]}) if partitioned else []
        if partitioned and not keys:
            continue  # no partition it reads changed
        partitions[key] = set(keys)
        out.append((list(key.path), keys))
    return out


# -- landing files ----------------------------------------------------------------------------------


def _blank_records(settings: Settings, file: str, lines: set[int]) -> int:
    """Replace the records starting at ``lines`` in one landing file with empty lines; returns the
    records removed (0 when already done). Refuses, changing nothing, when the result does not read
    back as exactly the other records."""
    from lakehouse.ingest.readers import detect_format, read_file
    from lakehouse.ingest.text import decompress, detect_encoding

    uri = join_uri(settings.landing, file)
    try:
        original = read_bytes(settings, uri)
    except (FileNotFoundError, OSError):
        return 0  # not a file (an API page) or already gone
    data, compression = decompress(original)
    fmt = detect_format(file, data)
    if fmt not in _LINE_FORMATS:
        raise ErasureError(
            f"landing file {file} ({fmt}) holds records of the subject but only line-based files "
            f"({', '.join(_LINE_FORMATS)}) can be edited safely; remove it or rewrite it without lines {sorted(lines)}"
        )
    before = read_file(data, source=file, fmt=fmt)
    starts = sorted(
        set(before.rows.get_column("_source_line").to_list())
        | set(before.quarantine.get_column("_source_line").drop_nulls().to_list())
    )
    present = [s for s in starts if s in lines]
    if not present:
        return 0
    encoding = detect_encoding(data)
    wide = encoding.encoding.startswith("utf-16")
    text: Any = data[encoding.bom :].decode(encoding.encoding) if wide else data
    newline: Any = "\n" if wide else b"\n"
    physical = text.split(newline)
    blank: set[int] = set()
    for i, start in enumerate(starts):
        if start in lines:
            if fmt not in ("csv", "tsv"):
                end = start + 1  # one record per line
            else:  # a quoted field may span lines: the record ends where the next one starts
                end = starts[i + 1] if i + 1 < len(starts) else len(physical) + 1
            blank.update(range(start, end))
    for number in blank:
        if 1 <= number <= len(physical):
            keep_cr = physical[number - 1].endswith("\r" if wide else b"\r")
            physical[number - 1] = ("\r" if wide else b"\r") if keep_cr else ("" if wide else b"")
    body = newline.join(physical)
    edited: bytes = (data[: encoding.bom] + body.encode(encoding.encoding)) if wide else body
    after = read_file(edited, source=file, fmt=fmt)
    expected = before.rows_read - len(present)
    kept_lines = set(after.rows.get_column("_source_line").to_list()) | set(
        after.quarantine.get_column("_source_line").drop_nulls().to_list()
    )
    if after.rows_read != expected or kept_lines & set(present):
        raise ErasureError(
            f"landing file {file}: removing {len(present)} record(s) would not leave exactly the other "
            f"{expected} records ({after.rows_read} read back); the file was not changed"
        )
    if compression:
        edited = gzip.compress(edited, mtime=0)
    write_bytes(settings, uri, edited)
    return len(present)


# -- verification -----------------------------------------------------------------------------------


@dataclass
class Verification:
    passed: bool
    tables_checked: int = 0
    versions_checked: int = 0
    versions_unreadable: int = 0
    change_feeds_checked: int = 0
    files_scanned: int = 0
    findings: list[str] = field(default_factory=list)


def _scan_versions(
    store: TableStore, ref: TableRef, columns: Mapping[str, list[object]], raw: _RawMatcher | None, result: Verification
) -> None:
    where = _predicate(columns)
    versions = sorted({c.version for c in store.history(ref)}, reverse=True)
    for version in versions:
        try:
            if where is not None:
                n = store.read(ref, version=version, where=where).select(pl.len()).collect().item()
            elif raw is not None:
                frame = store.read(ref, version=version, columns=[_RAW, "_source_file"]).collect()
                n = sum(raw.matches(r, f) for r, f in frame.iter_rows())
            else:
                return
        except Exception:  # the files of this version are gone: it cannot be read, so it cannot leak
            result.versions_unreadable += 1
            continue
        result.versions_checked += 1
        if n:
            result.findings.append(f"{ref} version {version}: {n} row(s) of the subject")
    if where is None:
        return
    try:
        changes = store.changes(ref, since=-1)
    except ChangeFeedUnavailableError:
        return  # the versions it would need are gone
    except Exception:  # a change feed over vacuumed files cannot be read either
        return
    result.change_feeds_checked += 1
    present = [c for c in columns if c in changes.columns]
    if present:
        from lakehouse.tables.predicates import to_polars

        hits = changes.filter(to_polars(_predicate({c: columns[c] for c in present}))).height  # type: ignore[arg-type]
        if hits:
            result.findings.append(f"{ref} change feed: {hits} change row(s) of the subject")


def verify_absent(
    settings: Settings,
    values: Mapping[str, set[object]],
    *,
    lake: Lake | None = None,
    residue_tables: Iterable[TableRef] = (),
    landing_files: Iterable[str] = (),
) -> Verification:
    """No readable version, change feed, table file (``residue_tables``) or landing file holds the subject."""
    lake = lake or Lake(settings)
    result = Verification(passed=False)
    matcher = _RawMatcher(settings, values)
    for ref, _fmt, store in _tables(lake):
        schema = pl.Schema(store.schema(ref))
        here = {c: _typed(v, schema[c]) for c, v in values.items() if c in schema}
        here = {c: v for c, v in here.items() if v}
        raw = matcher if not here and _RAW in schema and "_source_file" in schema else None
        if not here and raw is None:
            continue
        result.tables_checked += 1
        _scan_versions(store, ref, here, raw, result)
    needles = sorted({str(v) for vs in values.values() for v in vs if isinstance(v, str) and len(v) >= 6})
    encoded = [n.encode(enc) for n in needles for enc in ("utf-8", "latin-1") if _encodable(n, enc)]
    for ref in residue_tables:
        for entry in list_files(settings, lake.store(lake.format_of(ref) or settings.table_format).location(ref)):
            result.files_scanned += 1
            data = read_bytes(settings, entry.uri)
            if any(n in data for n in encoded):
                result.findings.append(
                    f"{ref}: file {entry.uri.rsplit('/', 1)[-1]} still contains the subject's values"
                )
    for file in landing_files:
        try:
            data = read_bytes(settings, join_uri(settings.landing, file))
        except (FileNotFoundError, OSError):
            continue
        from lakehouse.ingest.text import decompress

        result.files_scanned += 1
        body = decompress(data)[0].lower()
        if any(n.lower() in body for n in encoded):
            result.findings.append(f"landing file {file} still contains the subject's values")
    result.passed = not result.findings
    return result


def _encodable(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


# -- erasure ----------------------------------------------------------------------------------------


def subject_hashes(settings: Settings, values: Mapping[str, set[object]]) -> dict[str, list[str]]:
    """Keyed hashes of the subject's identifiers, as recorded in the certificate."""
    key = masking_key(settings)
    return {c: sorted({h for v in vs if (h := keyed_hash(v, key)) is not None}) for c, vs in sorted(values.items())}


@dataclass
class ErasureResult:
    request_id: str
    dry_run: bool
    plan: ErasurePlan
    tables: list[dict[str, Any]] = field(default_factory=list)
    landing: list[dict[str, Any]] = field(default_factory=list)
    online_store: dict[str, Any] = field(default_factory=dict)
    recomputed: list[dict[str, Any]] = field(default_factory=list)
    verification: Verification | None = None
    seconds: float = 0.0
    audit_seq: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.dry_run or (self.verification is not None and self.verification.passed)

    def summary(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "dry_run": self.dry_run,
            "subject_column": self.plan.column,
            "rows": self.plan.rows,
            "tables": self.tables
            or [{"table": str(t.ref), "rows": t.rows, "partitions": t.partitions} for t in self.plan.tables],
            "landing": self.landing
            or [{"file": f, "records": len(lines)} for f, lines in sorted(self.plan.landing_records().items())],
            "recompute": [{"asset": "/".join(k), "partitions": p} for k, p in self.plan.recompute],
            "recomputed": self.recomputed,
            "online_store": self.online_store,
            "verification": asdict(self.verification) if self.verification else None,
            "seconds": round(self.seconds, 2),
            "timings": self.timings,
            "audit_seq": self.audit_seq,
            "passed": self.passed,
        }


def _erase_online(settings: Settings, values: Mapping[str, set[object]]) -> dict[str, Any]:
    try:
        from lakehouse.features import online  # written by the feature store
    except ImportError:
        return {"status": "unavailable: lakehouse.features.online is not installed"}
    erase_fn: Callable[..., Mapping[str, int]] | None = getattr(online, "erase", None)
    if erase_fn is None:
        return {"status": "unavailable: lakehouse.features.online.erase is missing"}
    removed: dict[str, int] = {}
    for column, vs in values.items():
        for view, n in erase_fn(settings, column=column, values=sorted(vs, key=str)).items():
            removed[view] = removed.get(view, 0) + int(n)
    return {"status": "erased", "removed": removed}


def _recompute(defs: Any, plan: ErasurePlan, instance: Any) -> list[dict[str, Any]]:
    if not plan.recompute:
        return []
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    done = []
    groups: dict[tuple[str, ...], list[list[str]]] = {}
    for key, days in plan.recompute:
        groups.setdefault(tuple(days), []).append(key)
    from lakehouse.automation import FRESHNESS_CHECK

    graph = defs.resolve_asset_graph()
    for n, (partitions, keys) in enumerate(sorted(groups.items())):
        name = f"lakehouse_erasure_recompute_{n}"
        asset_keys = [dg.AssetKey(k) for k in keys]
        # freshness says how old the data is, not whether it reconciles: judged on its own schedule
        freshness = [c for c in graph.asset_check_keys if c.asset_key in asset_keys and c.name == FRESHNESS_CHECK]
        selection: dg.AssetSelection = dg.AssetSelection.assets(*asset_keys)
        if freshness:
            selection = selection - dg.AssetSelection.checks(*freshness)
        job = dg.define_asset_job(name, selection=selection)
        resolved = dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def(name)
        tags = (
            {ASSET_PARTITION_RANGE_START_TAG: partitions[0], ASSET_PARTITION_RANGE_END_TAG: partitions[-1]}
            if partitions
            else {}
        )
        result = resolved.execute_in_process(
            instance=instance,
            tags={**tags, "lakehouse/erasure": plan.column},
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        checks = [
            {
                "check": f"{e.asset_key.to_user_string()}:{e.check_name}",
                "passed": e.passed,
                "severity": e.severity.value,
            }
            for e in result.get_asset_check_evaluations()
        ]
        done.append(
            {
                "assets": ["/".join(k) for k in keys],
                "partitions": list(partitions),
                "run_id": result.run_id,
                "success": result.success,
                "checks": checks,
            }
        )
    return done


def erase(
    settings: Settings,
    *,
    column: str,
    value: object,
    dry_run: bool = False,
    actor: str | None = None,
    reason: str | None = None,
    policy: Policy | None = None,
    defs: Any = None,
    instance: Any = None,
    recompute: bool = True,
) -> ErasureResult:
    """Erase the subject ``column = value`` (see the module docstring for the steps).

    ``defs``: the code location (default: :func:`lakehouse.definitions.build_definitions`), used to
    recompute derived assets; ``instance``: the Dagster instance those runs use.
    """
    started = time.perf_counter()
    lake = Lake(settings)
    if recompute:
        import dagster as dg

        if defs is None:
            from lakehouse.definitions import build_definitions

            defs = build_definitions()
        if instance is None:
            try:
                instance = dg.DagsterInstance.get()
            except Exception:  # no DAGSTER_HOME: the runs still happen, their history is not kept
                instance = dg.DagsterInstance.ephemeral()
    plan = plan_erasure(
        settings, column, value, policy=policy, lake=lake, defs=defs if recompute else None, instance=instance
    )
    result = ErasureResult(request_id=uuid.uuid4().hex, dry_run=dry_run, plan=plan)
    mark = started

    def lap(step: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        result.timings[step] = round(now - mark, 2)
        mark = now

    lap("plan")
    if dry_run:
        result.seconds = time.perf_counter() - started
        return result
    commit = {"lakehouse_erasure": result.request_id}
    # landing first: if anything below fails, running the erasure again finds the rows in bronze
    for file, lines in sorted(plan.landing_records().items()):
        result.landing.append({"file": file, "records_removed": _blank_records(settings, file, lines)})
    lap("landing")
    for t in plan.tables:
        store = lake.store(t.format)  # type: ignore[arg-type]
        deleted = store.delete(t.ref, t.where, commit_metadata=commit)
        result.tables.append(
            {
                "table": str(t.ref),
                "format": t.format,
                "rows_removed": deleted.rows_deleted if deleted.rows_deleted is not None else t.rows,
                "version_before": t.version_before,
            }
        )
    lap("delete")
    result.online_store = _erase_online(settings, plan.values)
    lap("online_store")
    if recompute and defs is not None and plan.recompute:
        result.recomputed = _recompute(defs, plan, instance)
    lap("recompute")
    for entry in result.tables:
        ref = TableRef.parse(entry["table"])
        store = lake.store(entry["format"])
        purge = getattr(store, "purge_history", None)
        if callable(purge):
            purge(ref)
            entry["history"] = "purged"
        else:  # without purge_history (lakehouse.tables before erasure support): old files only
            store.vacuum(ref, retention=dt.timedelta(0))
            entry["history"] = "vacuumed"
        entry["version_after"] = store.version(ref)
    lap("purge_history")
    result.verification = verify_absent(
        settings,
        plan.values,
        lake=lake,
        residue_tables=[t.ref for t in plan.tables],
        landing_files=[r["file"] for r in result.landing],
    )
    lap("verify")
    result.seconds = time.perf_counter() - started
    from lakehouse.governance.audit import record

    value_hash = keyed_hash(plan.value, masking_key(settings))
    certificate: dict[str, Any] = {
        "request_id": result.request_id,
        "subject": {"type": plan.subject.name, "column": plan.column, "value_hash": value_hash},
        "identifiers": subject_hashes(settings, plan.values),
        "reason": reason,
        "tables": result.tables,
        "rows_removed": sum(int(t["rows_removed"] or 0) for t in result.tables),
        "landing": result.landing,
        "online_store": result.online_store,
        "recomputed": result.recomputed,
        "verification": asdict(result.verification),
        "seconds": round(result.seconds, 2),
        "timings": result.timings,
    }
    audit_entry = record(
        settings, action="erasure", target=f"{plan.column}=#{value_hash}", details=certificate, actor=actor
    )
    result.audit_seq = audit_entry.seq
    return result


def verify_certificates(settings: Settings, *, lake: Lake | None = None) -> tuple[bool, dict[str, Any]]:
    """Re-prove every erasure recorded in the audit log: no readable version of any table holds a
    value whose keyed hash is one of an erased subject's identifiers (the check ``erasure_verified``)."""
    from lakehouse.governance.audit import read_entries

    lake = lake or Lake(settings)
    certificates = [e for e in read_entries(settings, lake=lake) if e.action == "erasure"]
    if not certificates:
        return True, {"certificates": 0, "versions_checked": 0, "findings": []}
    key = masking_key(settings)
    hashes: dict[str, set[str]] = {}
    for cert in certificates:
        for column, values in cert.details_json.get("identifiers", {}).items():
            hashes.setdefault(column, set()).update(values)
    findings: list[str] = []
    checked = unreadable = 0
    for ref, _fmt, store in _tables(lake):
        columns = [c for c in store.schema(ref).names if c in hashes]
        if not columns:
            continue
        for version in sorted({c.version for c in store.history(ref)}, reverse=True):
            try:
                frame = store.read(ref, version=version, columns=columns).unique().collect()
            except Exception:
                unreadable += 1
                continue
            checked += 1
            for column in columns:
                seen = {keyed_hash(v, key) for v in frame.get_column(column).drop_nulls().to_list()}
                leaked = seen & hashes[column]
                if leaked:
                    findings.append(f"{ref} version {version}: {len(leaked)} erased {column} value(s)")
    return not findings, {
        "certificates": len(certificates),
        "versions_checked": checked,
        "versions_unreadable": unreadable,
        "findings": findings,
    }
