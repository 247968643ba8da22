"""Step 1 of an erasure: find the subject everywhere and write down exactly what to remove.

Nothing here changes the lake. The plan names every table, the exact key values (or, for
quarantine tables, the exact ``_source_file``/``_source_line`` records) to delete, the landing
records to blank and the derived partitions to recompute, so that :mod:`.apply` can carry it out
(and resume it after a crash) without searching again for rows it already deleted.

Identifiers match **exactly** (strings case-folded, as e-mail addresses are case-insensitive):
``ann@x.com`` never matches ``joann@x.com``. Quarantined records (``_raw``) are parsed — JSON by
key, delimited lines with their landing file's header read by the ingest CSV sniffer — and their
fields compared exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from lakehouse.exceptions import LakehouseError
from lakehouse.governance.policy import ErasureSubject, Policy, load_policy
from lakehouse.naming import TableRef, join_uri, pool_for
from lakehouse.settings import Settings
from lakehouse.storage import read_bytes
from lakehouse.tables import Lake, Predicate, TableStore, col
from lakehouse.tables.predicates import all_of, any_of

__all__ = [
    "ErasureError",
    "ErasurePlan",
    "RawMatcher",
    "TablePlan",
    "mentions",
    "parse_subject",
    "plan_erasure",
    "predicate",
    "subject_tables",
    "text_identifiers",
    "typed",
]

RAW = "_raw"
_MAX_ROUNDS = 5
_TOKENS = re.compile(r"[\s,;|\t\"'<>()\[\]{}]+")


class ErasureError(LakehouseError):
    """An erasure request cannot be carried out (bad subject, a landing file that cannot be edited
    safely, a pool that cannot be held)."""


def parse_subject(text: str) -> tuple[str, object]:
    """``customer_id=123`` -> ``("customer_id", 123)`` (digits become an integer)."""
    column, sep, raw = text.partition("=")
    column, raw = column.strip(), raw.strip()
    if not sep or not column or not raw:
        raise ErasureError(f"--subject {text!r} must be COLUMN=VALUE, e.g. customer_id=123")
    value: object = int(raw) if raw.lstrip("-").isdigit() else raw
    return column, value


# -- matching ---------------------------------------------------------------------------------------


def variants(values: Iterable[object]) -> list[object]:
    """Values as they may be stored: strings also lower-cased (e-mails are case-insensitive)."""
    out: list[object] = []
    for v in values:
        if v is None:
            continue
        out.append(v)
        if isinstance(v, str) and v.lower() != v:
            out.append(v.lower())
    return list(dict.fromkeys(out))


def typed(values: Iterable[object], dtype: pl.DataType) -> list[object]:
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


def predicate(columns: Mapping[str, Sequence[object]]) -> Predicate | None:
    """Rows where any of ``columns`` holds one of its values (exact ``IN``)."""
    parts = [col(c).is_in(list(v)) for c, v in columns.items() if v]
    return any_of(parts) if parts else None


def folded(value: object) -> str:
    """How a value is compared with an identifier: its text, trimmed and case-folded."""
    return str(value).strip().lower()


def text_identifiers(values: Mapping[str, Iterable[object]]) -> set[str]:
    """The identifiers that are unmistakable wherever they appear (e-mail addresses, names):
    texts that are not numbers. A number (``1``, or ``"1"`` in a text column) is the subject's
    only in a column (or JSON key) named like its identifier."""
    return {
        folded(v)
        for vs in values.values()
        for v in vs
        if isinstance(v, str) and v.strip() and not v.strip().lstrip("+-").replace(".", "", 1).isdigit()
    }


class RawMatcher:
    """Finds the subject in quarantined records (``_raw``), comparing whole field values only:
    JSON objects by key, delimited lines by the columns of their landing file's header (found
    with the ingest CSV sniffer, so erasure reads a file as ingestion did); a record that cannot
    be parsed is split into tokens, each compared whole with the subject's text identifiers."""

    def __init__(self, settings: Settings, values: Mapping[str, Iterable[object]]) -> None:
        self.settings = settings
        self.values = {c: {folded(v) for v in vs} for c, vs in values.items() if vs}
        self.texts = text_identifiers(values)
        self._headers: dict[str, tuple[list[str], str] | None] = {}

    def header(self, source_file: str | None) -> tuple[list[str], str] | None:
        """The column names and delimiter of a landing file (None: unreadable or not delimited)."""
        if not source_file:
            return None
        if source_file not in self._headers:
            found = None
            try:
                from lakehouse.ingest.csv_reader import SNIFF_BYTES, first_record, sniff_delimiter
                from lakehouse.ingest.text import decompress, detect_encoding, to_utf8

                data = decompress(read_bytes(self.settings, join_uri(self.settings.landing, source_file)))[0]
                sample = to_utf8(data[:SNIFF_BYTES], detect_encoding(data[:SNIFF_BYTES]))
                text = sample.decode("utf-8", errors="replace")
                delimiter = sniff_delimiter(text)
                names = first_record(text, delimiter)
                found = ([n.strip() for n in names], delimiter) if names else None
            except (OSError, ValueError, LakehouseError):
                found = None  # the file is gone or not text: the record is matched by its tokens
            self._headers[source_file] = found
        return self._headers[source_file]

    def record(self, raw: str, source_file: str | None) -> dict[str, Any] | None:
        text = raw.strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                return doc
        header = self.header(source_file)
        if header is not None:
            from lakehouse.ingest.csv_reader import first_record

            names, delimiter = header
            fields = first_record(text, delimiter)
            if fields is not None:
                return dict(zip(names, fields, strict=False))
        return None

    def matches(self, raw: str | None, source_file: str | None) -> bool:
        if not raw:
            return False
        record = self.record(raw, source_file)
        if record is not None:
            return any(
                (value := record.get(column)) is not None and folded(value) in wanted
                for column, wanted in self.values.items()
            )
        return mentions(raw, self.texts)


def mentions(text: str, texts: set[str]) -> bool:
    """``text`` holds one of the (folded) text identifiers ``texts`` as a whole token."""
    return bool(texts) and any(token in texts for token in _TOKENS.split(text.strip().lower()) if token)


# -- the plan ---------------------------------------------------------------------------------------


@dataclass
class TablePlan:
    """What to delete from one table: rows holding ``keys`` values, or the quarantined
    ``records`` (``_source_file``, ``_source_line``)."""

    ref: TableRef
    format: str
    rows: int
    version_before: int | None
    keys: dict[str, list[Any]] = field(default_factory=dict)
    records: list[tuple[str, int]] = field(default_factory=list)
    #: partition values (ISO days) of the rows removed, for recomputing what is derived from them
    partitions: list[str] = field(default_factory=list)
    #: (landing file, line) of each removed bronze record
    landing: list[tuple[str, int]] = field(default_factory=list)

    @property
    def where(self) -> Predicate | None:
        parts: list[Predicate] = []
        if (keys := predicate(self.keys)) is not None:
            parts.append(keys)
        parts.extend(all_of([col("_source_file") == f, col("_source_line") == n]) for f, n in self.records)
        return any_of(parts) if parts else None

    def to_json(self) -> dict[str, Any]:
        return {
            "table": str(self.ref),
            "format": self.format,
            "rows": self.rows,
            "version_before": self.version_before,
            "keys": self.keys,
            "records": [list(r) for r in self.records],
            "partitions": self.partitions,
            "landing": [list(r) for r in self.landing],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TablePlan:
        return cls(
            ref=TableRef.parse(doc["table"]),
            format=doc["format"],
            rows=int(doc["rows"]),
            version_before=doc["version_before"],
            keys={c: list(v) for c, v in doc["keys"].items()},
            records=[(str(f), int(n)) for f, n in doc["records"]],
            partitions=list(doc["partitions"]),
            landing=[(str(f), int(n)) for f, n in doc["landing"]],
        )

    def absorb(self, other: TablePlan) -> bool:
        """Add what a later plan found in this table; True when it found anything new."""
        grown = False
        for c, vs in other.keys.items():
            new = [v for v in vs if v not in self.keys.get(c, [])]
            if new:
                self.keys.setdefault(c, []).extend(new)
                grown = True
        for name, mine, theirs in (
            ("records", self.records, other.records),
            ("landing", self.landing, other.landing),
        ):
            new_items = [r for r in theirs if r not in mine]
            if new_items:
                mine.extend(new_items)
                grown = grown or name == "records"
        self.partitions = sorted({*self.partitions, *other.partitions})
        if grown:
            self.rows += other.rows
        return grown


@dataclass
class ErasurePlan:
    column: str
    value: object
    subject: ErasureSubject
    values: dict[str, set[object]]
    tables: list[TablePlan]
    recompute: list[tuple[list[str], list[str]]]  # (asset key path, partition keys or [] for all)
    #: the Dagster pools of every table that could hold the subject (held while applying)
    pools: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def landing_records(self) -> dict[str, set[int]]:
        files: dict[str, set[int]] = {}
        for t in self.tables:
            for file, line in t.landing:
                files.setdefault(file, set()).add(line)
        return files


def subject_tables(lake: Lake) -> list[tuple[TableRef, str, TableStore]]:
    """Every table that can hold a data subject (all but the governance layer's own)."""
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


def _pools(defs: Any, refs: Iterable[TableRef]) -> list[str]:
    """The pool of each table's writer op (as the maintenance ops share it), else ``pool_for``."""
    declared: dict[TableRef, str] = {}
    if defs is not None:
        import dagster as dg

        for assets_def in defs.resolve_asset_graph().assets_defs:
            executable = isinstance(assets_def, dg.AssetsDefinition) and assets_def.is_executable
            pool = getattr(assets_def.node_def, "pool", None) if executable else None
            for key in assets_def.keys:
                try:
                    declared[TableRef.from_key(key)] = pool or pool_for(TableRef.from_key(key))
                except ValueError:
                    continue
    return sorted({declared.get(ref) or pool_for(ref) for ref in refs})


def plan_erasure(
    settings: Settings,
    column: str,
    value: object,
    *,
    policy: Policy | None = None,
    lake: Lake | None = None,
    defs: Any = None,
    instance: Any = None,
    known: Mapping[str, Iterable[object]] | None = None,
) -> ErasurePlan:
    """Every row of the subject ``column = value`` in the lake (nothing is changed).

    ``known``: identifier values already known (a resumed erasure's journal), searched for too —
    the rows they were found in may be gone. ``defs`` (passed in by the caller, never imported
    here): the code location, for the derived assets to recompute and the writers' pools;
    ``instance``: where run-time column lineage is found."""
    policy = policy or load_policy()
    lake = lake or Lake(settings)
    subject = policy.subject_for(column)
    identifiers = set(subject.identifiers) | {column}
    values: dict[str, set[object]] = {column: set(variants([value]))}
    for c, vs in (known or {}).items():
        values.setdefault(c, set()).update(variants(vs))
    tables = subject_tables(lake)
    schemas = {ref: pl.Schema(store.schema(ref)) for ref, _, store in tables}
    followed = {f.column for f in subject.follow}
    # 1. the subject's identifiers and followed keys, until nothing new turns up
    for _ in range(_MAX_ROUNDS):
        grown = False
        for ref, _fmt, store in tables:
            schema = schemas[ref]
            where = predicate({c: typed(v, schema[c]) for c, v in values.items() if c in schema})
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
                new = set(variants(found.get_column(c).drop_nulls().unique().to_list())) - values.get(c, set())
                if new:
                    values.setdefault(c, set()).update(new)
                    grown = True
        if not grown:
            break
    # 2. the rows to remove, table by table, with the exact key values found in them
    partition_columns = _partition_columns(defs)
    matcher = RawMatcher(settings, values)
    plans: list[TablePlan] = []
    candidates: list[TableRef] = []
    for ref, fmt, store in tables:
        schema = schemas[ref]
        here = {c: typed(v, schema[c]) for c, v in values.items() if c in schema}
        here = {c: v for c, v in here.items() if v}
        lineage = [c for c in ("_source_file", "_source_line") if c in schema]
        part = partition_columns.get(ref)
        extra = [c for c in [*lineage, part] if c and c in schema]
        if here or (RAW in schema and len(lineage) == 2) or set(schema) & (identifiers | followed):
            candidates.append(ref)
        plan = TablePlan(ref, fmt, 0, None)
        if here:
            where = predicate(here)
            found = store.read(ref, columns=list(dict.fromkeys([*here, *extra])), where=where).collect()
            plan.keys = {
                c: sorted(set(found.get_column(c).drop_nulls().to_list()) & set(v), key=str) for c, v in here.items()
            }
            plan.keys = {c: v for c, v in plan.keys.items() if v}
        elif RAW in schema and len(lineage) == 2:
            raw = store.read(ref, columns=list(dict.fromkeys([RAW, *extra]))).collect()
            hits = [
                matcher.matches(r, f) for r, f in zip(raw[RAW].to_list(), raw["_source_file"].to_list(), strict=True)
            ]
            found = raw.filter(pl.Series(hits, dtype=pl.Boolean)) if raw.height else raw
            plan.records = sorted({(str(f), int(n)) for f, n in found.select(lineage).drop_nulls().iter_rows()})
        else:
            continue
        if found.height == 0:
            continue
        plan.rows, plan.version_before = found.height, store.version(ref)
        if part and part in found.columns:
            plan.partitions = sorted({str(d) for d in found.get_column(part).drop_nulls().to_list()})
        if ref.layer == "bronze" and len(lineage) == 2:
            plan.landing = sorted({(str(f), int(n)) for f, n in found.select(lineage).drop_nulls().iter_rows()})
        plans.append(plan)
    subject_columns = set(values) | followed
    recompute = _recompute_plan(defs, plans, schemas, subject_columns, instance)
    return ErasurePlan(column, value, subject, values, plans, recompute, _pools(defs, candidates))


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
        except Exception:  # no lineage recorded: fall back to the asset's upstream assets
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
        if columns & (subject_columns | {RAW}):
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
