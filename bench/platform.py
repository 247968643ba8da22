"""Start-up costs: loading the code location, against importing dagster alone."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from bench import Figure, median_time


def _python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def _fresh_interpreter(name: str, code: str, baseline_name: str, baseline_code: str, repeat: int) -> Figure:
    """Median wall time of ``code`` in a fresh interpreter against ``baseline_code``, same run."""
    return Figure(
        name=name,
        seconds=median_time(lambda: _python(code), repeat=repeat),
        baseline_name=baseline_name,
        baseline_seconds=median_time(lambda: _python(baseline_code), repeat=repeat),
        goal="report",
    )


def definitions_load(repeat: int = 3) -> Figure:
    return _fresh_interpreter(
        "load the code location (python -c 'import lakehouse.definitions')",
        "import lakehouse.definitions",
        "python -c 'import dagster'",
        "import dagster",
        repeat,
    )


def demo(days: int = 7) -> Figure:
    """`lakehouse demo --days 7` on a fresh lake: wall time and peak RSS (the run is one process)."""
    home = tempfile.mkdtemp(prefix="bench-demo-")
    bin_dir = sys.executable.rsplit("/", 1)[0]
    started = time.perf_counter()
    done = subprocess.run(
        [f"{bin_dir}/lakehouse", "demo", "--days", str(days), "--json"],
        env={**os.environ, "LAKEHOUSE_HOME": home},
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads(done.stdout)
    baseline = median_time(lambda: _python("import lakehouse.definitions"), repeat=3)
    return Figure(
        name=f"lakehouse demo --days {days} (fresh lake)",
        seconds=wall,
        baseline_name="loading the code location",
        baseline_seconds=baseline,
        goal="report",
        details={"peak_rss_mb": round(peak), "runs": summary["runs"], "checks_passed": summary["checks_passed"]},
    )


def spark_start(repeat: int = 3) -> Figure:
    """A local Spark session (the JVM included) started in a fresh interpreter, as a Spark job's
    first step pays it, against importing pyspark alone."""
    start = (
        "from lakehouse.compute import ComputeResource; "
        "s = ComputeResource(spark_master='local[2]').spark(); s.range(1).count(); s.stop()"
    )
    return _fresh_interpreter(
        "start a local[2] Spark session and run one action (fresh interpreter)",
        start,
        "import pyspark and lakehouse.compute",
        "import pyspark.sql, lakehouse.compute",
        repeat,
    )
