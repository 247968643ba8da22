"""Bronze retail: every source in ``sources.yaml`` as a daily-partitioned bronze table plus its
quarantine and checks (built by :func:`lakehouse.ingest.factory.build_sources`)."""

from pathlib import Path

from lakehouse.ingest.bronze import PARTITION_COLUMN
from lakehouse.ingest.factory import build_sources
from lakehouse.ingest.sources import load_specs

SOURCES_YAML = Path(__file__).with_name("sources.yaml")
SPECS = {spec.name: spec for spec in load_specs(SOURCES_YAML)}

defs = build_sources(str(SOURCES_YAML))

__all__ = ["PARTITION_COLUMN", "SOURCES_YAML", "SPECS", "defs"]
