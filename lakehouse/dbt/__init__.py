"""dbt in the lake: the dbt-duckdb plugin (sources and targets are lakehouse tables), the
project's location and manifest, and the translator that gives dbt nodes their asset keys."""
