"""Feature views, training sets and the online store as Dagster assets.

- :func:`feature_view_asset`: a daily-partitioned ``gold/features/<view>`` table. Each run reads
  its sources over the view's look-back, computes the rows (a pure function), checks them
  against the declaration, replaces its partitions, and reports two checks with the
  materialisation: ``unique_key`` (one row per entity and day, read back from the table) and
  ``feature_drift`` (PSI of every feature against the previous day; WARN above the threshold).
- :func:`training_set_asset`: labels joined point-in-time to features (nightly, unpartitioned),
  pinned to the feature tables' versions, which are recorded with the write.
- :func:`online_store_asset`: pushes the latest values of every view online (nightly).
"""

import datetime as dt
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl

from lakehouse.automation import CADENCE_TAG, NIGHTLY
from lakehouse.checks import UNIQUE_KEY
from lakehouse.features.drift import DRIFT_CHECK, DriftReport, evaluate_drift
from lakehouse.features.offline import get_historical_features
from lakehouse.features.online import materialize_online, online_store
from lakehouse.features.registry import FeatureRegistry
from lakehouse.features.spec import EVENT_TIMESTAMP, FEATURE_DATE, FeatureView, full_name
from lakehouse.features.windows import conform_output
from lakehouse.io_manager import PARTITION_EXPR, LakehouseIOManager
from lakehouse.metadata import Column, columns_metadata
from lakehouse.naming import TableRef, pool_for
from lakehouse.partitions import daily_partitions, partition_values
from lakehouse.resource import LakeResource
from lakehouse.settings import get_settings
from lakehouse.tables import Lake, col

__all__ = [
    "NIGHTLY_CONDITION",
    "ONLINE_STORE",
    "ComputeFn",
    "LabelFn",
    "feature_view_asset",
    "online_store_asset",
    "read_sources",
    "training_set_asset",
    "view_columns",
]

#: computes a view's rows for some days from its sources (by source table name), already read
#: over the look-back: join key, ``feature_date`` and the features
ComputeFn = Callable[[Mapping[str, pl.DataFrame], Sequence[dt.date]], pl.DataFrame]
#: builds the entity rows of a training set (join keys, ``event_timestamp``, labels) from the lake
LabelFn = Callable[[Lake], pl.DataFrame]

ONLINE_STORE = TableRef("gold", "features", "online_store")
#: Nightly assets (training sets, the online push) run once a night after the daily partitions,
#: not after every partition that changes (which is what the layer's eager condition would do).
NIGHTLY_CONDITION = dg.AutomationCondition.on_cron("0 3 * * *").with_label(
    "nightly: at 03:00 UTC, once the day's feature partitions have been updated"
)
_TS = "timestamp[us, UTC]"


def _kinds() -> set[str]:
    return {"polars", get_settings().table_format}


def view_columns(view: FeatureView) -> list[Column]:
    """The documented columns of a view's table, with lineage to the source columns."""
    key_lineage = [(s.ref.path, view.join_key) for s in view.sources if view.join_key in s.columns]
    day_lineage = [(s.ref.path, s.partition_column) for s in view.sources if s.partition_column]
    return [
        Column(
            view.join_key,
            view.entity.dtype,
            f"Join key of entity {view.entity.name}. {view.entity.description}".strip(),
            nullable=False,
            lineage=key_lineage,
        ),
        Column(
            EVENT_TIMESTAMP,
            _TS,
            "When the values became known: the midnight (UTC) after feature_date; a point-in-time join at t "
            f"takes the latest row with event_timestamp <= t, at most {view.ttl} old.",
            nullable=False,
            lineage=day_lineage,
        ),
        Column(
            FEATURE_DATE,
            "date",
            "The day the values were computed for; the partition.",
            nullable=False,
            lineage=day_lineage,
        ),
        *[
            Column(
                f.name,
                f.dtype,
                f.description + (f" (window: {f.window_days} days up to feature_date)" if f.window_days else ""),
                lineage=list(f.lineage),
            )
            for f in view.features
        ],
    ]


def read_sources(lake: Lake, view: FeatureView, days: Sequence[dt.date]) -> dict[str, pl.DataFrame]:
    """Each source's declared columns over ``min(days) - lookback_days .. max(days)`` (whole
    snapshot tables for sources without a partition column)."""
    low, high = min(days) - dt.timedelta(days=view.lookback_days), max(days)
    out = {}
    for source in view.sources:
        where = col(source.partition_column).between(low, high) if source.partition_column else None
        store = lake.existing_store(source.ref)
        out[source.name] = store.read(source.ref, columns=list(source.columns), where=where).collect()
    return out


def _drift_result(reports: Sequence[DriftReport], threshold: float) -> dg.AssetCheckResult:
    drifted = [(r.day, f) for r in reports for f in r.drifted]
    judged = {f.feature for r in reports for f in r.judged}
    worst: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for r in reports:
        for f in r.features:
            if f.psi is not None:
                worst[f.feature] = max(worst.get(f.feature, 0.0), f.psi)
            elif f.feature not in judged:
                skipped[f.feature] = f.status
    if drifted:
        text = ", ".join(f"{f.feature} {f.psi:.2f} ({day})" for day, f in drifted[:5])
        description = f"{len(drifted)} feature(s) drifted (PSI > {threshold} vs the previous day): {text}"
    elif judged:
        description = f"{len(judged)} feature(s) within PSI {threshold} of the previous day"
        if skipped:
            description += f"; {len(skipped)} not judged yet"
    else:
        reasons = sorted(set(skipped.values()))
        description = f"not judged: {', '.join(reasons) or 'no features'} (no drift can be claimed yet)"
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not drifted,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "threshold": threshold,
            "max_psi": dg.MetadataValue.json(worst) if worst else "none",
            "not_judged": dg.MetadataValue.json(skipped) if skipped else "none",
            "days": ", ".join(str(r.day) for r in reports),
        },
    )


def _unique_result(lake: Lake, view: FeatureView, days: Sequence[dt.date]) -> dg.AssetCheckResult:
    keys = [view.join_key, FEATURE_DATE]
    frame = lake.existing_store(view.ref).read(view.ref, columns=keys, where=col(FEATURE_DATE).is_in(days)).collect()
    dupes = frame.group_by(keys).len().filter(pl.col("len") > 1)
    return dg.AssetCheckResult(
        check_name=UNIQUE_KEY,
        passed=dupes.height == 0,
        description=f"one row per {view.join_key} and day over {frame.height} rows"
        if dupes.height == 0
        else f"{dupes.height} {view.join_key}/day pair(s) occur more than once",
        metadata={"rows": frame.height, "duplicated_keys": dupes.height},
    )


def feature_view_asset(view: FeatureView, compute: ComputeFn) -> dg.AssetsDefinition:
    """The daily-partitioned asset of ``view``, computed by ``compute``."""
    key = dg.AssetKey(view.ref.path)
    with warnings.catch_warnings():  # the flag is "beta"; the first days of a lake need it
        warnings.simplefilter("ignore", dg.BetaWarning)
        mapping = dg.TimeWindowPartitionMapping(
            start_offset=-view.lookback_days, allow_nonexistent_upstream_partitions=True
        )
    deps = [
        dg.AssetDep(dg.AssetKey(s.ref.path), partition_mapping=mapping if s.partition_column else None)
        for s in view.sources
    ]

    @dg.asset(
        key=key,
        pool=pool_for(view.ref),
        deps=deps,
        partitions_def=daily_partitions,
        owners=[view.owner],
        kinds=_kinds(),
        code_version=f"v{view.version}",
        tags={"lakehouse/entity": view.entity.name, **dict(view.tags)},
        description=(
            f"{view.description} Feature view of entity {view.entity.name} (join key {view.join_key}), "
            f"version {view.version}, TTL {view.ttl}; grain: {view.join_key}, feature_date."
        ),
        metadata={
            PARTITION_EXPR: FEATURE_DATE,
            **columns_metadata(view_columns(view)),
            "lakehouse/feature_view": dg.MetadataValue.json(view.to_dict()),
            "lakehouse/feature_view_version": view.version,
            "lakehouse/ttl_seconds": int(view.ttl.total_seconds()),
        },
        check_specs=[
            dg.AssetCheckSpec(
                UNIQUE_KEY,
                asset=key,
                blocking=True,
                description=f"{view.join_key}+{FEATURE_DATE} is unique in the written partitions",
                partitions_def=daily_partitions,
            ),
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=key,
                description=f"PSI of each feature vs the previous day stays below {view.drift_threshold} (WARN)",
                partitions_def=daily_partitions,
            ),
        ],
    )
    def _view(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
        the_lake = lake.lake()
        days = sorted(d for d in partition_values(context.partition_keys) if isinstance(d, dt.date))
        rows = conform_output(view, compute(read_sources(the_lake, view, days), days), days)
        store = the_lake.store_for(view.ref)
        previous_day = days[0] - dt.timedelta(days=1)
        reference = (
            store.read(view.ref, where=col(FEATURE_DATE) == previous_day).collect()
            if store.exists(view.ref)
            else rows.clear()
        )
        result = store.overwrite_partitions(
            view.ref,
            rows,
            partition_by=FEATURE_DATE,
            values=days,
            commit_metadata={"dagster_run_id": context.run_id, **view.commit_metadata()},
        )
        first_day = lake.settings().start_date
        reports = []
        for day in days:
            current = rows.filter(pl.col(FEATURE_DATE) == day)
            reports.append(evaluate_drift(view, reference, current, day=day, first_day=first_day))
            reference = current
        metadata = LakehouseIOManager.write_metadata(store, view.ref, result, store.info(view.ref).rows)
        metadata.update(
            {
                "lakehouse/feature_view_version": view.version,
                "entities_per_day": dg.MetadataValue.json(
                    {str(d): n for d, n in rows.group_by(FEATURE_DATE).len().sort(FEATURE_DATE).iter_rows()}
                ),
            }
        )
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[_unique_result(the_lake, view, days), _drift_result(reports, view.drift_threshold)],
        )

    return _view


def training_set_asset(
    ref: TableRef,
    *,
    labels: LabelFn,
    label_columns: Sequence[Column],
    features: Sequence[str],
    registry: FeatureRegistry,
    owner: str,
    description: str,
    deps: Sequence[Sequence[str]] = (),
) -> dg.AssetsDefinition:
    """A nightly training set: the entity rows and labels of ``labels`` joined point-in-time to
    ``features``, reading every feature table at one pinned version (recorded with the write)."""
    selections = registry.resolve(features)
    feature_columns = [
        Column(
            full_name(view.name, name),
            view.feature(name).dtype,
            f"{view.feature(name).description} (from {view.name} v{view.version}, as of event_timestamp)",
            lineage=[(view.ref.path, name)],
        )
        for view, names in selections
        for name in names
    ]
    columns = [*label_columns, *feature_columns]

    @dg.asset(
        key=ref.path,
        pool=pool_for(ref),
        deps=[*[dg.AssetKey(v.ref.path) for v, _ in selections], *[dg.AssetKey(list(d)) for d in deps]],
        owners=[owner],
        kinds=_kinds(),
        tags={CADENCE_TAG: NIGHTLY},
        automation_condition=NIGHTLY_CONDITION,
        description=description,
        metadata={
            **columns_metadata(columns),
            "lakehouse/features": ", ".join(features),
        },
    )
    def _training(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
        the_lake = lake.lake()
        entity_rows = labels(the_lake)
        versions = {}
        for view, _ in selections:
            version = the_lake.existing_store(view.ref).version(view.ref)
            if version is not None:
                versions[view.name] = version
        frame = get_historical_features(the_lake, entity_rows, features, registry=registry, versions=versions)
        frame = frame.select([c.name for c in columns])
        store = the_lake.store_for(ref)
        pinned = {v.name: {"version": v.version, "table_version": versions.get(v.name)} for v, _ in selections}
        result = store.overwrite(
            ref,
            frame,
            commit_metadata={"dagster_run_id": context.run_id, "lakehouse.training_set.features": json.dumps(pinned)},
        )
        metadata = LakehouseIOManager.write_metadata(store, ref, result, frame.height)
        metadata["feature_views"] = dg.MetadataValue.json(pinned)
        return dg.MaterializeResult(metadata=metadata)

    return _training


def online_store_asset(registry: FeatureRegistry, *, owner: str) -> dg.AssetsDefinition:
    """The nightly push of every view's latest values into the configured online store."""
    views = list(registry)
    lineage_of = {
        "view": [(v.ref.path, v.join_key) for v in views],
        "rows": [(v.ref.path, v.join_key) for v in views],
        "as_of": [(v.ref.path, EVENT_TIMESTAMP) for v in views],
        "newest_event_timestamp": [(v.ref.path, EVENT_TIMESTAMP) for v in views],
    }
    columns = [
        Column("view", "string", "Feature view held online.", nullable=False, lineage=lineage_of["view"]),
        Column("version", "int64", "Version of the view's declaration."),
        Column("rows", "int64", "Entities with a value (within TTL at as_of).", lineage=lineage_of["rows"]),
        Column("as_of", _TS, "Values are those of a point-in-time join at this moment.", lineage=lineage_of["as_of"]),
        Column("materialized_at", _TS, "When the values were pushed."),
        Column(
            "newest_event_timestamp",
            _TS,
            "event_timestamp of the freshest value.",
            lineage=lineage_of["newest_event_timestamp"],
        ),
    ]

    @dg.asset(
        key=ONLINE_STORE.path,
        deps=[dg.AssetKey(v.ref.path) for v in views],
        owners=[owner],
        kinds={get_settings().online_store, "polars"},
        tags={CADENCE_TAG: NIGHTLY},
        automation_condition=NIGHTLY_CONDITION,
        description=(
            "The online feature store: the latest value of every feature view per entity (within its TTL), "
            "pushed nightly to the embedded SQLite store or Redis (LAKEHOUSE_ONLINE_STORE); read with "
            "`lakehouse features get` or lakehouse.features.get_online_features."
        ),
        metadata=columns_metadata(columns),
    )
    def _online(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:  # type: ignore[type-arg]
        lake_settings = lake.settings()
        # the online store's own settings (LAKEHOUSE_ONLINE_STORE, LAKEHOUSE_REDIS_URL) come from the
        # environment of the step; where the lake lives comes from the resource
        store_settings = get_settings().with_overrides(home=lake_settings.home, warehouse=lake_settings.warehouse)
        entries = materialize_online(store_settings, views, lake=lake.lake())
        now = dt.datetime.now(dt.UTC)
        status: dict[str, Any] = {e.view.name: e.status(now) for e in entries}
        return dg.MaterializeResult(
            metadata={
                "online_store": online_store(store_settings).location,
                "as_of": entries[0].as_of.isoformat() if entries else "-",
                "dagster/row_count": sum(e.rows for e in entries),
                "views": dg.MetadataValue.json(status),
                "seconds_since_newest_value": max(
                    (s["seconds_since_newest_value"] or 0.0 for s in status.values()), default=0.0
                ),
            }
        )

    return _online
