"""silver customers -> dim_customer reads only what changed, and updates and deletes propagate."""

import datetime as dt

import dagster as dg
import polars as pl

from lakehouse.naming import TableRef
from lakehouse.partitions import partition_dates
from lakehouse.simulator import SimulationConfig, generate
from lakehouse.tables import col

SILVER = TableRef("silver", "retail", "customers")
DIM = TableRef("gold", "retail", "dim_customer")


def run_dim(day: str):
    from lakehouse.definitions import DAILY_JOB, build_definitions

    job = build_definitions().resolve_job_def(DAILY_JOB)
    result = job.execute_in_process(partition_key=day, asset_selection=[dg.AssetKey(DIM.path)], raise_on_error=True)
    return result.get_asset_materialization_events()[0].materialization.metadata


def test_updates_and_deletes_flow_from_silver_to_the_dimension(lake_env, settings, lake):
    from lakehouse.cli import run_daily, simulated_services

    generate(settings, SimulationConfig(start=settings.start_date, days=2))
    days = list(partition_dates(settings.start_date, 2))
    with simulated_services(settings):
        run_daily(days, show_progress=False)
    silver = lake.existing_store(SILVER)
    customers = silver.read(SILVER).collect().sort("customer_id")
    orders = lake.store().read(TableRef("silver", "retail", "orders")).collect()
    unused = customers.filter(~pl.col("customer_id").is_in(orders.get_column("customer_id"))).get_column("customer_id")
    gone, moved = int(unused[0]), int(unused[1])

    # the CRM deletes one customer and moves another to a new segment
    silver.delete(SILVER, col("customer_id") == gone)
    row = customers.filter(pl.col("customer_id") == moved)
    new_segment = "corporate" if row.get_column("segment").item() != "corporate" else "consumer"
    later = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    silver.merge(
        SILVER,
        row.with_columns(pl.lit(new_segment).alias("segment"), pl.lit(later).alias("updated_at")),
        keys=["customer_id"],
    )

    meta = run_dim(days[1])
    assert meta["source_read"].value.startswith("changes since version")
    assert (meta["source_rows"].value, meta["source_deletes"].value) == (1, 1)
    dim = lake.existing_store(DIM).read(DIM).collect()
    assert dim.filter(pl.col("customer_id") == gone).height == 0
    versions = dim.filter(pl.col("customer_id") == moved).sort("valid_from")
    assert versions.get_column("segment").to_list()[-1] == new_segment
    assert versions.filter(pl.col("is_current")).get_column("valid_from").item() == later
    # nothing changed since: the next run reads no rows and commits nothing
    again = run_dim(days[1])
    assert (again["source_rows"].value, again["lakehouse/operation"].value) == (0, "NOOP")
