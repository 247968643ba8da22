"""Backfills of a partition range: planned from the assets' backfill policies, launched against the
running instance (the Dagster daemon executes them; the UI shows them) or run in this process.

Silver and gold carry ``BackfillPolicy.single_run()`` and bronze ``multi_run(31)``
(:mod:`lakehouse.automation`), so a year of silver + gold is one run, and bronze + silver + gold
twelve runs of a month each, not 365.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from lakehouse.automation import FRESHNESS_CHECK
from lakehouse.exceptions import LakehouseError

if TYPE_CHECKING:
    from lakehouse.instance import InProcessRuns

__all__ = ["BackfillError", "BackfillPlan", "launch_backfill", "plan_backfill", "run_backfill_in_process"]

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

LAUNCH_MUTATION = """
mutation LaunchBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
  }
}
"""


class BackfillError(LakehouseError, ValueError):
    """A backfill that cannot be planned or launched."""


@dataclass(frozen=True)
class BackfillPlan:
    keys: list[dg.AssetKey]
    partitions: list[str]
    runs: list[tuple[str, str]]  # (first, last) partition of each run
    per_run: int | None  # partitions per run (None: the whole range in one)
    #: selected assets without partitions (marts and training sets rebuilt whole): not part of a
    #: partition backfill; materialise them once it is done
    skipped: list[dg.AssetKey] = field(default_factory=list)

    @property
    def start(self) -> str:
        return self.partitions[0]

    @property
    def end(self) -> str:
        return self.partitions[-1]


@dataclass
class BackfillOutcome:
    runs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        return all(r["success"] for r in self.runs)


def plan_backfill(defs: dg.Definitions, selection: str, start: str, end: str) -> BackfillPlan:
    """Resolve ``selection`` (Dagster's selection syntax, e.g. ``group:silver or group:gold``) and
    split ``start..end`` into runs by the strictest backfill policy among the selected assets."""
    graph = defs.resolve_asset_graph()
    try:
        keys = sorted(dg.AssetSelection.from_string(selection).resolve(graph), key=lambda k: list(k.path))
    except Exception as exc:
        raise BackfillError(f"asset selection {selection!r} is not valid: {exc}") from None
    if not keys:
        raise BackfillError(f"asset selection {selection!r} matches no asset")
    skipped = [k for k in keys if graph.get(k).partitions_def is None]
    keys = [k for k in keys if k not in skipped]
    if not keys:
        raise BackfillError(
            f"asset selection {selection!r} matches no partitioned asset (only {[k.to_user_string() for k in skipped]})"
        )
    partitions_defs = {graph.get(k).partitions_def for k in keys}
    if len(partitions_defs) != 1:
        raise BackfillError(f"a backfill needs assets with the same partitions; {selection!r} mixes several")
    (partitions_def,) = partitions_defs
    assert partitions_def is not None
    for label, value in (("--from", start), ("--to", end)):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise BackfillError(f"{label} {value!r} is not a date YYYY-MM-DD") from None
    if start > end:
        raise BackfillError(f"--from {start} is after --to {end}")
    existing = partitions_def.get_partition_keys()
    partitions = [p for p in existing if start <= p <= end]
    if not partitions or partitions[0] != start or partitions[-1] != end:
        raise BackfillError(
            f"partitions {start}..{end} do not exist; the asset partitions run {existing[0]}..{existing[-1]}"
        )
    sizes = []
    for key in keys:
        policy = graph.get(key).backfill_policy
        sizes.append(1 if policy is None else policy.max_partitions_per_run)
    limits = [s for s in sizes if s is not None]
    per_run = min(limits) if limits else None
    step = per_run or len(partitions)
    runs = [(partitions[i], partitions[min(i + step, len(partitions)) - 1]) for i in range(0, len(partitions), step)]
    return BackfillPlan(keys=keys, partitions=partitions, runs=runs, per_run=per_run, skipped=skipped)


def run_backfill_in_process(
    defs: dg.Definitions,
    plan: BackfillPlan,
    instance: dg.DagsterInstance,
    *,
    progress: Callable[[str], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> BackfillOutcome:
    """Execute the plan's runs one after the other in this process (no daemon needed).

    Launched through :class:`~lakehouse.instance.InProcessRuns`: runs a killed command left
    behind are failed and their table slots freed first, a table held by a live run is waited
    for with a bound, and Ctrl-C or SIGTERM stops the backfill instead of going on with its next
    run. ``notify`` hears about both (default: stderr).
    """
    from lakehouse.instance import InProcessRuns

    # the data checks of the selected assets run with them; freshness is judged on its own schedule
    checks = [
        k for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key in plan.keys and k.name != FRESHNESS_CHECK
    ]
    selection = dg.AssetSelection.assets(*plan.keys).without_checks() | dg.AssetSelection.checks(*checks)
    job_def = dg.define_asset_job("__lakehouse_backfill", selection=selection)
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[job_def])).resolve_job_def("__lakehouse_backfill")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    outcome = BackfillOutcome()
    started = time.perf_counter()
    with InProcessRuns(instance, "lakehouse backfill", notify=notify) as launcher:
        for first, last in plan.runs:
            if not _run_one(job, plan, first, last, launcher, quiet, outcome, progress):
                break
    outcome.seconds = time.perf_counter() - started
    return outcome


def _run_one(
    job: Any,
    plan: BackfillPlan,
    first: str,
    last: str,
    launcher: InProcessRuns,
    run_config: dict[str, Any],
    outcome: BackfillOutcome,
    progress: Callable[[str], None] | None,
) -> bool:
    """One run of the plan (partitions ``first..last``), recorded in ``outcome``; False if it failed."""
    tags = {RANGE_START: first, RANGE_END: last, "lakehouse/backfill": f"{plan.start}..{plan.end}"}
    result = launcher.execute(job, tags=tags, run_config=run_config, raise_on_error=False)
    failed_checks = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    outcome.runs.append(
        {
            "range": f"{first}..{last}",
            "run_id": result.run_id,
            "success": result.success,
            "failed_checks": failed_checks,
        }
    )
    if progress:
        progress(f"{first}..{last}: {'ok' if result.success else 'FAILED'} (run {result.run_id[:8]})")
    return bool(result.success)


def launch_backfill(url: str, plan: BackfillPlan, *, title: str | None = None, timeout: float = 30.0) -> str:
    """Submit the backfill to the running instance through the webserver's GraphQL API; the daemon
    runs it with each asset's backfill policy. Returns the backfill id."""
    variables = {
        "backfillParams": {
            "partitionsByAssets": [
                {"assetKey": {"path": list(k.path)}, "partitions": {"range": {"start": plan.start, "end": plan.end}}}
                for k in plan.keys
            ],
            "title": title or f"lakehouse backfill {plan.start}..{plan.end}",
            "tags": [{"key": "lakehouse/backfill", "value": f"{plan.start}..{plan.end}"}],
        }
    }
    data = graphql(url, LAUNCH_MUTATION, variables, timeout=timeout)["launchPartitionBackfill"]
    if data["__typename"] != "LaunchBackfillSuccess":
        raise BackfillError(f"the instance refused the backfill ({data['__typename']}): {data.get('message')}")
    return str(data["backfillId"])


def graphql(url: str, query: str, variables: dict[str, Any] | None = None, *, timeout: float = 30.0) -> dict[str, Any]:
    """POST one GraphQL request to a Dagster webserver; errors name the URL."""
    if not url.startswith(("http://", "https://")):
        raise BackfillError(f"{url!r} is not an http(s) URL of a Dagster webserver")
    endpoint = url.rstrip("/") + "/graphql"
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(endpoint, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            payload = json.loads(response.read())
    except (urllib.error.URLError, OSError) as exc:
        raise BackfillError(
            f"cannot reach the Dagster webserver at {endpoint}: {exc}; start it with `make ui` or use --in-process"
        ) from None
    if payload.get("errors"):
        raise BackfillError(f"{endpoint}: {payload['errors'][0].get('message')}")
    return dict(payload["data"])
