"""Concurrent MERGE and partition overwrite: N writer processes on OVERLAPPING keys and partitions,
both formats, a local folder and S3 (SeaweedFS on 127.0.0.1).

A lost commit race must be retried from a fresh read of the table, never by re-applying a plan made
before the race; otherwise a concurrent newer row is overwritten. The writes are designed so the
valid outcomes are easy to compute: every write carries its writer and commit number (in the rows
and in the commit metadata), so

- a MERGE with ``newer_by`` must end, whatever the order, with the newest row of each key;
- a plain MERGE (last writer wins) must end in the state that replaying the writes in the order the
  table's log recorded them gives: one serial order, nothing lost, nothing duplicated;
- a partition overwrite must leave in each partition exactly the rows of one write, the last the
  log recorded for that partition, and nothing in the partition nobody wrote.

Writers are processes started with ``spawn`` (delta-rs panics in forked children), kept in one
pool for the module (imports are the slow part) and released together at one instant.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from lakehouse.naming import TableRef

pytestmark = pytest.mark.xdist_group("concurrent-writes")  # one pool of writer processes, on one test worker
WRITERS, COMMITS, KEYS = 4, 5, 8
REF = TableRef("silver", "race", "contended")
DAYS = ("d0", "d1")  # the partitions writers fight over; "keep" is written once, before the race
_ENV_PREFIXES = ("LAKEHOUSE_", "AWS_")
_SCHEMA = {"k": pl.Int64, "writer": pl.Int64, "commit": pl.Int64, "seq": pl.Int64, "payload": pl.String}


def seq_of(writer: int, commit: int) -> int:
    """A version number per write, unique, and shuffled so that it does not follow commit time:
    a writer that loses a race often holds an OLDER row than the winner's."""
    order = random.Random(7).sample(range(1, WRITERS * COMMITS + 1), WRITERS * COMMITS)
    return order[writer * COMMITS + commit]


def keys_of(writer: int, commit: int) -> list[int]:
    """Four of the eight keys: every pair of writers overlaps on most keys, and keys are first
    inserted by concurrent writers (the table starts with only a sentinel key -1)."""
    return sorted(random.Random(writer * 100 + commit).sample(range(KEYS), 4))


def merge_rows(writer: int, commit: int) -> pl.DataFrame:
    keys = keys_of(writer, commit)
    return pl.DataFrame(
        {
            "k": keys,
            "writer": [writer] * len(keys),
            "commit": [commit] * len(keys),
            "seq": [seq_of(writer, commit)] * len(keys),
            "payload": [f"w{writer}c{commit}k{k}" for k in keys],
        },
        schema=_SCHEMA,
    )


def day_of(writer: int, commit: int) -> str:
    return DAYS[(writer + commit) % len(DAYS)]


def partition_rows(writer: int, commit: int) -> pl.DataFrame:
    n = 3
    return pl.DataFrame(
        {"day": [day_of(writer, commit)] * n, "writer": [writer] * n, "commit": [commit] * n, "i": list(range(n))},
        schema={"day": pl.String, "writer": pl.Int64, "commit": pl.Int64, "i": pl.Int64},
    )


def _meta(writer: int, commit: int) -> dict[str, str]:
    return {"test.writer": str(writer), "test.commit": str(commit)}


def _writer(job: tuple[dict[str, str], str, str, int, float]) -> list[str]:
    """One writer process: COMMITS writes, each one commit, starting at ``start_at``."""
    env, fmt, kind, writer, start_at = job
    for name in [n for n in os.environ if n.startswith(_ENV_PREFIXES)]:
        del os.environ[name]  # the pool outlives a test: forget the previous test's lake
    os.environ.update(env)
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    store = Lake(get_settings()).store(fmt)  # type: ignore[arg-type]
    time.sleep(max(0.0, start_at - time.time()))
    operations = []
    for commit in range(COMMITS):
        try:
            operations.append(_write(store, kind, writer, commit))
        except Exception as exc:
            operations.append(f"FAILED {type(exc).__name__}: {exc}"[:500])
    return operations


def _write(store: Any, kind: str, writer: int, commit: int) -> str:
    """One write of one writer; returns the operation it reports (MERGE, NOOP, OVERWRITE_PARTITIONS)."""
    if kind == "overwrite":
        result = store.overwrite_partitions(
            REF,
            partition_rows(writer, commit),
            partition_by="day",
            values=[day_of(writer, commit)],
            commit_metadata=_meta(writer, commit),
        )
    else:
        result = store.merge(
            REF,
            merge_rows(writer, commit),
            keys=["k"],
            newer_by="seq" if kind == "merge_newer" else None,
            commit_metadata=_meta(writer, commit),
        )
    return str(result.operation)


def _warm() -> None:
    """Import the table layer once per pool process (the slow part of a writer's start)."""
    import lakehouse.tables.delta
    import lakehouse.tables.iceberg  # noqa: F401


def _ready(_: int) -> int:
    time.sleep(0.2)  # let every process take one: each must have finished _warm
    return os.getpid()


@pytest.fixture(scope="module")
def pool() -> Iterator[Any]:
    with multiprocessing.get_context("spawn").Pool(WRITERS, initializer=_warm) as workers:
        workers.map(_ready, range(WRITERS), chunksize=1)  # the imports are paid here, not in the first race
        yield workers


@pytest.fixture(params=["local", "s3"])
def store(request, lake_env, table_format):  # type: ignore[no-untyped-def]
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    if request.param == "s3":
        request.getfixturevalue("s3_env")
    return Lake(get_settings()).store(table_format)


def race(pool: Any, store: Any, kind: str) -> list[list[str]]:
    env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    start_at = time.time() + 0.5
    jobs = [(env, store.format, kind, w, start_at) for w in range(WRITERS)]
    operations = list(pool.map(_writer, jobs, chunksize=1))
    failed = [op for ops in operations for op in ops if op.startswith("FAILED")]
    assert not failed, f"{len(failed)} of {WRITERS * COMMITS} writes failed, e.g. {failed[0]}"
    return operations


def logged_writes(store: Any) -> list[tuple[int, int]]:
    """(writer, commit) of every write in the order of the log, one entry per logical write (an
    Iceberg merge is a delete and an append snapshot of the same write); a write logged twice, or
    split by another write, would show up as a repeated entry."""
    order: list[tuple[int, int]] = []
    for entry in sorted(store.history(REF), key=lambda c: c.version):
        meta = entry.user_metadata
        if "test.writer" not in meta:
            continue
        write = (int(meta["test.writer"]), int(meta["test.commit"]))
        if not order or order[-1] != write:
            order.append(write)
    return order


def table(store: Any) -> pl.DataFrame:
    return store.read(REF).collect()


def test_concurrent_merges_with_newer_by_keep_the_newest_row_of_every_key(pool, store):
    store.merge(
        REF,
        pl.DataFrame({"k": [-1], "writer": [-1], "commit": [-1], "seq": [0], "payload": ["x"]}, schema=_SCHEMA),
        keys=["k"],
    )
    operations = race(pool, store, "merge_newer")
    assert sum(len(ops) for ops in operations) == WRITERS * COMMITS
    writes = [(w, c) for w in range(WRITERS) for c in range(COMMITS)]
    newest: dict[int, tuple[int, int, int]] = {}
    for w, c in writes:
        for k in keys_of(w, c):
            if k not in newest or seq_of(w, c) > newest[k][0]:
                newest[k] = (seq_of(w, c), w, c)
    expected = pl.DataFrame(
        {
            "k": [-1, *sorted(newest)],
            "writer": [-1, *[newest[k][1] for k in sorted(newest)]],
            "commit": [-1, *[newest[k][2] for k in sorted(newest)]],
            "seq": [0, *[newest[k][0] for k in sorted(newest)]],
            "payload": ["x", *[f"w{newest[k][1]}c{newest[k][2]}k{k}" for k in sorted(newest)]],
        },
        schema=_SCHEMA,
    )
    got = table(store).select(list(_SCHEMA)).sort("k")
    assert got.height == expected.height, f"keys lost or duplicated: {got['k'].to_list()}"
    assert got.to_dicts() == expected.to_dicts()
    logged = logged_writes(store)
    assert len(logged) == len(set(logged)), f"a write was committed twice or split: {logged}"
    committed = sum(op == "MERGE" for ops in operations for op in ops)
    assert len(logged) == committed  # every acknowledged MERGE is one logical commit, NOOPs none


def test_concurrent_merges_end_in_the_state_of_the_logged_serial_order(pool, store):
    store.merge(
        REF,
        pl.DataFrame({"k": [-1], "writer": [-1], "commit": [-1], "seq": [0], "payload": ["x"]}, schema=_SCHEMA),
        keys=["k"],
    )
    operations = race(pool, store, "merge")
    assert [op for ops in operations for op in ops] == ["MERGE"] * WRITERS * COMMITS  # every write changes rows
    logged = logged_writes(store)
    assert sorted(logged) == sorted((w, c) for w in range(WRITERS) for c in range(COMMITS)), logged
    state: dict[int, dict[str, Any]] = {-1: {"k": -1, "writer": -1, "commit": -1, "seq": 0, "payload": "x"}}
    for w, c in logged:  # replay in the log's order: the last writer of each key wins
        for row in merge_rows(w, c).to_dicts():
            state[row["k"]] = row
    got = table(store).select(list(_SCHEMA)).sort("k")
    assert got.height == len(state), f"keys lost or duplicated: {got['k'].to_list()}"
    assert got.to_dicts() == [state[k] for k in sorted(state)]


def test_concurrent_partition_overwrites_leave_one_whole_write_per_partition(pool, store):
    keep = pl.DataFrame(
        {"day": ["keep"], "writer": [-1], "commit": [-1], "i": [0]},
        schema={"day": pl.String, "writer": pl.Int64, "commit": pl.Int64, "i": pl.Int64},
    )
    store.overwrite_partitions(REF, keep, partition_by="day", values=["keep"])
    operations = race(pool, store, "overwrite")
    assert sum(len(ops) for ops in operations) == WRITERS * COMMITS
    logged = logged_writes(store)
    assert sorted(logged) == sorted((w, c) for w in range(WRITERS) for c in range(COMMITS)), logged
    last = {day_of(w, c): (w, c) for w, c in logged}  # the last logged write of each partition
    expected = pl.concat([keep, *[partition_rows(*last[day]) for day in DAYS]])
    got = table(store).select(expected.columns)
    order = ["day", "writer", "commit", "i"]
    assert got.sort(order).to_dicts() == expected.sort(order).to_dicts()
