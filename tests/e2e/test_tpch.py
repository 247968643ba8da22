"""`lakehouse bench tpch --sf 0.1`: all 22 queries over the lake equal the official answers."""

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from lakehouse.tpch import compare_answer

BIN = Path(sys.executable).parent / "lakehouse"


@pytest.mark.parametrize("fmt", ["delta", "iceberg"])
def test_tpch_sf_0_1_through_the_lake(tmp_path, fmt):
    env = {**os.environ, "LAKEHOUSE_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(BIN), "bench", "tpch", "--sf", "0.1", "--format", fmt, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert (report["correct"], report["checks_failed"], report["format"]) == (22, [], fmt)
    assert report["rows_loaded"]["lineitem"] == 600_572
    assert all(q["correct"] and q["native_ms"] > 0 for q in report["queries"])


def test_compare_answer_is_exact_for_decimals_and_tolerant_for_floats():
    text = "flag|total|avg|n\nA|10.50|0.3333333|2\n"
    assert compare_answer(text, ["flag", "total", "avg", "n"], [("A", Decimal("10.5"), 0.33333330001, 2)]) == []
    assert compare_answer(text, ["flag", "total", "avg", "n"], [("A", Decimal("10.51"), 0.3333333, 2)]) == [
        "row 1 column total: Decimal('10.51') != 10.50"
    ]
    assert compare_answer(text, ["flag", "total", "avg", "n"], [("A", Decimal("10.50"), 0.3334, 2)])
    assert compare_answer("avg_yearly\n\n", ["avg_yearly"], [(None,)]) == []  # a single NULL row
    assert compare_answer(text, ["flag", "total", "avg", "n"], []) == ["0 rows != 1"]
