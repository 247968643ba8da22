"""Backfills: planned from backfill policies, a single-run range equals one run per day, and only
transient storage errors are retried."""

import dataclasses
import datetime as dt

import dagster as dg
import polars as pl
import pytest

from lakehouse.backfill import BackfillError, plan_backfill, run_backfill_in_process
from lakehouse.naming import TableRef
from lakehouse.partitions import partition_dates
from lakehouse.retries import is_transient
from lakehouse.simulator import SimulationConfig, generate


def definitions():
    from lakehouse.definitions import build_definitions

    return build_definitions()


def test_a_year_of_silver_and_gold_is_one_run_and_with_bronze_twelve(lake_env):
    defs = definitions()
    year = plan_backfill(defs, "group:silver or group:gold", "2024-01-01", "2024-12-31")
    assert len(year.partitions) == 366 and year.runs == [("2024-01-01", "2024-12-31")]
    # marts and training sets are rebuilt whole: left out of a partition backfill, and said so
    assert dg.AssetKey(["gold", "marts", "mart_customer_value"]) in year.skipped
    assert all(defs.resolve_asset_graph().get(k).partitions_def is not None for k in year.keys)
    everything = plan_backfill(defs, "tag:domain=retail", "2024-01-01", "2024-12-31")
    assert len(everything.runs) == 12 and everything.per_run == 31
    assert everything.runs[0] == ("2024-01-01", "2024-01-31") and everything.runs[-1] == (
        "2024-12-07",
        "2024-12-31",
    )  # 2024 has 366 days


@pytest.mark.parametrize(
    "selection, start, end, message",
    [
        ("group:silver", "2024-02-30", "2024-03-01", "--from '2024-02-30' is not a date"),
        ("group:silver", "2024-03-02", "2024-03-01", "--from 2024-03-02 is after --to 2024-03-01"),
        (
            "group:silver",
            "2023-12-30",
            "2024-01-02",
            "partitions 2023-12-30..2024-01-02 do not exist; the asset partitions run 2024-01-01..",
        ),
        ("group:platinum", "2024-01-01", "2024-01-02", "matches no asset"),
        ("key:((", "2024-01-01", "2024-01-02", "asset selection 'key:((' is not valid"),
    ],
)
def test_bad_backfill_requests_are_refused_clearly(lake_env, selection, start, end, message):
    with pytest.raises(BackfillError, match=message.replace("(", r"\(").replace(".", r"\.")):
        plan_backfill(definitions(), selection, start, end)


def content(lake, layers=("silver", "gold")) -> dict[str, pl.DataFrame]:
    out = {}
    for info in lake.tables():
        if info.ref.layer not in layers or info.ref.domain != "retail":
            continue
        df = lake.store(info.format).read(info.ref).collect()
        df = df.drop([c for c in df.columns if c in ("_ingested_at", "_fetched_at", "_loaded_at")])
        out[str(info.ref)] = df.select(sorted(df.columns)).sort(sorted(df.columns))
    return out


def test_a_single_run_range_writes_what_one_run_per_day_writes(demo, tmp_path, monkeypatch):
    """The demo lake was loaded one run per day; the same landing files backfilled with silver and
    gold in one run give the same tables."""
    from lakehouse.cli import simulated_services
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    home = tmp_path / "backfill"
    (home / "dagster").mkdir(parents=True)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("LAKEHOUSE_TABLE_FORMAT", demo.format)
    settings = get_settings()
    config = demo.truth["config"]
    generate(settings, SimulationConfig(start=settings.start_date, days=config["days"], seed=config["seed"]))
    keys = list(partition_dates(settings.start_date, config["days"]))
    with simulated_services(settings):
        defs = definitions()
        instance = dg.DagsterInstance.ephemeral()
        # bronze exactly as the daily runs load it (the REST source pages by fetch window),
        # so what differs is only how silver and gold were run
        bronze = plan_backfill(defs, "group:bronze and tag:domain=retail", keys[0], keys[-1])
        bronze = dataclasses.replace(bronze, runs=[(k, k) for k in keys])
        assert run_backfill_in_process(defs, bronze, instance).success
        upper = plan_backfill(defs, "(group:silver or group:gold) and tag:domain=retail", keys[0], keys[-1])
        assert len(upper.runs) == 1
        outcome = run_backfill_in_process(defs, upper, instance)
        assert outcome.success, outcome.runs
        assert outcome.runs[0]["failed_checks"] == []
        run = instance.get_run_by_id(outcome.runs[0]["run_id"])
        assert run.tags["dagster/asset_partition_range_start"] == keys[0]
    per_day, backfilled = content(demo.lake), content(Lake(settings))
    assert per_day.keys() == backfilled.keys() and len(per_day) >= 14
    for name, frame in per_day.items():
        other = backfilled[name]
        assert frame.height == other.height, (name, frame.height, other.height)
        assert frame.equals(other), name


def test_only_transient_storage_errors_are_retried():
    from lakehouse.exceptions import SchemaMismatchError, StorageError

    assert is_transient(ConnectionResetError("reset by peer"))
    assert is_transient(OSError("Generic S3 error: Error after 3 retries ... 503 Service Unavailable"))
    assert is_transient(TimeoutError())
    try:
        try:
            raise ConnectionError("connection refused")
        except ConnectionError as inner:
            raise RuntimeError("commit failed") from inner
    except RuntimeError as outer:
        assert is_transient(outer)
    assert not is_transient(StorageError("bucket 'x' does not exist"))
    assert not is_transient(SchemaMismatchError("silver.retail.orders", "amount", "int64", "string"))
    assert not is_transient(ValueError("cannot parse 'abc'"))
    assert not is_transient(OSError("Permission denied"))


def test_a_transient_write_error_is_retried_and_a_schema_error_is_not(lake_env, monkeypatch):
    from lakehouse.exceptions import SchemaMismatchError
    from lakehouse.tables.delta import DeltaStore
    from resources import build_resources

    real = DeltaStore.overwrite_partitions
    failures = {"left": 1, "error": ConnectionResetError("connection reset by peer")}

    def flaky(self, *args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise failures["error"]
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaStore, "overwrite_partitions", flaky)
    monkeypatch.setattr("lakehouse.retries.backoff_seconds", lambda attempt, **_: 0.05)

    @dg.asset(
        key=["silver", "ops", "t"],
        partitions_def=dg.DailyPartitionsDefinition("2024-01-01"),
        metadata={"partition_expr": "day"},
    )
    def t() -> pl.DataFrame:
        return pl.DataFrame({"day": [dt.date(2024, 1, 2)], "v": [1]})

    result = dg.materialize([t], resources=build_resources(), partition_key="2024-01-02", raise_on_error=False)
    assert result.success
    assert [e.event_type_value for e in result.all_events].count("STEP_UP_FOR_RETRY") == 1

    failures.update(left=1, error=SchemaMismatchError("silver.retail.t", "v", "int64", "string"))
    result = dg.materialize([t], resources=build_resources(), partition_key="2024-01-02", raise_on_error=False)
    assert not result.success
    assert "STEP_UP_FOR_RETRY" not in [e.event_type_value for e in result.all_events]
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    assert Lake(get_settings()).store().read(TableRef("silver", "ops", "t")).collect().height == 1
