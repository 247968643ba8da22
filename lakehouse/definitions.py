"""The code location: every asset, check, job and resource in one ``Definitions``.

Platform-wide policy is applied here, once: each asset's group is its layer, it carries
``layer`` and ``domain`` tags, and an asset without an owner gets the platform default.
This is the only module in ``lakehouse/`` that imports ``assets/`` and ``resources/``.
"""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg

from lakehouse.automation import (
    CADENCE_TAG,
    NIGHTLY,
    alert_sensors,
    apply_operations_policy,
    automation_sensor,
    freshness_checks,
    freshness_schedule,
)
from lakehouse.governance.catalog import known_pii, tag_pii_columns
from lakehouse.maintenance import build_maintenance
from lakehouse.settings import get_settings

DAILY_JOB = "daily_refresh"
NIGHTLY_JOB = "nightly_refresh"
GOVERNANCE_JOB = "governance_refresh"

# The daily job runs one partition at a time, so the mix of bronze (runs of 31 days) and
# silver/gold (single-run) backfill policies in it is intended; Dagster warns about it on every load.
warnings.filterwarnings("ignore", message=r"Asset job .* materializes assets with varying BackfillPolicies")


def _apply_policy(spec: dg.AssetSpec, default_owner: str) -> dg.AssetSpec:
    layer, domain = spec.key.path[0], spec.key.path[1] if len(spec.key.path) > 1 else ""
    return spec.replace_attributes(
        group_name=layer,
        owners=spec.owners or [default_owner],
        tags={**spec.tags, "layer": layer, "domain": domain},
    )


def build_definitions() -> dg.Definitions:
    from assets import ON_DEMAND
    from assets import defs as asset_defs
    from resources import build_resources

    settings = get_settings()
    all_assets: list[Any] = list(asset_defs.assets or [])
    assets = dg.map_asset_specs(lambda spec: _apply_policy(spec, settings.owner), all_assets)
    assets = apply_operations_policy(assets, ON_DEMAND)
    # personal-data columns carry a pii tag in their column schema (contracts + the latest PII inventory)
    assets = tag_pii_columns(assets, known_pii(settings))
    freshness = freshness_checks(assets)
    freshness_job, freshness_cron = freshness_schedule(freshness)

    scheduled: dg.AssetSelection = dg.AssetSelection.all()
    for domain in ON_DEMAND:
        scheduled = scheduled - dg.AssetSelection.tag("domain", domain)
    nightly = dg.AssetSelection.tag(CADENCE_TAG, NIGHTLY)
    governance = dg.AssetSelection.groups("governance")
    # the daily job refreshes data; freshness is judged separately, on its own schedule
    freshness_selection = dg.AssetSelection.checks(*[k for c in freshness for k in c.check_keys])
    daily_selection = scheduled - nightly - governance - freshness_selection
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        selection=daily_selection,
        description="Refresh every daily-partitioned table (bronze -> silver -> gold) for one day.",
    )
    nightly_job = dg.define_asset_job(
        NIGHTLY_JOB,
        selection=(nightly & scheduled) - freshness_selection,
        description="After the daily refresh: the marts and training sets, over a partition range in one run.",
    )
    governance_job = dg.define_asset_job(
        GOVERNANCE_JOB,
        selection=governance,
        description="Last: PII inventory, catalog export, contracts and audit over every table.",
    )
    on_demand_jobs = [
        dg.define_asset_job(
            f"{domain}_load",
            selection=dg.AssetSelection.tag("domain", domain),
            description=f"Load the {domain} domain.",
        )
        for domain in ON_DEMAND
    ]
    maintenance_job, maintenance_schedule = build_maintenance(assets)
    return dg.Definitions(
        assets=assets,
        asset_checks=[*(asset_defs.asset_checks or []), *freshness],
        sensors=[
            *(asset_defs.sensors or []),
            automation_sensor(scheduled, settings.sensor_interval_seconds),
            *alert_sensors(max(1, settings.sensor_interval_seconds // 2)),
        ],
        schedules=[*(asset_defs.schedules or []), maintenance_schedule, freshness_cron],
        jobs=[
            *(asset_defs.jobs or []),
            daily_job,
            nightly_job,
            governance_job,
            maintenance_job,
            freshness_job,
            *on_demand_jobs,
        ],
        resources=build_resources(settings),
        # one process per run, not one per step: every process imports this code location (~4 s),
        # and on two cores with two runs at a time the per-step processes cost more than they win
        executor=dg.in_process_executor,
    )


defs = build_definitions()
