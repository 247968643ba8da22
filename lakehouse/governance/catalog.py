"""The catalog: every asset with its description, owner, domain, tags and documented columns, their
PII classes, contracts and column-level lineage, read from the code location's definitions (and
the lake, for format, version and rows), never from a list of tables kept by hand: dbt marts and
feature views appear as soon as they are assets.

Column lineage comes from ``dagster/column_lineage`` in each asset's definition metadata, or, when
an asset only reports it at run time (dbt models with ``fetch_column_metadata``), from its latest
materialization.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg

from lakehouse.governance.classifier import PiiClass
from lakehouse.naming import TableRef

__all__ = [
    "CATALOG_EXPORT",
    "ColumnEntry",
    "LineageStep",
    "TableEntry",
    "build_catalog",
    "column_lineage",
    "known_pii",
    "parse_column",
    "search",
    "tag_pii_columns",
    "to_json",
    "to_markdown",
]

CATALOG_EXPORT = TableRef("governance", "catalog", "catalog_export")


@dataclass
class ColumnEntry:
    name: str
    type: str | None
    description: str | None
    nullable: bool | None = None
    unique: bool | None = None
    tags: dict[str, str] = field(default_factory=dict)
    pii_class: str | None = None
    #: upstream columns: ``(table, column)``
    derived_from: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class TableEntry:
    table: str  # layer.domain.table (or the asset key joined with / for other keys)
    key: list[str]
    description: str
    owners: list[str]
    domain: str
    group: str | None
    kinds: list[str]
    tags: dict[str, str]
    columns: list[ColumnEntry]
    upstream: list[str]
    downstream: list[str]
    partition_column: str | None = None
    contract: dict[str, Any] | None = None
    format: str | None = None
    version: int | None = None
    rows: int | None = None

    def column(self, name: str) -> ColumnEntry | None:
        return next((c for c in self.columns if c.name == name), None)


def _name(key: dg.AssetKey) -> str:
    try:
        return str(TableRef.from_key(key))
    except ValueError:
        return "/".join(key.path)


def _value(meta: Mapping[str, Any], key: str) -> Any:
    value = meta.get(key)
    return getattr(value, "value", value)


def _runtime_lineage(instance: dg.DagsterInstance | None, key: dg.AssetKey) -> dg.TableColumnLineage | None:
    if instance is None:
        return None
    try:
        event = instance.get_latest_materialization_event(key)
    except Exception:
        return None
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        return None
    value = _value(materialization.metadata, "dagster/column_lineage")
    return value if isinstance(value, dg.TableColumnLineage) else None


def build_catalog(
    graph: Any,
    *,
    pii: Mapping[TableRef, Mapping[str, PiiClass]] | None = None,
    contracts: Sequence[Any] = (),
    lake_tables: Iterable[Any] = (),
    instance: dg.DagsterInstance | None = None,
) -> list[TableEntry]:
    """One entry per asset of an asset graph (``defs.resolve_asset_graph()``, or a run's
    ``context.repository_def.asset_graph``), sorted by name.

    ``pii``: classes by table and column (the inventory); ``contracts``: parsed data contracts;
    ``lake_tables``: :class:`~lakehouse.tables.TableInfo` of the lake (format, version, rows).
    """
    pii = pii or {}
    by_contract = {c.ref: c for c in contracts}
    facts = {str(info.ref): info for info in lake_tables}
    entries = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: list(k.path)):
        node = graph.get(key)
        if not node.is_materializable and not node.is_observable:
            continue
        name = _name(key)
        try:
            ref: TableRef | None = TableRef.from_key(key)
        except ValueError:
            ref = None
        meta = node.metadata or {}
        schema = _value(meta, "dagster/column_schema")
        lineage = _value(meta, "dagster/column_lineage")
        if not isinstance(lineage, dg.TableColumnLineage):
            lineage = _runtime_lineage(instance, key)
        deps = lineage.deps_by_column if isinstance(lineage, dg.TableColumnLineage) else {}
        table_pii = dict(pii.get(ref, {})) if ref is not None else {}
        contract = by_contract.get(ref) if ref is not None else None
        if contract is not None:
            table_pii = {**contract.pii, **table_pii}
        columns = []
        for c in schema.columns if isinstance(schema, dg.TableSchema) else []:
            tags = dict(c.tags or {})
            columns.append(
                ColumnEntry(
                    name=c.name,
                    type=c.type,
                    description=c.description,
                    nullable=c.constraints.nullable if c.constraints else None,
                    unique=c.constraints.unique if c.constraints else None,
                    tags=tags,
                    pii_class=table_pii.get(c.name) or tags.get("pii"),
                    derived_from=[(_name(d.asset_key), d.column_name) for d in deps.get(c.name, [])],
                )
            )
        listed = {c.name for c in columns}
        for column, pii_class in table_pii.items():  # found in the data but not documented
            if column not in listed:
                columns.append(ColumnEntry(column, None, None, pii_class=pii_class))
        tags = {k: v for k, v in (node.tags or {}).items() if not k.startswith("dagster/kind/")}
        info = facts.get(name)
        entries.append(
            TableEntry(
                table=name,
                key=list(key.path),
                description=node.description or "",
                owners=list(node.owners or []),
                domain=tags.get("domain", key.path[1] if len(key.path) > 1 else ""),
                group=node.group_name,
                kinds=sorted(node.kinds or []),
                tags=tags,
                columns=columns,
                upstream=sorted(_name(k) for k in node.parent_keys),
                downstream=sorted(_name(k) for k in node.child_keys),
                partition_column=_value(meta, "partition_expr"),
                contract=None
                if contract is None
                else {
                    "name": contract.name,
                    "version": contract.version,
                    "owner": contract.owner,
                    "file": contract.path,
                    "primary_key": list(contract.primary_key),
                    "freshness_hours": contract.freshness_hours,
                    "consumers": [dict(c) for c in contract.consumers],
                },
                format=info.format if info else None,
                version=info.version if info else None,
                rows=info.rows if info else None,
            )
        )
    return entries


# -- search ------------------------------------------------------------------------------------------


def search(entries: Sequence[TableEntry], term: str) -> list[dict[str, Any]]:
    """Tables and columns whose name, description, owner, tag or PII class contains ``term``
    (case-insensitive); a table hit ranks before its columns."""
    needle = term.strip().lower()
    if not needle:
        return []
    hits: list[dict[str, Any]] = []

    def match(fields: Mapping[str, Any]) -> list[str]:
        found = []
        for label, value in fields.items():
            texts = value if isinstance(value, list | tuple) else [value]
            if any(needle in str(t).lower() for t in texts if t is not None):
                found.append(label)
        return found

    for e in entries:
        matched = match(
            {
                "name": [e.table, *e.key],
                "description": e.description,
                "owner": e.owners,
                "tag": [f"{k}={v}" if v else k for k, v in e.tags.items()],
                "kind": e.kinds,
                "contract": e.contract["name"] if e.contract else None,
            }
        )
        if matched:
            hits.append(
                {
                    "kind": "table",
                    "table": e.table,
                    "matched": matched,
                    "description": e.description,
                    "owners": e.owners,
                }
            )
        for c in e.columns:
            matched = match(
                {
                    "name": c.name,
                    "description": c.description,
                    "tag": [f"{k}={v}" if v else k for k, v in c.tags.items()],
                    "pii_class": c.pii_class,
                }
            )
            if matched:
                hits.append(
                    {
                        "kind": "column",
                        "table": e.table,
                        "column": c.name,
                        "type": c.type,
                        "matched": matched,
                        "description": c.description,
                        "pii_class": c.pii_class,
                        "owners": e.owners,
                    }
                )
    return hits


# -- lineage ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineageStep:
    direction: str  # upstream or downstream
    depth: int
    table: str
    column: str
    via: str  # the column one step closer to the start: table.column


def parse_column(text: str) -> tuple[str, str]:
    """``layer.domain.table.column`` or ``layer_domain.table.column`` -> (``layer.domain.table``, column)."""
    table, _, column = text.strip().rpartition(".")
    if not table or not column:
        raise ValueError(f"{text!r} is not TABLE.COLUMN (e.g. silver.retail.customers.email)")
    return str(TableRef.parse(table)), column


def column_lineage(entries: Sequence[TableEntry], table: str, column: str) -> list[LineageStep]:
    """Every column ``table.column`` is derived from (upstream, transitively) and every column
    derived from it (downstream), breadth first."""
    by_table = {e.table: e for e in entries}
    downstream_index: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for e in entries:
        for c in e.columns:
            for source in c.derived_from:
                downstream_index.setdefault((source[0], source[1]), []).append((e.table, c.name))
    steps: list[LineageStep] = []
    for direction in ("upstream", "downstream"):
        frontier: list[tuple[str, str]] = [(table, column)]
        seen = {(table, column)}
        depth = 0
        while frontier:
            depth += 1
            following: list[tuple[str, str]] = []
            for t, name in frontier:
                if direction == "upstream":
                    entry = by_table.get(t)
                    found = entry.column(name) if entry is not None else None
                    nexts = list(found.derived_from) if found is not None else []
                else:
                    nexts = downstream_index.get((t, name), [])
                for item in nexts:
                    if item not in seen:
                        seen.add(item)
                        following.append(item)
                        steps.append(LineageStep(direction, depth, item[0], item[1], f"{t}.{name}"))
            frontier = following
    return steps


# -- export ---------------------------------------------------------------------------------------------


def to_json(entries: Sequence[TableEntry], *, generated_at: dt.datetime | None = None) -> str:
    return json.dumps(
        {
            "generated_at": (generated_at or dt.datetime.now(dt.UTC)).isoformat(),
            "tables": [asdict(e) for e in entries],
        },
        indent=2,
        default=str,
    )


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def to_markdown(entries: Sequence[TableEntry], *, generated_at: dt.datetime | None = None) -> str:
    """A data dictionary: one section per table, a row per column (type, PII, description, lineage)."""
    stamp = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Data dictionary\n\nGenerated {stamp} from the code location and the lake: {len(entries)} tables.\n"]
    lines.append("| table | owner | description |\n|---|---|---|")
    for e in entries:
        lines.append(
            f"| [{_cell(e.table)}](#{e.table.replace('.', '')}) | {_cell(', '.join(e.owners))} | {_cell(e.description)} |"
        )
    for e in entries:
        lines.append(f"\n## {e.table}\n\n{e.description}\n")
        facts = [
            f"owner {', '.join(e.owners) or '-'}",
            f"domain {e.domain}",
            f"kinds {', '.join(e.kinds) or '-'}",
        ]
        if e.format:
            facts.append(f"{e.format} v{e.version}, {e.rows} rows")
        if e.contract:
            facts.append(f"contract {e.contract['name']} v{e.contract['version']}")
        lines.append("; ".join(facts) + "\n")
        if e.upstream:
            lines.append(f"Upstream: {', '.join(e.upstream)}\n")
        lines.append("| column | type | PII | description | derived from |\n|---|---|---|---|---|")
        for c in e.columns:
            derived = ", ".join(f"{t}.{col}" for t, col in c.derived_from)
            lines.append(
                f"| {_cell(c.name)} | {_cell(c.type)} | {_cell(c.pii_class or '')} | {_cell(c.description)} | {_cell(derived)} |"
            )
    return "\n".join(lines) + "\n"


def tag_pii_columns(assets: Iterable[Any], pii: Mapping[TableRef, Mapping[str, PiiClass]]) -> list[Any]:
    """The assets with ``pii: <class>`` added to the tags of their personal-data columns, so the
    Dagster UI shows them in each asset's column schema (``pii`` from :func:`known_pii`)."""
    if not pii:
        return list(assets)

    def tag(spec: dg.AssetSpec) -> dg.AssetSpec:
        try:
            ref = TableRef.from_key(spec.key)
        except ValueError:
            return spec
        classes = pii.get(ref)
        schema = spec.metadata.get("dagster/column_schema")
        if not classes or not isinstance(schema, dg.TableSchema):
            return spec
        columns = [
            dg.TableColumn(
                name=c.name,
                type=c.type,
                description=c.description,
                constraints=c.constraints,
                tags={**(c.tags or {}), "pii": classes[c.name]} if c.name in classes else dict(c.tags or {}),
            )
            for c in schema.columns
        ]
        return spec.replace_attributes(
            metadata={**spec.metadata, "dagster/column_schema": dg.TableSchema(columns=columns)}
        )

    return list(dg.map_asset_specs(tag, list(assets)))


def known_pii(settings: Any) -> dict[TableRef, dict[str, PiiClass]]:
    """PII classes the contracts declare, overlaid with the latest inventory when the lake can be
    read (a code location must load without it: then the contracts alone)."""
    from lakehouse.governance.contracts import load_contracts
    from lakehouse.governance.inventory import read_inventory

    out: dict[TableRef, dict[str, PiiClass]] = {}
    with contextlib.suppress(Exception):  # a broken contract file is reported when its checks load
        for contract in load_contracts():
            out.setdefault(contract.ref, {}).update(contract.pii)
    try:
        from lakehouse.tables import Lake

        found, _ = read_inventory(Lake(settings))
    except Exception:
        return out
    for ref, columns in found.items():
        out.setdefault(ref, {}).update(columns)
    return out
