"""kill -9 at random moments of partition overwrite, MERGE, append, compaction and restore, both
formats, on the local folder and on S3: the table always opens, equals its state before or after
the operation, and a rerun converges (tests/faults.py). CI runs a few trials per case; `make
faults` runs 50 (bench/faults.py)."""

from __future__ import annotations

import os
import zlib

import pytest
from faults import OPERATIONS, run_trials

TRIALS = {
    "local": int(os.environ.get("LAKEHOUSE_FAULT_TRIALS", "3")),
    "s3": int(os.environ.get("LAKEHOUSE_FAULT_TRIALS", "2")),
}


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("storage", ["local", "s3"])
def test_kill_9_leaves_the_table_before_or_after_and_a_rerun_converges(op, storage, table_format, lake_env, request):
    if storage == "s3":
        request.getfixturevalue("s3_env")
    env = {**os.environ}
    outcome = run_trials(op, TRIALS[storage], env, seed=zlib.crc32(f"{op}-{storage}-{table_format}".encode()))
    assert outcome.trials == TRIALS[storage]
    assert not outcome.failures, "\n".join(outcome.failures)
    assert outcome.states["before"] + outcome.states["after"] == outcome.trials
