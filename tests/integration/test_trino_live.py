"""A real Trino (476, from Maven Central, deploy/local/trino.sh) over real lakes: a 2-day demo per
table format on the S3 server (SeaweedFS), Iceberg on a JDBC catalog in PostgreSQL, Delta in a
file metastore. Trino must answer like DuckDB over the same versions, `lakehouse query --engine
trino` must run the shipped analytic queries, and commits must be visible to Trino at once.

One Trino server per session (tests/trinoserver.py), started while the demos build; the tests
share an xdist group so only one worker pays for it. Without a JDK >= 24, PostgreSQL or the
download this skips, and fails under LAKEHOUSE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import FORMATS, LAKEHOUSE_BIN, PROJECT_ROOT, port_open, require

from lakehouse.naming import TableRef
from lakehouse.query.duckdb import Query
from lakehouse.query.trino import CATALOGS, register_tables, trino_query, write_catalogs
from lakehouse.settings import get_settings
from lakehouse.sql import quote_ident, quote_qualified

pytestmark = [pytest.mark.xdist_group("trino"), pytest.mark.slow]

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
DEMO_DAYS = 2
SHIPPED_QUERIES = sorted(PROJECT_ROOT.glob("assets/retail/queries/*.sql"))


@dataclass
class TrinoSession:
    """The server, and the lake settings (S3 prefix, Iceberg catalog database) its catalogs serve."""

    server: Any
    s3: Any
    prefix: str
    env: dict[str, str]
    database: str

    def lake_env(self, fmt: str) -> dict[str, str]:
        """Settings of a lake of its own on the S3 server. Only the Iceberg lake uses the catalog
        database Trino reads: the lake guards each name in its catalog against the other format,
        so a Delta lake sharing it would collide with the Iceberg lake's tables."""
        env = {**self.env, **self.s3.env(f"{self.prefix}-{fmt}")}
        if fmt != "iceberg":
            del env["LAKEHOUSE_CATALOG_URI"]
        return env


@pytest.fixture(scope="session")
def trino_session(s3_server, tmp_path_factory):
    """Trino over this session's S3 server and a fresh PostgreSQL database, launched (not waited
    for: the demos build meanwhile)."""
    import psycopg2
    import trinoserver

    require(trinoserver.java_home() is not None, "no JDK >= 24 for Trino 476 (Temurin 25 expected in /usr/lib/jvm)")
    require(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    try:
        trinoserver.install()
    except Exception as exc:  # no network to Maven Central, no disk: a missing service, not a bug
        require(False, f"Trino 476 could not be installed: {exc}")
    database = f"lakehouse_trino_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {quote_ident(database)}")
    prefix = f"trino-{uuid.uuid4().hex[:8]}"
    env = {**s3_server.env(prefix), "LAKEHOUSE_CATALOG_URI": f"{PG}/{database}"}
    catalog_dir = tmp_path_factory.mktemp("trino-catalog")
    catalogs = write_catalogs(get_settings({**env, "LAKEHOUSE_HOME": str(catalog_dir)}), catalog_dir)
    server = trinoserver.start(catalog_dir, catalogs.env)
    env["LAKEHOUSE_TRINO_URL"] = server.url
    yield TrinoSession(server=server, s3=s3_server, prefix=prefix, env=env, database=database)
    server.stop()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)")
    admin.close()


@dataclass
class TrinoDemo:
    home: Path
    format: str
    env: dict[str, str]
    seconds: float

    @property
    def settings(self) -> Any:
        return get_settings({**os.environ, **self.env})

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **self.env}
        full_env.pop("DAGSTER_HOME", None)
        return subprocess.run([str(LAKEHOUSE_BIN), *args], env=full_env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def trino_demos(trino_session, tmp_path_factory) -> dict[str, TrinoDemo]:
    """`lakehouse demo --days 2` once per format on S3, both at once while Trino starts; Delta's
    tables registered with `lakehouse trino register --execute`."""
    demos: dict[str, TrinoDemo] = {}
    running = []
    for fmt in FORMATS:
        home = tmp_path_factory.mktemp(f"trino-demo-{fmt}")
        env = {**trino_session.lake_env(fmt), "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLE_FORMAT": fmt}
        demo = TrinoDemo(home=home, format=fmt, env=env, seconds=0.0)
        full_env = {**os.environ, **env}
        full_env.pop("DAGSTER_HOME", None)
        with open(home / "demo.json", "w") as out, open(home / "demo.err", "w") as err:  # no pipe to fill
            process = subprocess.Popen(
                [str(LAKEHOUSE_BIN), "demo", "--days", str(DEMO_DAYS), "--json"], env=full_env, stdout=out, stderr=err
            )
        running.append((demo, process, time.monotonic()))
    for demo, process, t0 in running:
        process.wait(timeout=900)
        demo.seconds = time.monotonic() - t0
        assert process.returncode in (0, 1), (demo.home / "demo.err").read_text()[-4000:]
        summary = json.loads((demo.home / "demo.json").read_text())
        assert summary["failed_runs"] == [] and summary["daily_runs"] == DEMO_DAYS, summary["failed_runs"]
        demos[demo.format] = demo
    trino_session.server.wait()
    done = demos["delta"].cli("trino", "register", "--execute")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("registered "), done.stdout
    return demos


@pytest.fixture(params=FORMATS)
def trino_demo(request, trino_demos) -> TrinoDemo:
    return trino_demos[str(request.param)]


def trino_rows(settings: Any, sql: str, fmt: str) -> list[dict[str, Any]]:
    return trino_query(settings, sql, fmt=fmt).to_dicts()  # type: ignore[arg-type]


def same_number(a: Any, b: Any) -> bool:
    """Integers and decimals exactly; floating point (summed in another order) to 1e-9."""
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return Decimal(str(a)) == Decimal(str(b))


# -- the server ------------------------------------------------------------------------------------


def test_trino_runs_on_loopback_and_serves_both_lake_catalogs(trino_session, trino_demos):
    # trino_demos: the demos build while the server starts (the first test must not wait alone)
    server = trino_session.server.wait()
    settings = get_settings({**os.environ, **trino_session.env})
    catalogs = trino_query(settings, "select catalog_name from system.metadata.catalogs order by 1")
    assert {"iceberg", "delta_lake"} <= set(catalogs["catalog_name"])
    nodes = trino_query(settings, "select http_uri, node_version, coordinator from system.runtime.nodes")
    assert nodes.to_dicts() == [
        {"http_uri": f"http://127.0.0.1:{server.port}", "node_version": "476", "coordinator": True}
    ]
    # the catalogs name the S3 secret as ${ENV:...}; Trino logs its configuration, redacted
    log = server.output(chars=10**8)
    assert "s3.aws-secret-key" in log and trino_session.s3.secret_key not in log
    seconds = {fmt: round(demo.seconds) for fmt, demo in trino_demos.items()}
    print(f"trino: answering {server.start_seconds:.1f} s after launch (polled once the demos were built: {seconds} s)")


# -- (a) every silver and gold table answers like DuckDB ------------------------------------------


def test_every_silver_and_gold_table_answers_like_duckdb(trino_demo):
    settings = trino_demo.settings
    from lakehouse.tables import Lake

    lake = Lake(settings)
    infos = [i for i in lake.tables() if i.ref.layer in ("silver", "gold") and i.format == trino_demo.format]
    assert len(infos) >= 8, [str(i.ref) for i in infos]
    versions = {i.ref: lake.store(i.format).version(i.ref) for i in infos}
    mismatches = []
    with Query(settings) as q:
        for info in infos:
            ref = info.ref
            table = quote_qualified(ref.namespace, ref.name)
            schema = q.sql(f"select * from {table} limit 0").schema
            # integers summed as DECIMAL(38, 0): hashed surrogate keys overflow Trino's BIGINT sum
            # (DuckDB widens to HUGEINT by itself)
            sums = "".join(
                f", sum({_summand(c, dtype)}) as {quote_ident('sum_' + c)}"
                for c, dtype in schema.items()
                if dtype.is_numeric()
            )
            sql = f"select count(*) as n{sums} from {table}"
            duck = q.sql(sql).to_dicts()[0]
            trino = trino_rows(settings, sql, trino_demo.format)[0]
            bad = {k: (duck[k], trino.get(k)) for k in duck if not same_number(duck[k], trino.get(k))}
            if bad or (duck["n"] == 0 and ref.layer == "gold"):
                mismatches.append((str(ref), bad or "empty"))
    assert mismatches == []
    # the same versions: nothing committed while the two engines read
    assert {i.ref: lake.store(i.format).version(i.ref) for i in infos} == versions


def _summand(column: str, dtype: pl.DataType) -> str:
    return f"cast({quote_ident(column)} as decimal(38, 0))" if dtype.is_integer() else quote_ident(column)


# -- (b) `lakehouse query --engine trino` end to end -----------------------------------------------


@pytest.fixture(scope="session")
def duckdb_answers() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """DuckDB's answers to the shipped queries, by format then file name (one session per lake)."""
    return {}


@pytest.mark.parametrize("path", SHIPPED_QUERIES, ids=lambda p: p.stem)
def test_cli_query_with_trino_runs_the_shipped_queries_like_duckdb(trino_demo, duckdb_answers, path):
    done = trino_demo.cli("query", "--engine", "trino", "--json", "--file", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    trino = json.loads(done.stdout)
    if trino_demo.format not in duckdb_answers:
        with Query(trino_demo.settings) as q:
            duckdb_answers[trino_demo.format] = {
                p.name: json.loads(json.dumps(q.sql(p.read_text()).to_dicts(), default=str)) for p in SHIPPED_QUERIES
            }
    duck = duckdb_answers[trino_demo.format][path.name]
    assert len(trino) == len(duck) > 0
    assert [list(r) for r in trino] == [list(r) for r in duck]  # same columns, same order
    for t_row, d_row in zip(trino, duck, strict=True):
        for column, d_value in d_row.items():
            t_value = t_row[column]
            if isinstance(d_value, str) and not _is_number(d_value):
                assert t_value == d_value, (column, t_row, d_row)
            else:
                assert _close(t_value, d_value), (column, t_row, d_row)


def _is_number(value: str) -> bool:
    try:
        Decimal(value)
    except ArithmeticError:
        return False
    return True


def _close(a: Any, b: Any) -> bool:
    """Equal, or rounded percentages that differ in the last printed digit only (Trino divides
    decimals, DuckDB doubles)."""
    if a is None or b is None:
        return a is b
    x, y = Decimal(str(a)), Decimal(str(b))
    if x == y:
        return True
    exponent = min(x.normalize().as_tuple().exponent, y.normalize().as_tuple().exponent)  # type: ignore[operator]
    return abs(x - y) <= Decimal(1).scaleb(int(exponent))


# -- (c) registration and freshness ----------------------------------------------------------------


def test_register_made_every_delta_table_visible_and_runs_again_harmlessly(trino_demos):
    demo = trino_demos["delta"]
    from lakehouse.tables import Lake

    expected = {(i.ref.namespace, i.ref.name) for i in Lake(demo.settings).tables() if i.format == "delta"}
    listed = trino_query(
        demo.settings,
        "select table_schema, table_name from information_schema.tables where table_schema <> 'information_schema'",
        fmt="delta",
    )
    assert set(listed.iter_rows()) == expected
    again = demo.cli("trino", "register", "--execute")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip() == f"registered 0 of {len(expected)} Delta tables in delta_lake ({len(expected)} were)"


def test_commits_are_visible_to_trino_at_once(trino_demo):
    from lakehouse.tables import Lake

    settings = trino_demo.settings
    store = Lake(settings).store(trino_demo.format)
    ref = TableRef("silver", "trino_live", "events")
    store.overwrite(ref, pl.DataFrame({"id": [1, 2, 3], "amount": [10, 20, 30]}))
    if trino_demo.format == "delta":
        assert register_tables(settings, [ref]) == [ref]
    table = f"{CATALOGS[trino_demo.format]}.{quote_qualified(ref.namespace, ref.name)}"
    sql = f"select count(*) as n, sum(amount) as total from {table}"
    assert trino_rows(settings, sql, trino_demo.format) == [{"n": 3, "total": 60}]
    store.append(ref, pl.DataFrame({"id": [4, 5], "amount": [40, 50]}))
    assert trino_rows(settings, sql, trino_demo.format) == [{"n": 5, "total": 150}]
    store.overwrite(ref, pl.DataFrame({"id": [9], "amount": [7]}))
    assert trino_rows(settings, sql, trino_demo.format) == [{"n": 1, "total": 7}]
