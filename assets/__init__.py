"""The asset graph, one package per domain. Each package exposes ``defs``."""

import dagster as dg

from assets import retail, tpch

DOMAINS = {"retail": retail, "tpch": tpch}
#: domains loaded on request (``lakehouse bench tpch``), not by the daily refresh
ON_DEMAND = ("tpch",)

defs = dg.Definitions.merge(*(domain.defs for domain in DOMAINS.values()))
