"""Governance artifacts as assets (``governance/...``): PII inventory, catalog export, audit log,
contract results; built on ``lakehouse.governance``."""

import dagster as dg

defs = dg.Definitions()
