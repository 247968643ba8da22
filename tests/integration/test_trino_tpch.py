"""TPC-H SF 0.1 through the lake and Trino: dbgen's tables land as files and load through the
project's readers, bronze and silver into each table format on the session's S3 lake (`lakehouse
bench tpch`, which also checks DuckDB's 22 answers over the same tables), Delta's tables are
registered in Trino, and the 22 queries (DuckDB's tpch extension text, through `for_trino` and
`to_trino`) run on the session's Trino: 22/22 equal the official answers per format.

Values compare as for DuckDB (decimals exactly, floats to 1e-6), except Q1's averages: Trino keeps
``avg`` of a decimal a decimal of the column's scale where the answers were printed from doubles,
so those must equal the answer rounded to that scale (``equal_to_its_scale``, as for Spark).

The load runs once per format per session, after the demos (it shares their lake: a lake is
one warehouse and, for Iceberg, one catalog, which Trino serves). One Trino server per session
(tests/trino_fixtures.py); without a JDK >= 24, PostgreSQL or the download this skips, and fails
under LAKEHOUSE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import FORMATS, LAKEHOUSE_BIN

from lakehouse.query.trino import trino_query
from lakehouse.settings import Settings, get_settings
from lakehouse.tpch import compare_answer, equal_to_its_scale, for_trino

pytestmark = [pytest.mark.xdist_group("trino"), pytest.mark.slow]

SF = 0.1
#: queries whose answers Trino gives as decimals rounded to the column's scale (avg of a decimal)
ROUNDED = {1}
SCHEMA = "silver_tpch"  # the tpch domain's silver tables (assets/tpch), where `lakehouse bench tpch` queries


@dataclass
class TpchLake:
    format: str
    env: dict[str, str]
    report: dict[str, Any]
    seconds: float

    @property
    def settings(self) -> Settings:
        return get_settings({**os.environ, **self.env})


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    full_env.pop("DAGSTER_HOME", None)
    return subprocess.run([str(LAKEHOUSE_BIN), *args], env=full_env, capture_output=True, text=True, timeout=900)


class TpchLakes:
    """SF 0.1 loaded into the demo's lake of a format on first use (once per session), Delta's
    tables registered in Trino."""

    def __init__(self, trino_session: Any, root: Path) -> None:
        self.session, self.root = trino_session, root
        self.loaded: dict[str, TpchLake] = {}

    def __getitem__(self, fmt: str) -> TpchLake:
        if fmt not in self.loaded:
            home = self.root / fmt
            home.mkdir()
            env = {**self.session.lake_env(fmt), "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLE_FORMAT": fmt}
            started = time.monotonic()
            done = _run(env, "bench", "tpch", "--sf", str(SF), "--format", fmt, "--json")
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            report = json.loads(done.stdout)
            if fmt == "delta":  # every Delta table of the lake, as `lakehouse trino register` always does
                registered = _run(env, "trino", "register", "--execute")
                assert registered.returncode == 0, registered.stderr[-3000:]
            self.loaded[fmt] = TpchLake(format=fmt, env=env, report=report, seconds=time.monotonic() - started)
        return self.loaded[fmt]


@pytest.fixture(scope="session")
def tpch_lakes(trino_session, trino_demos, tmp_path_factory) -> TpchLakes:
    """The loads share the demos' lakes, so they wait for the demos (one heavy process at a time)."""
    return TpchLakes(trino_session, tmp_path_factory.mktemp("trino-tpch"))


@pytest.fixture(scope="session")
def tpch_queries(trino_session) -> dict[int, tuple[str, str]]:
    """Query number -> (DuckDB's query text with its tables in ``silver_tpch``, official answer)."""
    from lakehouse.query.duckdb import connect

    con = connect(get_settings({**os.environ, **trino_session.env}), extensions=("tpch",))
    try:
        queries = dict(con.execute("SELECT query_nr, query FROM tpch_queries()").fetchall())
        answers = dict(
            con.execute("SELECT query_nr, answer FROM tpch_answers() WHERE scale_factor = ?", [SF]).fetchall()
        )
    finally:
        con.close()
    assert sorted(queries) == sorted(answers) == list(range(1, 23))
    return {n: (for_trino(queries[n], SCHEMA), answers[n]) for n in queries}


@pytest.mark.parametrize("fmt", FORMATS)
def test_tpch_sf_0_1_through_the_lake_answers_22_of_22_on_trino(tpch_lakes, tpch_queries, fmt):
    lake = tpch_lakes[fmt]
    # the load itself: every row through bronze and silver, its checks green, DuckDB 22/22
    assert (lake.report["correct"], lake.report["checks_failed"]) == (22, [])
    assert lake.report["rows_loaded"]["lineitem"] == 600_572
    settings = lake.settings
    wrong = {}
    for number, (sql, answer) in sorted(tpch_queries.items()):
        frame = trino_query(settings, sql, fmt=fmt)  # type: ignore[arg-type]
        problems = compare_answer(
            answer, frame.columns, frame.rows(), equal_to_its_scale if number in ROUNDED else None
        )
        if problems:
            wrong[number] = problems
    assert wrong == {}
    print(f"tpch sf {SF} {fmt}: loaded and checked in {lake.seconds:.0f} s, 22/22 on Trino")
