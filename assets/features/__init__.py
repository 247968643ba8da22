"""Feature views of the retail domain (``gold/features/...``), built on ``lakehouse.features``."""

import dagster as dg

defs = dg.Definitions()
