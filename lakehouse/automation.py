"""How the lake keeps itself fresh and tells someone when it cannot.

- **Declarative automation**: every silver and gold asset gets a named ``AutomationCondition``
  (below), evaluated by an automation sensor that is *running by default*. A file landing for a
  day materialises that day's bronze partition (the landing sensor), and the conditions carry the
  change through silver and gold for that partition only.
- **Backfills**: silver and gold run a whole partition range in one run (``single_run``; the IO
  manager writes every partition of the range in one commit per table), bronze in runs of at most
  :data:`BRONZE_BATCH` days (its work is per file).
- **Freshness**: gold tables carry a ``FreshnessPolicy`` (warn after 24 h, fail after 26 h without
  an update; the UI shows it) and a ``freshness`` check that fails when the newest partition is
  older than yesterday; a daily schedule evaluates those checks.
- **Alerts**: a run-failure sensor and a blocking-check sensor send one alert per failed run to
  the configured channels (:mod:`lakehouse.alerts`).
"""

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import dagster as dg
import polars as pl
from dagster._core.storage.tags import WILL_RETRY_TAG

from lakehouse.alerts import BLOCKING_CHECK_FAILED, RUN_FAILED, AlertResource, alert_for_run
from lakehouse.checks import CheckOutcome, lake_check
from lakehouse.io_manager import PARTITION_EXPR
from lakehouse.naming import TableRef
from lakehouse.tables import Lake, Predicate

__all__ = [
    "AUTOMATION_SENSOR",
    "BRONZE_BATCH",
    "CADENCE_TAG",
    "EAGER_PARTITION",
    "FRESHNESS_CHECK",
    "FRESHNESS_JOB",
    "FRESHNESS_POLICY",
    "NEW_PARTITION",
    "NIGHTLY",
    "alert_sensors",
    "apply_operations_policy",
    "automation_sensor",
    "freshness_checks",
    "freshness_schedule",
]

AUTOMATION_SENSOR = "lakehouse_automation"
#: Asset tag saying which refresh an asset belongs to. Untagged assets are refreshed by the daily
#: job, one partition at a time. ``nightly`` assets (dbt marts, training sets) run after it, over
#: the whole partition range in one run; the governance layer runs last, in its own job.
CADENCE_TAG = "lakehouse/cadence"
NIGHTLY = "nightly"
FRESHNESS_JOB = "freshness_checks"
FRESHNESS_CHECK = "freshness"
BRONZE_BATCH = 31

#: How far up the graph "still running" is looked for: bronze -> silver -> gold dimension -> gold
#: fact, and one more for a table built on a fact.
UPSTREAM_DEPTH = 4


def _upstream_in_progress(levels: int) -> dg.AutomationCondition[Any]:
    """Some partition at most ``levels`` steps upstream is in a queued or running run.

    Dagster's ``any_deps_in_progress`` looks one step up only: a fact whose silver inputs wait on
    a queued bronze run would start first, and on a new lake find no table (the real daemon
    showed it: fct_sales ran before silver order_lines existed).
    """
    condition = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.in_progress())
    for _ in range(levels - 1):
        condition = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.in_progress() | condition)
    return condition.with_label("something upstream is still running")


#: Silver and gold: materialise a partition when one of its upstream partitions was updated since
#: it was last handled, once nothing upstream of it is still running (up to
#: :data:`UPSTREAM_DEPTH` steps away). Unlike ``eager()``, any partition qualifies, not only the
#: newest, so late and re-delivered files flow through; and an upstream partition that never
#: arrives (a source without a file that day) does not block it: it reads as empty, exactly as in
#: the daily job. Nothing runs for days without data.
EAGER_PARTITION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~_upstream_in_progress(UPSTREAM_DEPTH)
    & ~dg.AutomationCondition.in_progress()
).with_label("eager_partition: an upstream partition changed")

#: Silver and gold tables without an upstream asset (the date dimension is generated, not derived):
#: no upstream change will ever start them, so the newest day's partition is made once, when it
#: appears or when the daemon first sees it missing. (``since_last_handled`` would not do: it
#: resets on the first evaluation, when today's partition is already missing.)
NEW_PARTITION = (
    dg.AutomationCondition.in_latest_time_window()
    & (
        dg.AutomationCondition.newly_missing()
        | (dg.AutomationCondition.missing() & dg.AutomationCondition.initial_evaluation())
    ).since(dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated())
    & ~dg.AutomationCondition.in_progress()
).with_label("new_partition: the newest day's partition is missing")

#: Gold tables should be refreshed daily: warn after 24 hours without a new materialisation,
#: fail after 26 (a nightly run that is two hours late).
FRESHNESS_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(hours=24)
)


def _layer(key: dg.AssetKey) -> str:
    return key.path[0]


def apply_operations_policy(assets: Iterable[Any], on_demand_domains: Sequence[str]) -> list[Any]:
    """Backfill policies, automation conditions and freshness policies by layer (an asset that
    sets its own keeps it); on-demand domains (TPC-H) get backfill policies only: nothing
    refreshes them automatically and nobody expects them fresh."""
    out = []
    for item in assets:
        if not isinstance(item, dg.AssetsDefinition):
            out.append(item)
            continue
        keys = list(item.keys)
        on_demand = any(k.path[1] in on_demand_domains for k in keys if len(k.path) > 1)
        layers = {_layer(k) for k in keys}
        changes: dict[str, Any] = {}
        if item.backfill_policy is None:
            changes["backfill_policy"] = (
                dg.BackfillPolicy.multi_run(max_partitions_per_run=BRONZE_BATCH)
                if layers == {"bronze"}
                else dg.BackfillPolicy.single_run()
            )
        conditions = {
            k: EAGER_PARTITION if item.specs_by_key[k].deps else NEW_PARTITION
            for k in keys
            if _layer(k) in ("silver", "gold") and item.automation_conditions_by_key.get(k) is None and not on_demand
        }
        if conditions:
            changes["automation_condition"] = conditions
        out.append(item.with_attributes(**changes) if changes else item)
    return list(
        dg.map_asset_specs(
            lambda spec: (
                spec.replace_attributes(freshness_policy=FRESHNESS_POLICY)
                if _layer(spec.key) == "gold"
                and spec.freshness_policy is None
                and not (len(spec.key.path) > 1 and spec.key.path[1] in on_demand_domains)
                else spec
            ),
            out,
        )
    )


def automation_sensor(
    selection: dg.AssetSelection, interval_seconds: int = 30
) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the conditions every ``interval_seconds`` (``LAKEHOUSE_SENSOR_INTERVAL``); running
    as soon as the daemon starts."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=selection,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval_seconds,
        description="Refreshes silver and gold partitions when their upstream partitions change.",
    )


# -- freshness -------------------------------------------------------------------------------------


def _freshness_outcome(lake: Lake, ref: TableRef, column: str, now: dt.datetime, max_age: dt.timedelta) -> CheckOutcome:
    store = lake.existing_store(ref)
    history = store.history(ref, limit=1)
    last_update = history[0].timestamp if history else None
    newest = store.read(ref, columns=[column]).select(pl.col(column).max()).collect().item()
    expected = (now - dt.timedelta(days=1)).date()
    metadata: dict[str, Any] = {
        "newest_partition": str(newest),
        "expected_partition": str(expected),
        "last_update": last_update.isoformat() if last_update else "never",
    }
    problems = []
    if newest is None or newest < expected:
        problems.append(f"newest partition {newest} is older than {expected}")
    if last_update is None or now - last_update > max_age:
        age = (
            "never updated"
            if last_update is None
            else f"last updated {(now - last_update).total_seconds() / 3600:.1f} h ago"
        )
        problems.append(f"{age} (limit {max_age.total_seconds() / 3600:.0f} h)")
    return CheckOutcome(not problems, "; ".join(problems) or f"partition {newest} is current", metadata)


def _freshness_evaluator(
    ref: TableRef, column: str, max_age: dt.timedelta
) -> Callable[[Lake, Predicate | None, dg.AssetCheckExecutionContext], CheckOutcome]:
    def evaluate(lake: Lake, _: Predicate | None, context: dg.AssetCheckExecutionContext) -> CheckOutcome:
        return _freshness_outcome(lake, ref, column, dt.datetime.now(dt.UTC), max_age)

    return evaluate


def freshness_checks(
    assets: Iterable[Any], max_age: dt.timedelta = dt.timedelta(hours=26)
) -> list[dg.AssetChecksDefinition]:
    """A ``freshness`` check per daily-partitioned gold table: its newest partition is at least
    yesterday's and its last commit is younger than ``max_age``."""
    checks = []
    for item in assets:
        if not isinstance(item, dg.AssetsDefinition):
            continue
        for key in item.keys:
            spec = item.specs_by_key[key]
            column = spec.metadata.get(PARTITION_EXPR)
            if _layer(key) != "gold" or item.partitions_def is None or not isinstance(column, str):
                continue
            evaluate = _freshness_evaluator(TableRef.from_key(key.path), column, max_age)

            checks.append(
                lake_check(
                    asset=key.path,
                    name=FRESHNESS_CHECK,
                    description=f"The newest partition is at least yesterday's and the table changed within {max_age.total_seconds() / 3600:.0f} h.",
                    evaluate=evaluate,
                    blocking=False,
                )
            )
    return checks


def freshness_schedule(checks: Sequence[dg.AssetChecksDefinition]) -> tuple[Any, dg.ScheduleDefinition]:
    keys = [key for c in checks for key in c.check_keys]
    job = dg.define_asset_job(
        FRESHNESS_JOB,
        selection=dg.AssetSelection.checks(*keys),
        description="Evaluate every gold table's freshness check.",
    )
    schedule = dg.ScheduleDefinition(
        name="daily_freshness_schedule",
        job=job,
        cron_schedule="0 7 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every morning at 07:00 UTC: is every gold table up to yesterday?",
    )
    return job, schedule


# -- alerts ----------------------------------------------------------------------------------------


def alert_sensors(interval_seconds: int = 15) -> list[dg.SensorDefinition]:
    """One alert per failure and channel: runs failed by a blocking check go through
    ``blocking_check_alerts``, every other failure through ``run_failure_alerts``. A failed run
    that run retries will re-execute does not alert; its last attempt does, if it fails too. They
    look every ``interval_seconds`` (half of ``LAKEHOUSE_SENSOR_INTERVAL``: alerts should not wait
    longer than the refreshes they report on)."""

    def build(name: str, kind: str, description: str) -> dg.SensorDefinition:
        @dg.run_failure_sensor(
            name=name,
            description=description,
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=interval_seconds,
        )
        def _sensor(context: dg.RunFailureSensorContext, alerts: AlertResource) -> dg.SkipReason | None:
            run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
            if run.tags.get(WILL_RETRY_TAG) == "true":
                # run retries (dagster.yaml) will re-execute it: only the last failed attempt alerts
                return dg.SkipReason(f"run {run.run_id} will be retried; no alert unless the retry fails")
            alert = alert_for_run(context.instance, run, alerts.ui_url)
            if alert.kind != kind:
                return dg.SkipReason(f"{alert.kind}: reported by the other alert sensor")
            outcome = alerts.send(alert)
            context.log.info(f"alert for run {alert.run_id}: {outcome}")
            failed = {c: r for c, r in outcome.items() if r != "sent"}
            if failed:
                raise RuntimeError(f"alert channels failed: {failed}")
            return None

        return _sensor

    return [
        build("run_failure_alerts", RUN_FAILED, "Alerts when a run fails (log file, webhook, e-mail)."),
        build(
            "blocking_check_alerts",
            BLOCKING_CHECK_FAILED,
            "Alerts when a blocking asset check fails and stops a run (log file, webhook, e-mail).",
        ),
    ]
