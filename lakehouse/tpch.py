"""TPC-H through the lake, checked against the official answers.

``run_tpch(sf, fmt)``: DuckDB's ``dbgen`` writes the eight tables, they land as '|'-separated
files, the ``tpch`` domain loads them through the project's readers, bronze typing, checks and
silver layer into Delta or Iceberg tables, and the 22 queries run over silver through the same
DuckDB views as ``lakehouse query``. Every value is compared with ``tpch_answers()`` (decimals
exactly, floats to a relative 1e-6), and each query is timed against the same query on native
DuckDB tables generated from the same data, in the same run.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    import dagster as dg

from lakehouse.naming import join_uri
from lakehouse.settings import Settings, TableFormat, get_settings
from lakehouse.storage import write_bytes

__all__ = ["TABLES", "QueryOutcome", "TpchReport", "compare_answer", "equal_to_its_scale", "for_trino", "run_tpch"]

TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")
REL_TOLERANCE = 1e-6


@dataclass
class QueryOutcome:
    query: int
    rows: int
    correct: bool
    lake_seconds: float
    native_seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.lake_seconds / self.native_seconds if self.native_seconds else float("inf")


@dataclass
class TpchReport:
    scale_factor: float
    table_format: str
    generate_seconds: float
    load_seconds: float
    rows_loaded: dict[str, int]
    checks_failed: list[str]
    queries: list[QueryOutcome]

    @property
    def correct(self) -> int:
        return sum(q.correct for q in self.queries)

    @property
    def passed(self) -> bool:
        return self.correct == len(self.queries) == 22 and not self.checks_failed


def _equal(expected: str, actual: Any) -> bool:
    if actual is None:
        return expected in ("", "NULL")
    if isinstance(actual, bool):
        return expected.lower() == str(actual).lower()
    if isinstance(actual, decimal.Decimal):
        try:
            return decimal.Decimal(expected) == actual  # exact
        except decimal.InvalidOperation:
            return False
    if isinstance(actual, float):
        try:
            e = float(expected)
        except ValueError:
            return False
        return abs(e - actual) <= REL_TOLERANCE * max(abs(e), abs(actual), 1e-12)
    if isinstance(actual, int):
        return expected == str(actual)
    if isinstance(actual, (dt.date, dt.datetime)):
        return expected == actual.isoformat()
    return expected == str(actual)


def equal_to_its_scale(expected: str, actual: Any) -> bool:
    """Like the exact comparison, but a decimal equals an answer with more digits when it is that
    answer rounded to the decimal's scale (engines such as Spark keep ``avg`` of a decimal a
    decimal with a fixed scale, where DuckDB returns a double)."""
    if isinstance(actual, decimal.Decimal) and not _equal(expected, actual):
        try:
            exponent = actual.as_tuple().exponent
            assert isinstance(exponent, int)
            return abs(decimal.Decimal(expected) - actual) <= decimal.Decimal(10) ** exponent / 2
        except decimal.InvalidOperation:
            return False
    return _equal(expected, actual)


def compare_answer(expected: str, header: Sequence[str], rows: Sequence[Sequence[Any]], equal: Any = None) -> list[str]:
    """Mismatches between a ``tpch_answers()`` text and a result (empty list: identical).
    ``equal(expected_text, value)`` compares one value (default: decimals exact, floats to 1e-6)."""
    equal = equal or _equal
    # one trailing newline ends the text; an empty line before it is a row holding NULL (Q17 at SF 0.01)
    lines = expected.removesuffix("\n").split("\n")
    want_header, want_rows = lines[0].split("|"), [line.split("|") for line in lines[1:]]
    problems = []
    if len(want_header) != len(header):  # names differ in places (the answers say "sum" for sum(l_quantity))
        problems.append(f"{len(header)} columns {list(header)} != {len(want_header)} {want_header}")
    if len(want_rows) != len(rows):
        problems.append(f"{len(rows)} rows != {len(want_rows)}")
    for i, (want, got) in enumerate(zip(want_rows, rows, strict=False)):
        for j, (e, a) in enumerate(zip(want, got, strict=False)):
            if not equal(e, a):
                problems.append(f"row {i + 1} column {want_header[j] if j < len(want_header) else j}: {a!r} != {e}")
                if len(problems) > 5:
                    return problems
    return problems


def for_trino(sql: str, schema: str) -> str:
    """A TPC-H query (DuckDB's text) made ready for :func:`lakehouse.query.trino.to_trino` over
    ``schema``, e.g. ``silver_tpch``: every table it reads qualified with the schema (its CTEs
    left as they are), and a GROUP BY on a select alias spelled out as the aliased expression
    (DuckDB resolves the alias, Trino only the input's columns: Q15). Still DuckDB's dialect."""
    import sqlglot
    from sqlglot.optimizer.qualify_tables import qualify_tables

    tree = qualify_tables(sqlglot.parse_one(sql, read="duckdb"), db=schema)
    for select in tree.find_all(sqlglot.exp.Select):
        group = select.args.get("group")
        if group is None:
            continue
        aliases = {p.alias: p.this for p in select.expressions if isinstance(p, sqlglot.exp.Alias)}
        for key in list(group.expressions):
            if isinstance(key, sqlglot.exp.Column) and not key.table and key.name in aliases:
                key.replace(aliases[key.name].copy())
    return tree.sql(dialect="duckdb")


def _native(sf: float) -> duckdb.DuckDBPyConnection:
    from lakehouse.query.duckdb import extension_path
    from lakehouse.sql import quote_literal

    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    con.execute(f"LOAD {quote_literal(str(extension_path('tpch')))}")
    con.execute("CALL dbgen(sf = ?)", [sf])
    return con


def _land(con: duckdb.DuckDBPyConnection, settings: Settings, day: str) -> dict[str, int]:
    from lakehouse.sql import quote_ident, quote_literal

    folder = Path(tempfile.mkdtemp(prefix="tpch-land-"))
    counts = {}
    try:
        for table in TABLES:
            path = folder / f"{table}.csv"
            con.execute(f"COPY {quote_ident(table)} TO {quote_literal(str(path))} (HEADER, DELIMITER '|')")
            write_bytes(settings, join_uri(settings.landing, f"tpch/{table}/{day}/{table}.csv"), path.read_bytes())
            counts[table] = int(_scalar(con, f"SELECT count(*) FROM {quote_ident(table)}", []))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return counts


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> str:
    row = con.execute(sql, list(params)).fetchone()
    assert row is not None
    return str(row[0])


def _timed(con: duckdb.DuckDBPyConnection, sql: str, repeat: int) -> tuple[list[str], list[tuple[Any, ...]], float]:
    times, rows, header = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        cursor = con.execute(sql)
        rows = cursor.fetchall()
        times.append(time.perf_counter() - started)
        header = [d[0] for d in cursor.description or []]
    return header, rows, statistics.median(times)


def run_tpch(
    sf: float,
    fmt: TableFormat,
    *,
    home: Path,
    definitions: Callable[[], dg.Definitions],
    repeat: int = 1,
    progress: Any = None,
) -> TpchReport:
    """Generate, land, load through the lake, query and compare (see the module docstring).

    ``home`` becomes the lake's state folder for the run (it is emptied first). ``definitions``
    builds the code location (the caller's ``lakehouse.definitions.build_definitions``; the
    platform library does not import it) once the run's environment is set: its ``tpch_load``
    job loads the tables.
    """
    import dagster as dg

    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ["LAKEHOUSE_HOME"] = str(home)
    os.environ["LAKEHOUSE_TABLE_FORMAT"] = fmt
    settings = get_settings()
    say = progress or (lambda message: None)

    started = time.perf_counter()
    native = _native(sf)
    day = settings.start_date.isoformat()
    counts = _land(native, settings, day)
    generated = time.perf_counter() - started
    say(f"generated and landed SF {sf}: {sum(counts.values()):,} rows in {generated:.1f}s")

    from lakehouse.query.duckdb import Query

    started = time.perf_counter()
    job = definitions().resolve_job_def("tpch_load")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = job.execute_in_process(
        partition_key=day, instance=dg.DagsterInstance.ephemeral(), run_config=quiet, raise_on_error=False
    )
    loaded = time.perf_counter() - started
    failed = [
        f"{e.asset_key.to_user_string()}:{e.check_name}" for e in result.get_asset_check_evaluations() if not e.passed
    ]
    if not result.success:
        failed.append("the tpch_load run failed")
    say(f"loaded through bronze and silver ({fmt}) in {loaded:.1f}s")

    outcomes = []
    with Query(settings) as lake:
        lake.con.execute("USE silver_tpch")
        for number in range(1, 23):
            sql = _scalar(native, "SELECT query FROM tpch_queries() WHERE query_nr = ?", [number])
            answer = _scalar(
                native, "SELECT answer FROM tpch_answers() WHERE scale_factor = ? AND query_nr = ?", [sf, number]
            )
            header, rows, lake_seconds = _timed(lake.con, sql, repeat)
            _, _, native_seconds = _timed(native, sql, repeat)
            problems = compare_answer(answer, header, rows)
            outcomes.append(QueryOutcome(number, len(rows), not problems, lake_seconds, native_seconds, problems))
            say(
                f"Q{number:02d} {'ok' if not problems else 'WRONG'} {lake_seconds * 1000:.0f} ms (native {native_seconds * 1000:.0f} ms)"
            )
    native.close()
    return TpchReport(sf, fmt, generated, loaded, counts, failed, outcomes)
