"""A real Trino (476, from Maven Central, deploy/local/trino.sh) over real lakes: a 2-day demo per
table format on the S3 server (SeaweedFS), Iceberg on a JDBC catalog in PostgreSQL, Delta in a
file metastore. Trino must answer like DuckDB over the same versions, `lakehouse query --engine
trino` must run the shipped analytic queries, and commits must be visible to Trino at once.

One Trino server per session (tests/trinoserver.py, fixtures in tests/trino_fixtures.py), started
while the demos build; the tests share an xdist group so only one worker pays for it. Without a JDK >= 24, PostgreSQL or the
download this skips, and fails under LAKEHOUSE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from conftest import PROJECT_ROOT
from trino_fixtures import same_number, trino_rows

from lakehouse.naming import TableRef
from lakehouse.query.duckdb import Query
from lakehouse.query.trino import CATALOGS, register_tables, trino_query
from lakehouse.settings import get_settings
from lakehouse.sql import quote_ident, quote_qualified

pytestmark = [pytest.mark.xdist_group("trino"), pytest.mark.slow]

SHIPPED_QUERIES = sorted(PROJECT_ROOT.glob("assets/retail/queries/*.sql"))


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
