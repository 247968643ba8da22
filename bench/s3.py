"""The demo slice on S3 (SeaweedFS on 127.0.0.1) against the same slice on the local folder:
write = simulate + materialise N days; read = scan every table of the lake once.

Each side runs in a fresh process (`python -m bench.s3 worker`), so caches and imports are equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import Figure

TESTS = Path(__file__).resolve().parent.parent / "tests"


def _worker(days: int) -> None:
    from lakehouse.cli import run_daily, simulated_services
    from lakehouse.instance import prepare_dagster_home
    from lakehouse.partitions import partition_dates
    from lakehouse.settings import get_settings
    from lakehouse.simulator import SimulationConfig, generate
    from lakehouse.tables import Lake

    settings = get_settings()
    prepare_dagster_home(settings)  # the run storage under this lake's own state folder, as the CLI does
    started = time.perf_counter()
    generate(settings, SimulationConfig(start=settings.start_date, days=days, seed=7))
    with simulated_services(settings):
        runs = run_daily(list(partition_dates(settings.start_date, days)), show_progress=False)
    write = time.perf_counter() - started
    assert all(r["success"] for r in runs), [r["errors"] for r in runs]
    lake = Lake(settings)
    started = time.perf_counter()
    rows = sum(lake.store(i.format).read(i.ref).collect().height for i in lake.tables())
    read = time.perf_counter() - started
    print(json.dumps({"write": write, "read": read, "rows": rows}))


def _commits_worker(commits: int) -> None:
    import polars as pl

    from lakehouse.naming import TableRef
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    store = Lake(get_settings()).store()
    ref = TableRef("bronze", "bench", "commits")
    store.append(ref, pl.DataFrame({"n": [-1]}))  # created once; each timed commit is a small append
    latencies = []
    for i in range(commits):
        started = time.perf_counter()
        store.append(ref, pl.DataFrame({"n": [i]}))
        latencies.append(time.perf_counter() - started)
    assert store.read(ref).collect().height == commits + 1
    latencies.sort()
    print(json.dumps({"median": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * 0.99) - 1]}))


def _run(env: dict[str, str], days: int, mode: str = "worker") -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.s3", mode, str(days)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def slice_on_s3(fmt: str, days: int = 3) -> list[Figure]:
    sys.path.insert(0, str(TESTS))
    import s3server

    server = s3server.start()
    try:
        base = {"LAKEHOUSE_TABLE_FORMAT": fmt, "LAKEHOUSE_HOME": tempfile.mkdtemp(prefix="bench-local-")}
        local = _run(base, days)
        remote_env = {**base, "LAKEHOUSE_HOME": tempfile.mkdtemp(prefix="bench-s3-")}
        remote_env.update(server.env(f"bench-{uuid.uuid4().hex[:8]}"))
        remote = _run(remote_env, days)
    finally:
        server.stop()
    assert remote["rows"] == local["rows"], (remote["rows"], local["rows"])
    return [
        Figure(
            name=f"{fmt}: {days}-day slice written to S3 (SeaweedFS)",
            seconds=remote["write"],
            baseline_name="the same slice on the local folder",
            baseline_seconds=local["write"],
            goal="report",
            details={"rows": local["rows"]},
        ),
        Figure(
            name=f"{fmt}: every table of the slice read from S3",
            seconds=remote["read"],
            baseline_name="read from the local folder",
            baseline_seconds=local["read"],
            goal="report",
        ),
    ]


def commit_latency(fmt: str, commits: int = 100) -> Figure:
    """Median (and p99) latency of one small append commit on S3, against the local folder."""
    sys.path.insert(0, str(TESTS))
    import s3server

    server = s3server.start()
    try:
        base = {"LAKEHOUSE_TABLE_FORMAT": fmt, "LAKEHOUSE_HOME": tempfile.mkdtemp(prefix="bench-local-")}
        local = _run(base, commits, "commits")
        remote_env = {**base, "LAKEHOUSE_HOME": tempfile.mkdtemp(prefix="bench-s3-")}
        remote_env.update(server.env(f"bench-{uuid.uuid4().hex[:8]}"))
        remote = _run(remote_env, commits, "commits")
    finally:
        server.stop()
    return Figure(
        name=f"{fmt}: median commit of a one-row append on S3 ({commits} commits)",
        seconds=remote["median"],
        baseline_name="the same commits on the local folder",
        baseline_seconds=local["median"],
        goal="report",
        details={"s3_p99_ms": round(remote["p99"] * 1000, 1), "local_p99_ms": round(local["p99"] * 1000, 1)},
    )


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(int(sys.argv[2]))
if __name__ == "__main__" and sys.argv[1:2] == ["commits"]:
    _commits_worker(int(sys.argv[2]))
