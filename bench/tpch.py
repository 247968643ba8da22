"""TPC-H over the lake against native DuckDB tables generated from the same data, same run.
Goal: over Delta <= 1.3x native. Every answer must also be correct (the run fails otherwise)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from bench import Figure, scoped_environ

SF = float(os.environ.get("BENCH_TPCH_SF", "1"))
TESTS = Path(__file__).resolve().parent.parent / "tests"
#: Trino's -Xmx for the TPC-H figure (the tests' server runs on 1G)
TRINO_HEAP = os.environ.get("BENCH_TRINO_HEAP", "2G")


def tpch(fmt: str) -> Figure:
    from lakehouse.definitions import build_definitions
    from lakehouse.tpch import run_tpch

    with scoped_environ():  # run_tpch points LAKEHOUSE_HOME and the format at its own lake
        home = Path(tempfile.mkdtemp(prefix=f"bench-tpch-{fmt}-"))
        report = run_tpch(SF, fmt, home=home, definitions=build_definitions, repeat=3)  # type: ignore[arg-type]
    if not report.passed:
        raise SystemExit(f"TPC-H SF {SF} over {fmt}: {report.correct}/22 correct, failed checks {report.checks_failed}")
    return Figure(
        name=f"TPC-H SF {SF:g}: 22 queries over {fmt} (median of 3 each, summed)",
        seconds=sum(q.lake_seconds for q in report.queries),
        baseline_name="the same queries on native DuckDB tables",
        baseline_seconds=sum(q.native_seconds for q in report.queries),
        goal="<= 1.3 (Delta)",
        details={
            "correct": report.correct,
            "load_seconds": round(report.load_seconds, 1),
            "slowest": sorted(((round(q.ratio, 1), f"Q{q.query}") for q in report.queries), reverse=True)[:3],
        },
    )


def tpch_spark() -> Figure:
    """The 22 queries on local PySpark over Parquet files of the same generated data, against
    DuckDB over the same files, same run; answers checked for both. Compare with the
    ``tpch_delta`` figure of the same report for the lake-against-Spark ratio."""
    import shutil
    import statistics
    import time

    import duckdb
    from pyspark.sql import SparkSession

    from lakehouse.compute import spark_config
    from lakehouse.sql import quote_ident, quote_literal
    from lakehouse.tpch import TABLES, _native, _scalar, _timed, compare_answer, equal_to_its_scale

    folder = Path(tempfile.mkdtemp(prefix="bench-tpch-spark-"))
    native = _native(SF)
    for table in TABLES:
        native.execute(
            f"COPY {quote_ident(table)} TO {quote_literal(str(folder / f'{table}.parquet'))} (FORMAT parquet)"
        )
    over_files = duckdb.connect()  # the same names, as views over the files
    for table in TABLES:
        over_files.execute(
            f"CREATE VIEW {quote_ident(table)} AS SELECT * FROM read_parquet({quote_literal(str(folder / f'{table}.parquet'))})"
        )
    builder = SparkSession.builder
    for key, value in {
        **spark_config("local[2]"),
        "spark.driver.memory": "6g",
        "spark.app.name": "tpch",
        "spark.ui.showConsoleProgress": "false",
    }.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for table in TABLES:
            spark.read.parquet(str(folder / f"{table}.parquet")).createOrReplaceTempView(table)
        spark_total = duck_total = 0.0
        wrong, slowest = [], []
        for number in range(1, 23):
            sql = _scalar(native, "SELECT query FROM tpch_queries() WHERE query_nr = ?", [number])
            answer = _scalar(
                native, "SELECT answer FROM tpch_answers() WHERE scale_factor = ? AND query_nr = ?", [SF, number]
            )
            spark_sql = sql.strip().rstrip(";")
            times, rows, header = [], [], []
            for _ in range(3):  # the first run pays for planning and JIT, the median does not
                started = time.perf_counter()
                result = spark.sql(spark_sql)
                rows = [tuple(r) for r in result.collect()]
                times.append(time.perf_counter() - started)
                header = result.columns
            spark_seconds = statistics.median(times)
            _, duck_rows, duck_seconds = _timed(over_files, sql, 3)
            problems = compare_answer(answer, header, rows, equal_to_its_scale)
            if problems or compare_answer(answer, header, duck_rows):
                wrong.append((number, problems[:2]))
            spark_total += spark_seconds
            duck_total += duck_seconds
            slowest.append((round(spark_seconds / duck_seconds, 1) if duck_seconds else 0.0, f"Q{number}"))
    finally:
        gateway = spark.sparkContext._gateway
        spark.stop()
        gateway.shutdown()  # and the JVM with it: it would hold its heap through every later figure
        if getattr(gateway, "proc", None) is not None:
            gateway.proc.kill()
            gateway.proc.wait()
        from pyspark import SparkContext

        SparkContext._gateway = SparkContext._jvm = None
        native.close()
        over_files.close()
        shutil.rmtree(folder, ignore_errors=True)
    return Figure(
        name=f"TPC-H SF {SF:g}: 22 queries on PySpark local[2] over Parquet (median of 3 each, summed)",
        seconds=spark_total,
        baseline_name="DuckDB over the same Parquet files",
        baseline_seconds=duck_total,
        goal="report (the lake over Delta against this: see tpch_delta)",
        details={"correct": 22 - len(wrong), "wrong": wrong[:5], "slowest": sorted(slowest, reverse=True)[:3]},
    )


def tpch_trino(fmt: str) -> list[Figure]:
    """The 22 queries through a real Trino 476 (tests/trinoserver.py: on 127.0.0.1, HTTPS and a
    password, as the tests run it) over the lake on S3 (SeaweedFS, Iceberg's catalog in
    PostgreSQL), against DuckDB over the very same tables in the same run (``run_tpch``'s lake
    timings); every answer checked for both. Plus Trino's start time, launch to first answer
    (it starts while the lake loads)."""
    import secrets
    import statistics
    import time
    import uuid

    import psycopg2

    sys.path.insert(0, str(TESTS))
    import s3server
    import trinoserver

    from lakehouse.definitions import build_definitions
    from lakehouse.governance.masking import trino_rules
    from lakehouse.governance.policy import load_policy
    from lakehouse.naming import TableRef
    from lakehouse.query.duckdb import connect
    from lakehouse.query.trino import CATALOGS, TrinoResource, register_tables, to_trino, write_catalogs
    from lakehouse.settings import get_settings
    from lakehouse.sql import quote_ident
    from lakehouse.tpch import TABLES, _scalar, compare_answer, equal_to_its_scale, for_trino, run_tpch

    state = Path(tempfile.mkdtemp(prefix=f"bench-tpch-trino-{fmt}-"))
    database = f"bench_trino_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {quote_ident(database)}")
    s3 = s3server.start()
    server = None
    try:
        env = {**s3.env(f"bench-trino-{fmt}"), "LAKEHOUSE_MASKING_KEY": secrets.token_hex(32)}
        if fmt == "iceberg":  # Trino reads Iceberg through the same JDBC catalog the lake commits to
            env["LAKEHOUSE_CATALOG_URI"] = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
        catalogs = write_catalogs(get_settings({**env, "LAKEHOUSE_HOME": str(state)}), state / "catalog")
        rules = state / "rules.json"
        rules.write_text(json.dumps(trino_rules(load_policy(), [])))  # the service user may do everything
        server = trinoserver.start(state / "catalog", catalogs.env, heap=TRINO_HEAP, rules_file=rules)
        env.update(server.client_env())
        with scoped_environ(**env):  # run_tpch points LAKEHOUSE_HOME and the format at its own lake
            report = run_tpch(SF, fmt, home=state / "home", definitions=build_definitions, repeat=3)  # type: ignore[arg-type]
            settings = get_settings()
        if not report.passed:
            raise SystemExit(f"TPC-H SF {SF} over {fmt} on S3: {report.correct}/22 correct (DuckDB)")
        server.wait()
        if fmt == "delta":
            register_tables(settings, [TableRef("silver", "tpch", t) for t in TABLES])
        trino = TrinoResource.from_url(
            settings.trino_url or "",
            password=settings.trino_password,
            catalog=CATALOGS[fmt],
            ca_file=settings.trino_ca_file,
        )
        native = connect(settings, extensions=("tpch",))  # the queries and answers (no dbgen)
        trino_total, wrong, slowest = 0.0, [], []
        conn = trino.connect()
        try:
            for number in range(1, 23):
                sql = to_trino(
                    for_trino(
                        _scalar(native, "SELECT query FROM tpch_queries() WHERE query_nr = ?", [number]),
                        "silver_tpch",
                    )
                )
                answer = _scalar(
                    native,
                    "SELECT answer FROM tpch_answers() WHERE scale_factor = ? AND query_nr = ?",
                    [SF, number],
                )
                times, rows, header = [], [], []
                for _ in range(3):  # the first run pays for planning and the JIT, the median does not
                    started = time.perf_counter()
                    cur = conn.cursor()
                    cur.execute(sql)
                    rows = cur.fetchall()
                    times.append(time.perf_counter() - started)
                    header = [d[0] for d in cur.description or []]
                seconds = statistics.median(times)
                duck = report.queries[number - 1].lake_seconds
                if problems := compare_answer(answer, header, rows, equal_to_its_scale):
                    wrong.append((number, problems[:2]))
                trino_total += seconds
                slowest.append((round(seconds / duck, 1) if duck else 0.0, f"Q{number}"))
        finally:
            conn.close()
            native.close()
    finally:
        if server is not None:
            server.stop()
        s3.stop()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)")
        admin.close()
    if wrong:
        raise SystemExit(f"TPC-H SF {SF} through Trino over {fmt}: {22 - len(wrong)}/22 correct: {wrong[:3]}")
    duck_total = sum(q.lake_seconds for q in report.queries)
    return [
        Figure(
            name=f"TPC-H SF {SF:g}: 22 queries through Trino over {fmt} on S3 (median of 3 each, summed)",
            seconds=trino_total,
            baseline_name="DuckDB over the same tables, same run",
            baseline_seconds=duck_total,
            goal="report",
            details={
                "correct": 22,
                "load_seconds": round(report.load_seconds, 1),
                "slowest": sorted(slowest, reverse=True)[:3],
                "trino_heap": TRINO_HEAP,
            },
        ),
        Figure(
            name="Trino 476: launch to first answered query (while the lake loaded)",
            seconds=server.start_seconds or 0.0,
            baseline_name="the TPC-H load it overlapped",
            baseline_seconds=report.load_seconds,
            goal="report",
        ),
    ]


if __name__ == "__main__":
    # `python -m bench.tpch trino [delta|iceberg ...]`: the Trino figures on their own (printed and
    # added to today's report like `python -m bench`'s)
    from bench.__main__ import write_report

    if sys.argv[1:2] != ["trino"]:
        sys.exit("usage: python -m bench.tpch trino [delta] [iceberg]")
    for table_format in sys.argv[2:] or ["delta", "iceberg"]:
        figures = tpch_trino(table_format)
        for figure in figures:
            print(figure.line(), flush=True)
            if figure.details:
                print(f"    {figure.details}", flush=True)
        write_report(figures)
