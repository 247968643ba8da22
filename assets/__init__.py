"""The asset graph, one package per domain. Each package exposes ``defs``."""

import dagster as dg

from assets import features, governance, marts, retail, tpch

#: asset packages by domain (features and governance span domains; they are packages like the rest)
DOMAINS = {
    "retail": retail,
    "marts": marts,
    "tpch": tpch,
    "features": features,
    "governance": governance,
}
#: domains loaded on request (``lakehouse bench tpch``), not by the daily refresh
ON_DEMAND = ("tpch",)

defs = dg.Definitions.merge(*(domain.defs for domain in DOMAINS.values()))
