"""The dbt project as Dagster sees it: where it is, its manifest, and how its nodes map to assets.

Asset keys follow the lake's naming: a model materialised in schema ``gold_marts`` as
``mart_sales_daily`` is the table ``gold.marts.mart_sales_daily`` (asset key
``[gold, marts, mart_sales_daily]``); a source ``gold_retail.fct_sales`` is the asset that writes
``gold/retail/fct_sales``, so Python assets and dbt models form one lineage graph.

The manifest is parsed when the code location loads and the project changed since the last
parse (about 5 s, once), so a fresh clone, CI and ``dagster dev`` all work without a build step.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from lakehouse.automation import CADENCE_TAG, NIGHTLY
from lakehouse.exceptions import LakehouseError
from lakehouse.io_manager import PARTITION_EXPR
from lakehouse.naming import TableRef
from lakehouse.settings import Settings, get_settings, project_root

__all__ = [
    "DBT_PROJECT_DIR",
    "MARTS_NIGHTLY",
    "DbtProjectError",
    "LakehouseDbtTranslator",
    "manifest_path",
    "table_ref",
]

DBT_PROJECT_DIR = project_root() / "dbt_project"
_SOURCES = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")

#: Marts aggregate whole days of every upstream table: rebuild them once a night, after the
#: daily refresh (02:00 UTC), not on every upstream partition update during the day.
MARTS_NIGHTLY = dg.AutomationCondition.on_cron("0 2 * * *", cron_timezone="UTC").with_label(
    "marts_nightly: rebuilt at 02:00 UTC once upstream is updated"
)


class DbtProjectError(LakehouseError):
    """The dbt project cannot be parsed (its manifest cannot be built); the message has dbt's error."""


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _SOURCES:
        path = project_dir / name
        files = [path] if path.is_file() else list(path.rglob("*")) if path.is_dir() else []
        for f in files:
            if f.is_file():
                newest = max(newest, f.stat().st_mtime)
    return newest


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One parse at a time across processes (test workers, webserver and daemon start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def manifest_path(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """``target/manifest.json`` of the project, parsed first when missing or older than the project.

    Raises:
        DbtProjectError: when ``dbt parse`` fails (its output is in the message).
    """
    target = project_dir / "target"
    manifest = target / "manifest.json"
    with _locked(target / ".parse.lock"):
        if manifest.is_file() and manifest.stat().st_mtime >= _newest_source_mtime(project_dir):
            return manifest
        dbt = Path(sys.executable).parent / "dbt"
        done = subprocess.run(
            [str(dbt), "parse", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir), "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not manifest.is_file():
            raise DbtProjectError(
                f"dbt parse failed in {project_dir} (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
            )
        manifest.touch()  # newer than every source, even when dbt reused a partial parse
    return manifest


def table_ref(resource: Mapping[str, Any]) -> TableRef:
    """The lakehouse table a dbt model or source is: its schema is the namespace."""
    if resource["resource_type"] == "source":
        return TableRef.parse(f"{resource['source_name']}.{resource['name']}")
    name = resource.get("alias") or resource["name"]
    return TableRef.parse(f"{resource['schema']}.{name}")


class LakehouseDbtTranslator(DagsterDbtTranslator):
    """dbt nodes as lakehouse assets: keys from the naming rules, owners from ``meta.owner``,
    the nightly cadence and automation, the table format as a kind and the partition column."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self.lake_settings = settings or get_settings()

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return dg.AssetKey(table_ref(dbt_resource_props).path)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return table_ref(dbt_resource_props).layer

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str] | None:
        owner = (dbt_resource_props.get("meta") or {}).get("owner") or (
            (dbt_resource_props.get("config") or {}).get("meta") or {}
        ).get("owner")
        return [owner] if owner else None

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        return {**super().get_tags(dbt_resource_props), CADENCE_TAG: NIGHTLY}

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition[Any] | None:
        return MARTS_NIGHTLY if dbt_resource_props["resource_type"] == "model" else None

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        meta = dict(super().get_metadata(dbt_resource_props))
        partition_by = (dbt_resource_props.get("config") or {}).get("partition_by")
        if partition_by:
            meta[PARTITION_EXPR] = partition_by  # read by the freshness checks, as for Python assets
        ref = table_ref(dbt_resource_props)
        meta["dagster/table_name"] = ref.sql_name
        return meta

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("model."):
            fmt = (self.get_resource_props(manifest, unique_id).get("config") or {}).get("lakehouse_format")
            spec = spec.merge_attributes(kinds={fmt or self.lake_settings.table_format})
        return spec


# -- column lineage --------------------------------------------------------------------------------

_DUCKDB_TYPES = (
    ("int64", "BIGINT"),
    ("int32", "INTEGER"),
    ("double", "DOUBLE"),
    ("bool", "BOOLEAN"),
    ("date32", "DATE"),
    ("timestamp", "TIMESTAMPTZ"),
    ("decimal", "DECIMAL(38, 10)"),
)


def _duckdb_type(arrow_type: str) -> str:
    return next((sql for prefix, sql in _DUCKDB_TYPES if arrow_type.startswith(prefix)), "VARCHAR")


def _table_ancestors(manifest: Mapping[str, Any], unique_id: str) -> list[str]:
    """Sources and materialised models a model reads, looking through ephemeral models (their
    SQL is inlined as CTEs, so the compiled query names the tables behind them)."""
    found: list[str] = []
    pending = list(manifest["parent_map"].get(unique_id, []))
    seen: set[str] = set()
    while pending:
        parent = pending.pop(0)
        if parent in seen:
            continue
        seen.add(parent)
        props = manifest["sources"].get(parent) or manifest["nodes"].get(parent) or {}
        if (props.get("config") or {}).get("materialized") == "ephemeral":
            pending.extend(manifest["parent_map"].get(parent, []))
        elif props:
            found.append(parent)
    return found


def column_lineage(
    manifest: Mapping[str, Any],
    unique_id: str,
    *,
    target_path: Path,
    translator: DagsterDbtTranslator,
    schemas: Mapping[str, Mapping[str, str]],
) -> dict[str, Any]:
    """``dagster/column_lineage`` of a model from its compiled SQL, down to the lakehouse tables.

    dagster-dbt derives lineage from a model's direct parents only, which are ephemeral here
    (staging and intermediate CTEs), so it finds none; this hands its sqlglot-based builder the
    tables behind them instead. ``schemas`` maps a dbt unique id to ``{column: arrow type}``
    (read from the lake); the model's own entry is its written schema.
    """
    from dagster_dbt.core.dbt_cli_event import EventHistoryMetadata, _build_column_lineage_metadata

    node = manifest["nodes"][unique_id]
    ancestors = _table_ancestors(manifest, unique_id)
    parents = {}
    for parent in ancestors:
        props = manifest["sources"].get(parent) or manifest["nodes"][parent]
        parents[props["relation_name"]] = {c: {"data_type": _duckdb_type(t)} for c, t in schemas[parent].items()}
    history = EventHistoryMetadata(
        columns={c: {"data_type": _duckdb_type(t)} for c, t in schemas[unique_id].items()}, parents=parents
    )
    resolved = {**node, "depends_on": {**node["depends_on"], "nodes": ancestors}}
    return dict(
        _build_column_lineage_metadata(
            event_history_metadata=history,
            dbt_resource_props=resolved,
            manifest=manifest,
            dagster_dbt_translator=translator,
            target_path=target_path,
            project=None,
        )
    )


def lineage_ancestors(manifest: Mapping[str, Any], unique_id: str) -> list[str]:
    """The unique ids whose schemas :func:`column_lineage` needs (besides the model's own)."""
    return _table_ancestors(manifest, unique_id)
