"""kill -9 at random moments of partition overwrite, MERGE, append, compaction and restore, both
formats, on the local folder and on S3: the table always opens, equals its state before or after
the operation, and a rerun converges (tests/faults.py). The same for an erasure: every table
opens, and running it again finishes it. CI runs a few trials per case; `make
faults` runs 50 (bench/faults.py)."""

from __future__ import annotations

import os
import zlib

import pytest
from faults import ERASURE_STATES, OPERATIONS, run_erasure_trials, run_trials

TRIALS = {
    "local": int(os.environ.get("LAKEHOUSE_FAULT_TRIALS", "3")),
    "s3": int(os.environ.get("LAKEHOUSE_FAULT_TRIALS", "2")),
}

#: an erasure trial builds a lake of five tables and a landing file, then reruns the erasure
ERASURE_TRIALS = {
    "local": int(os.environ.get("LAKEHOUSE_FAULT_TRIALS", "2")),
    "s3": int(os.environ.get("LAKEHOUSE_FAULT_TRIALS", "1")),
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


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_kill_9_during_an_erasure_then_a_rerun_finishes_it(storage, table_format, lake_env, tmp_path, request):
    if storage == "s3":
        request.getfixturevalue("s3_env")
    if table_format == "iceberg":
        # known defects (bench/results/faults-2026-12-08.md), each failing closed (the rerun does
        # not certify and keeps its journal; nothing is reported erased while readable): on S3, 1
        # of 50 kills left a manifest with the subject's column bounds that the rerun kept; and a
        # kill inside pyiceberg's delete can leave a truncated manifest, young and unreferenced,
        # that verification cannot read until the purge's grace period lets a rerun delete it
        request.applymarker(
            pytest.mark.xfail(strict=False, reason="Iceberg: a kept or truncated manifest fails the rerun closed")
        )
    env = {**os.environ}
    if storage == "s3":  # a lake on S3 is read from several hosts: it needs the shared masking key
        env["LAKEHOUSE_MASKING_KEY"] = "fault-injection-" + "0" * 48
    seed = zlib.crc32(f"erasure-{storage}-{table_format}".encode())
    trials = ERASURE_TRIALS[storage]
    outcome = run_erasure_trials(trials, env, tmp_path / "trials", seed=seed)
    assert not outcome.failures, "\n".join(outcome.failures)
    assert outcome.trials == trials
    assert sum(outcome.states[s] for s in ERASURE_STATES) == outcome.trials
