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


def test_a_decimal_with_a_fixed_scale_equals_the_answer_rounded_to_that_scale():
    from lakehouse.tpch import equal_to_its_scale

    text = "mkt_share\n0.028648741305617557\n"
    assert compare_answer(text, ["mkt_share"], [(Decimal("0.028649"),)]) != []  # exact by default
    assert compare_answer(text, ["mkt_share"], [(Decimal("0.028649"),)], equal_to_its_scale) == []
    assert compare_answer(text, ["mkt_share"], [(Decimal("0.028650"),)], equal_to_its_scale) == [
        "row 1 column mkt_share: Decimal('0.028650') != 0.028648741305617557"
    ]
    assert equal_to_its_scale("10.50", Decimal("10.50")) and not equal_to_its_scale("x", Decimal("1"))
