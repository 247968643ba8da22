"""The retail domain: landing sources to bronze (from sources.yaml), silver orders, gold sales."""

import dagster as dg

from assets.retail import bronze, gold, silver, traffic
from lakehouse.ingest.sensor import build_landing_sensor
from lakehouse.settings import get_settings

landing_sensor = build_landing_sensor(
    list(bronze.SPECS.values()),
    name="retail_landing_sensor",
    minimum_interval_seconds=get_settings().sensor_interval_seconds,
)

defs = dg.Definitions.merge(bronze.defs, silver.defs, gold.defs, traffic.defs, dg.Definitions(sensors=[landing_sensor]))
