"""Backfill of silver + gold over a year: one run (the single-run backfill policy) against one run
per partition, measured on 30 partitions in the same process and extrapolated per partition.

The landing data is the simulator's (``BENCH_BACKFILL_DAYS`` days, default 365, at
``BENCH_BACKFILL_SCALE``, default 0.2); bronze is loaded first with its own policy (runs of 31
days), untimed except for the record.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench import Figure, scoped_environ

SELECTION = "(group:silver or group:gold) and tag:domain=retail"


def backfill_year() -> Figure:
    fmt = os.environ.get("BENCH_BACKFILL_FORMAT", "delta")
    home = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with scoped_environ(LAKEHOUSE_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), LAKEHOUSE_TABLE_FORMAT=fmt):
        return _backfill_year(fmt)


def _backfill_year(fmt: str) -> Figure:
    days = int(os.environ.get("BENCH_BACKFILL_DAYS", "365"))
    scale = float(os.environ.get("BENCH_BACKFILL_SCALE", "0.2"))
    sample = min(30, days)

    import dataclasses

    import dagster as dg

    from lakehouse.backfill import plan_backfill, run_backfill_in_process
    from lakehouse.cli import simulated_services
    from lakehouse.definitions import build_definitions
    from lakehouse.partitions import partition_dates
    from lakehouse.settings import get_settings
    from lakehouse.simulator import SimulationConfig, generate

    settings = get_settings()
    generate(settings, SimulationConfig(start=settings.start_date, days=days, seed=7, scale=scale))
    keys = list(partition_dates(settings.start_date, days))
    defs = build_definitions()
    with simulated_services(settings), dg.DagsterInstance.ephemeral() as instance:
        bronze = plan_backfill(defs, "group:bronze and tag:domain=retail", keys[0], keys[-1])
        started = time.perf_counter()
        assert run_backfill_in_process(defs, bronze, instance).success
        bronze_seconds = time.perf_counter() - started

        year = plan_backfill(defs, SELECTION, keys[0], keys[-1])
        outcome = run_backfill_in_process(defs, year, instance)
        assert outcome.success, outcome.runs
        single = outcome.seconds

        # the same assets, one run per partition, on the first `sample` days
        per_day = dataclasses.replace(
            plan_backfill(defs, SELECTION, keys[0], keys[sample - 1]), runs=[(k, k) for k in keys[:sample]]
        )
        outcome_per_day = run_backfill_in_process(defs, per_day, instance)
        assert outcome_per_day.success, outcome_per_day.runs
    per_partition_single = single / days
    per_partition_each = outcome_per_day.seconds / sample
    return Figure(
        name=f"backfill silver+gold ({fmt}), {days} partitions in one run (per partition)",
        seconds=per_partition_single,
        baseline_name=f"one run per partition ({sample}, per partition)",
        baseline_seconds=per_partition_each,
        goal="<= 0.1 (single-run >= 10x faster per partition)",
        details={
            "runs_launched": len(year.runs),
            "runs_if_one_per_partition": days,
            "single_run_seconds": round(single, 1),
            "one_run_per_partition_seconds_extrapolated": round(per_partition_each * days, 1),
            "bronze_runs": len(bronze.runs),
            "bronze_seconds": round(bronze_seconds, 1),
            "assets": len(year.keys),
            "scale": scale,
        },
    )
