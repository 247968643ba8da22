"""TPC-H over the lake against native DuckDB tables generated from the same data, same run.
Goal: over Delta <= 1.3x native. Every answer must also be correct (the run fails otherwise)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench import Figure, scoped_environ

SF = float(os.environ.get("BENCH_TPCH_SF", "1"))


def tpch(fmt: str) -> Figure:
    from lakehouse.tpch import run_tpch

    with scoped_environ():  # run_tpch points LAKEHOUSE_HOME and the format at its own lake
        report = run_tpch(SF, fmt, home=Path(tempfile.mkdtemp(prefix=f"bench-tpch-{fmt}-")), repeat=3)  # type: ignore[arg-type]
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
