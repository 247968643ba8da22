"""TPC-H as a lakehouse domain, loaded on demand by ``lakehouse bench tpch``: dbgen's tables land
as files and go through the project's own readers, bronze typing, checks and silver layer, so the
22 queries over silver test the whole path against the official answers."""

from pathlib import Path

import dagster as dg

from lakehouse.ingest.factory import build_sources
from lakehouse.ingest.infer import parse_type
from lakehouse.ingest.sources import load_specs
from lakehouse.modeling.conform import ConformSpec
from lakehouse.modeling.silver import SilverEntity, lineage_columns, silver_definitions

SOURCES_YAML = Path(__file__).with_name("sources.yaml")
SPECS = {spec.name: spec for spec in load_specs(SOURCES_YAML)}
OWNER = "team:benchmarks"


def _entity(name: str) -> SilverEntity:
    spec = SPECS[name]
    types = {column: parse_type(doc.type) for column, doc in spec.columns.items() if doc.type}
    docs = [(column, doc.type or "string", doc.description, None) for column, doc in spec.columns.items()]
    docs += [("_source_file", "string", "Landing file.", None), ("_source_line", "int64", "Line in the file.", None)]
    return SilverEntity(
        name=name,
        bronze=spec.bronze,
        description=f"{spec.description} Typed exactly as dbgen defines it (decimals stay decimals, dates stay dates); grain: "
        f"{', '.join(spec.primary_key)}.",
        spec=ConformSpec(
            keys=list(spec.primary_key),
            types=types,
            required=list(spec.primary_key),
            columns=[*spec.columns, "_source_file", "_source_line", "_partition_date"],
        ),
        columns=lineage_columns(spec.bronze, docs),
        owner=OWNER,
    )


ENTITIES = [_entity(name) for name in SPECS]
TABLES = list(SPECS)
defs = dg.Definitions.merge(build_sources(str(SOURCES_YAML)), silver_definitions(ENTITIES))

__all__ = ["ENTITIES", "SPECS", "TABLES", "defs"]
