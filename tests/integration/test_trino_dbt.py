"""The dbt project's `trino` target (dbt-trino) on a live Trino over the demo lakes: it builds the
marts for a partition range like the `duckdb` target built them (row for row, decimals exactly),
and a partition-range rebuild is one atomic statement: when it fails after reading, the range
keeps its previous rows; a good rerun replaces them in one commit.

dbt runs as users run it (`dbt run --project-dir dbt_project --profiles-dir dbt_project` with
LAKEHOUSE_QUERY_ENGINE=trino), every connection setting from the session's environment
(`trino_demo.env`: URL, password, CA file), its target and logs in the test's folder. The trino
target writes the marts where the lake keeps them (schema gold_marts of the format's catalog, the
same tables the duckdb target commits through the table layer): the duckdb target's marts are
read through the table layer first, the trino target's through Trino after.

One Trino server per session (tests/trino_fixtures.py); without a JDK >= 24, PostgreSQL or the
download this skips, and fails under LAKEHOUSE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import PROJECT_ROOT
from trino_fixtures import same_number, trino_rows

from lakehouse.naming import TableRef, join_uri
from lakehouse.query.trino import CATALOGS, trino_query
from lakehouse.sql import quote_literal, quote_qualified

pytestmark = [pytest.mark.xdist_group("trino"), pytest.mark.slow]

DBT = Path(sys.executable).parent / "dbt"
PROJECT = PROJECT_ROOT / "dbt_project"
MARTS = (
    "mart_sales_daily",
    "mart_sales_monthly",
    "mart_sales_growth",
    "mart_customer_value",
    "mart_product_performance",
)


def dbt(env: dict[str, str], tmp: Path, *args: str, project: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    """``dbt <args>`` on the trino target, as a user runs it; target/ and logs/ under ``tmp`` (the
    project's own target/ holds the duckdb manifest Dagster loads)."""
    full_env = {
        **os.environ,
        **env,
        "LAKEHOUSE_QUERY_ENGINE": "trino",
        "DBT_TARGET_PATH": str(tmp / "target"),
        "DBT_LOG_PATH": str(tmp / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    full_env.pop("DAGSTER_HOME", None)
    # requests lets these override a session's own CA (dbt-trino's `cert`): with them set, the
    # profile's LAKEHOUSE_TRINO_CA_FILE would be ignored and a private CA refused
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        full_env.pop(name, None)
    return subprocess.run(
        [str(DBT), *args, "--project-dir", str(project), "--profiles-dir", str(PROJECT)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def commits(settings: Any, fmt: str, schema: str, table: str) -> list[str]:
    """The table's commits, oldest first, as Trino lists them (Iceberg snapshots, Delta history)."""
    meta = f"{table}$snapshots" if fmt == "iceberg" else f"{table}$history"
    order = "committed_at" if fmt == "iceberg" else "version"
    rows = trino_rows(settings, f"select operation from {quote_qualified(schema, meta)} order by {order}", fmt)
    return [str(r["operation"]) for r in rows]


def sorted_rows(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    return sorted(frame.rows(), key=lambda row: tuple((v is None, str(v)) for v in row))


def assert_same_rows(name: str, expected: pl.DataFrame, actual: pl.DataFrame) -> None:
    """Same columns in the same order, the same rows (sorted): decimals and integers exactly,
    floating point to 1e-9."""
    assert actual.columns == expected.columns, name
    assert actual.height == expected.height > 0, name
    for want, got in zip(sorted_rows(expected), sorted_rows(actual), strict=True):
        for column, a, b in zip(expected.columns, want, got, strict=True):
            if isinstance(a, (int, float)) or hasattr(a, "as_tuple"):
                assert same_number(a, b), (name, column, want, got)
            else:
                assert a == b, (name, column, want, got)


# -- the marts, like the duckdb target's -----------------------------------------------------------


def test_the_trino_target_builds_every_mart_like_the_duckdb_target(trino_demo, tmp_path):
    from lakehouse.tables import Lake

    settings, fmt = trino_demo.settings, trino_demo.format
    lake = Lake(settings)
    refs = {name: TableRef("gold", "marts", name) for name in MARTS}
    # the duckdb target's marts (built by the demo), before the trino target replaces them
    duck = {name: lake.existing_store(ref).read(ref).collect() for name, ref in refs.items()}
    days = duck["mart_sales_daily"].get_column("order_date")
    lo, hi = str(days.min()), str(days.max())
    assert lo < hi  # the demo's days: a range of more than one partition
    before = {name: commits(settings, fmt, "gold_marts", name) for name in MARTS}

    # `run`, not `build`: the data tests passed on this target too, but comparing every row with
    # the duckdb target's marts checks more, in half the time
    done = dbt(trino_demo.env, tmp_path, "run", "--vars", json.dumps({"min_date": lo, "max_date": hi}))
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    assert {u.rsplit(".", 1)[1] for u in statuses if u.startswith("model.")} == set(MARTS)
    assert set(statuses.values()) == {"success"}, statuses

    for name in MARTS:
        table = quote_qualified("gold_marts", name)
        trino = trino_query(settings, f"select * from {table}", fmt=fmt)  # type: ignore[arg-type]
        assert_same_rows(name, duck[name], trino)
    # the marts existed: each was rebuilt (the daily one over the range) by one MERGE, one commit
    for name in MARTS:
        after = commits(settings, fmt, "gold_marts", name)
        assert after[: len(before[name])] == before[name] and len(after) == len(before[name]) + 1, name
        assert after[-1] == ("MERGE" if fmt == "delta" else "overwrite"), (name, after)


# -- a partition-range rebuild is atomic -----------------------------------------------------------

PROBE_MODEL = """
{{ config(
    materialized='lakehouse',
    schema=var('probe_schema'),
    partition_by='order_date',
    unique_key=['order_date', 'store_sk', 'channel'],
) }}
-- sales per day, store and channel from the lake's fact table; var poison_order divides that
-- order's lines by zero (the statement fails while reading), var scale multiplies the values,
-- var drop_channel leaves a channel out (its rows of the range must disappear)
select
    order_date,
    store_sk,
    channel,
    cast(count(*) * {{ var('scale', 1) | int }} as bigint) as order_lines,
    cast(sum(net_amount * {{ var('scale', 1) | int }}
             / case when cast(order_id as varchar) = {{ lakehouse_literal(var('poison_order', '')) }} then 0 else 1 end)
         as decimal(18, 2)) as revenue
from {{ target.database }}.gold_retail.fct_sales
where {{ partition_filter('order_date') }}
    and channel <> {{ lakehouse_literal(var('drop_channel', '')) }}
group by order_date, store_sk, channel
"""


@pytest.fixture
def probe_project(trino_demo, tmp_path):
    """A dbt project of one partitioned model on the lakehouse materialisation (the project's own
    macros), writing into a schema of its own, dropped afterwards."""
    project = tmp_path / "probe"
    (project / "models").mkdir(parents=True)
    shutil.copytree(PROJECT / "macros", project / "macros")
    (project / "dbt_project.yml").write_text(
        "name: lakehouse_probe\nversion: '1.0'\nconfig-version: 2\nprofile: lakehouse\n"
        "model-paths: [models]\nmacro-paths: [macros]\n"
        "vars: {min_date: null, max_date: null, probe_schema: null}\n"
        "flags: {send_anonymous_usage_stats: false}\n"
    )
    (project / "models" / "probe_daily.sql").write_text(PROBE_MODEL)
    settings, fmt = trino_demo.settings, trino_demo.format
    schema = f"scratch_dbt_{uuid.uuid4().hex[:8]}"
    location = join_uri(settings.warehouse.rsplit("/", 1)[0], f"dbt-probe/{schema}")  # beside the warehouse
    catalog = CATALOGS[fmt]
    trino_query(
        settings,
        f"create schema {quote_qualified(catalog, schema)} with (location = {quote_literal(location)})",
        fmt=fmt,  # type: ignore[arg-type]
    )
    yield project, schema
    trino_query(settings, f"drop table if exists {quote_qualified(catalog, schema, 'probe_daily')}", fmt=fmt)  # type: ignore[arg-type]
    trino_query(settings, f"drop schema if exists {quote_qualified(catalog, schema)}", fmt=fmt)  # type: ignore[arg-type]


def test_a_failed_partition_rebuild_keeps_the_range_and_a_good_rerun_replaces_it(trino_demo, probe_project, tmp_path):
    from lakehouse.tables import Lake

    project, schema = probe_project
    settings, fmt = trino_demo.settings, trino_demo.format
    table = quote_qualified(schema, "probe_daily")
    facts = Lake(settings).existing_store(TableRef("gold", "retail", "fct_sales"))
    lines = facts.read(TableRef("gold", "retail", "fct_sales")).collect()
    first_day, last_day = str(lines.get_column("order_date").min()), str(lines.get_column("order_date").max())
    assert first_day < last_day
    on_last_day = lines.filter(pl.col("order_date").cast(pl.Utf8) == last_day)
    poison = str(on_last_day.get_column("order_id")[0])
    dropped = str(on_last_day.get_column("channel").mode().sort()[0])

    def run(**variables: Any) -> subprocess.CompletedProcess[str]:
        return dbt(
            trino_demo.env,
            tmp_path,
            "run",
            "--vars",
            json.dumps({"probe_schema": schema, **variables}),
            project=project,
        )

    def read() -> list[tuple[Any, ...]]:
        frame = trino_query(settings, f"select * from {table}", fmt=fmt)  # type: ignore[arg-type]
        return sorted_rows(frame)

    # a first run: the table does not exist, so it is created from every day
    done = run()
    assert done.returncode == 0, done.stdout[-5000:]
    original = read()
    assert {str(r[0]) for r in original} == {first_day, last_day}
    history = commits(settings, fmt, schema, "probe_daily")

    # the rebuild of the last day fails while reading its lines (a division by zero on one
    # order's line): nothing of the range may be lost, nothing committed
    done = run(min_date=last_day, max_date=last_day, scale=2, poison_order=poison)
    assert done.returncode != 0
    assert "Division by zero" in done.stdout, done.stdout[-5000:]
    assert read() == original
    assert commits(settings, fmt, schema, "probe_daily") == history

    # a good rerun replaces the range in one commit: values doubled, the dropped channel's rows
    # of that day gone, the other day untouched
    done = run(min_date=last_day, max_date=last_day, scale=2, drop_channel=dropped)
    assert done.returncode == 0, done.stdout[-5000:]
    rebuilt = read()
    expected = [r for r in original if str(r[0]) != last_day] + [
        (day, store, channel, lines_ * 2, revenue * 2)
        for day, store, channel, lines_, revenue in original
        if str(day) == last_day and channel != dropped
    ]
    assert rebuilt == sorted(expected, key=lambda row: tuple((v is None, str(v)) for v in row))
    assert any(str(r[0]) == last_day and r[2] == dropped for r in original)  # there was something to drop
    after = commits(settings, fmt, schema, "probe_daily")
    assert after[: len(history)] == history and len(after) == len(history) + 1
