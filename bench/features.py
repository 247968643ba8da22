"""Feature store: online lookup latency and the point-in-time join.

``online``: p50/p99 of ``get_online_features`` from Python for 1 and 100 entities x 50 features
(5 views x 10 features, 10,000 entities materialised), embedded SQLite and Redis, in one run;
baseline: one raw read of one record from the same store (SQLite primary-key SELECT, Redis GET).
Goals: 1-entity p99 <= 2 ms on both, 100-entity p99 <= 20 ms.

``pit_{delta,iceberg}``: ``get_historical_features`` for 100,000 entity rows against 10 views
(10,000 entities x 90 days x 5 features each: 9M feature rows), in a fresh process so its peak
RSS is its own; baseline: reading the same columns of the same tables. Goal < 60 s and < 4 GB.

Sizes: ``BENCH_FEATURES_ENTITIES``, ``BENCH_FEATURES_DAYS``, ``BENCH_FEATURES_ROWS``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench import Figure

ENTITIES = int(os.environ.get("BENCH_FEATURES_ENTITIES", "10000"))
DAYS = int(os.environ.get("BENCH_FEATURES_DAYS", "90"))
ROWS = int(os.environ.get("BENCH_FEATURES_ROWS", "100000"))

# builds `views` feature views of `features` float/int features for ENTITIES entities x `days`
_BUILD = r"""
import datetime as dt, json, os, sys
import numpy as np, polars as pl
from lakehouse.features.spec import Entity, Feature, FeatureView
from lakehouse.features.windows import conform_output
from lakehouse.settings import get_settings
from lakehouse.tables import Lake

def views(n_views, n_features):
    customer = Entity("customer", "customer_id", "int64", "A customer.")
    out = []
    for v in range(n_views):
        feats = [Feature(f"f{i:02d}", "int64" if i % 5 == 0 else "float64", f"Feature {i}.", 1) for i in range(n_features)]
        out.append(FeatureView(name=f"bench_view_{v:02d}", entity=customer, features=feats, ttl=dt.timedelta(days=2),
                               owner="team:bench", version=1, description="Benchmark view."))
    return out

if __name__ == "__main__":
    fmt, home, n_views, n_features, entities, days = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
    settings = get_settings({**os.environ, "LAKEHOUSE_HOME": home, "LAKEHOUSE_TABLE_FORMAT": fmt})
    store = Lake(settings).store(fmt)
    start = dt.date(2024, 1, 1)
    dates = [start + dt.timedelta(days=d) for d in range(days)]
    rng = np.random.default_rng(7)
    for view in views(n_views, n_features):
        n = entities * days
        frame = pl.DataFrame({
            "customer_id": np.tile(np.arange(1, entities + 1), days),
            "feature_date": np.repeat(np.array(dates, dtype="datetime64[D]"), entities),
            **{f.name: (rng.integers(0, 100, n) if f.dtype == "int64" else rng.random(n)) for f in view.features},
        }).with_columns(pl.col("feature_date").cast(pl.Date))
        rows = conform_output(view, frame, dates)
        store.overwrite_partitions(view.ref, rows, partition_by="feature_date", values=dates,
                                   commit_metadata=view.commit_metadata())
    print(json.dumps({"rows": entities * days * n_views}))
"""

_PIT = r"""
import datetime as dt, json, os, resource, sys, time
import numpy as np, polars as pl
fmt, home, variant = sys.argv[1:4]
n_views, n_features, entities, days, rows = map(int, sys.argv[4:9])
sys.path.insert(0, sys.argv[9])
from _features_build import views
from lakehouse.features.offline import get_historical_features, read_view
from lakehouse.features.registry import FeatureRegistry
from lakehouse.settings import get_settings
from lakehouse.tables import Lake

settings = get_settings({**os.environ, "LAKEHOUSE_HOME": home, "LAKEHOUSE_TABLE_FORMAT": fmt})
lake = Lake(settings)
registry = FeatureRegistry(views(n_views, n_features))
rng = np.random.default_rng(11)
start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
entity_rows = pl.DataFrame(
    {"customer_id": rng.integers(1, entities + 1, rows), "offset": rng.integers(0, days * 86_400_000_000, rows)}
).select(
    "customer_id",
    (pl.lit(start).dt.cast_time_unit("us") + pl.col("offset").cast(pl.Duration("us"))).alias("event_timestamp"),
)
started = time.perf_counter()
if variant == "join":
    out = get_historical_features(lake, entity_rows, [v.name for v in registry], registry=registry)
    assert out.height == rows and out.width == 2 + n_views * n_features
    filled = 1 - out.get_column("bench_view_00__f01").null_count() / rows
else:  # baseline: read the same columns of the same tables
    filled = 0.0
    for view in registry:
        read_view(lake, view).collect()
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "filled": filled}))
"""


def _run(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _builder(folder: str) -> str:
    path = os.path.join(folder, "_features_build.py")
    with open(path, "w") as f:
        f.write(_BUILD)
    return path


def pit(fmt: str) -> Figure:
    """100k entity rows x 10 views, point in time, in a fresh process; baseline: scanning the views."""
    home = tempfile.mkdtemp(prefix=f"bench-features-{fmt}-")
    builder = _builder(home)
    built = subprocess.run(
        [sys.executable, builder, fmt, home, "10", "5", str(ENTITIES), str(DAYS)],
        capture_output=True,
        text=True,
        check=True,
    )
    feature_rows = json.loads(built.stdout.strip().splitlines()[-1])["rows"]
    args = ["10", "5", str(ENTITIES), str(DAYS), str(ROWS), home]
    joined = _run(_PIT, fmt, home, "join", *args)
    scanned = _run(_PIT, fmt, home, "scan", *args)
    return Figure(
        name=f"point-in-time join {ROWS:,} rows x 10 views ({fmt})",
        seconds=joined["seconds"],
        baseline_name="scan the same feature columns",
        baseline_seconds=scanned["seconds"],
        goal="< 60 s and < 4096 MB",
        details={
            "feature_rows": feature_rows,
            "join_peak_rss_mb": round(joined["peak_rss_mb"]),
            "scan_peak_rss_mb": round(scanned["peak_rss_mb"]),
            "rows_with_a_value": round(joined["filled"], 3),
        },
    )


def _latencies(fn: Callable[[], Any], calls: int) -> list[float]:
    for _ in range(min(200, calls)):
        fn()
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return sorted(out)


def _p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def online() -> list[Figure]:
    """p50/p99 of online lookups for 1 and 100 entities x 50 features, SQLite and Redis."""
    import socket

    from lakehouse.features.registry import FeatureRegistry
    from lakehouse.settings import get_settings

    home = tempfile.mkdtemp(prefix="bench-features-online-")
    builder = _builder(home)
    subprocess.run(
        [sys.executable, builder, "delta", home, "5", "10", str(ENTITIES), "1"], check=True, capture_output=True
    )
    sys.path.insert(0, home)
    from _features_build import views  # type: ignore[import-not-found]

    registry = FeatureRegistry(views(5, 10))
    base = get_settings({**os.environ, "LAKEHOUSE_HOME": home, "LAKEHOUSE_TABLE_FORMAT": "delta"})
    kinds = ["sqlite"]
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        kinds.append("redis")
    except OSError:
        print("    (Redis is not running on 127.0.0.1:6379: skipping its figures)")
    figures = []
    for kind in kinds:
        figures += _online_figures(base.with_overrides(online_store=kind), kind, registry)
    return figures


def _raw_reader(kind: str, store: Any, view: str, rng: random.Random) -> Callable[[], object]:
    """One record of one view by primary key, straight from the backend: the floor of a lookup."""
    backend: Any = store._backend
    if kind == "sqlite":
        db = backend._db()
        sql = "SELECT value FROM features WHERE view = ? AND entity_key = ?"
        return lambda: db.execute(sql, (view, str(rng.randint(1, ENTITIES)))).fetchone()
    client, prefix = backend._client, f"{backend.ns}v:{view}:"
    return lambda: client.get(f"{prefix}{rng.randint(1, ENTITIES)}")


def _online_figures(settings: Any, kind: str, registry: Any) -> list[Figure]:
    from lakehouse.features.online import clear_online_store, materialize_online, online_store

    rng = random.Random(3)
    clear_online_store(settings)
    started = time.perf_counter()
    materialize_online(settings, list(registry))
    materialize_seconds = time.perf_counter() - started
    store = online_store(settings)
    baseline = _latencies(_raw_reader(kind, store, next(iter(registry)).name, rng), 5000)
    figures = []
    for n, calls, goal in ((1, 5000, 0.002), (100, 1000, 0.020)):
        got = store.get("customer", list(range(1, n + 1)))
        assert len(got.values) == 50 and all(v[0] is not None for v in got.values.values())
        times = _latencies(lambda n=n: store.get("customer", [rng.randint(1, ENTITIES) for _ in range(n)]), calls)
        figures.append(
            Figure(
                name=f"online lookup {n} entit{'y' if n == 1 else 'ies'} x 50 features, p99 ({kind})",
                seconds=_p(times, 0.99),
                baseline_name=f"one raw {kind} record read, p99",
                baseline_seconds=_p(baseline, 0.99),
                goal=f"p99 <= {goal * 1000:.0f} ms",
                details={
                    "p50_ms": round(_p(times, 0.50) * 1000, 3),
                    "p99_ms": round(_p(times, 0.99) * 1000, 3),
                    "mean_ms": round(statistics.mean(times) * 1000, 3),
                    "raw_p50_ms": round(_p(baseline, 0.50) * 1000, 3),
                    "calls": calls,
                    "materialize_seconds": round(materialize_seconds, 2),
                    "entities": ENTITIES,
                    "load_average": round(os.getloadavg()[0], 2),
                },
            )
        )
    clear_online_store(settings)
    return figures
