"""The TableStore contract: the same behaviour for Delta and Iceberg, on real tables."""

import contextlib
import datetime as dt
import subprocess
import sys
import textwrap
import time
from decimal import Decimal

import polars as pl
import pytest

from lakehouse.exceptions import PartitionMismatchError, SchemaMismatchError, TableNotFoundError
from lakehouse.naming import TableRef
from lakehouse.tables import col

REF = TableRef("silver", "test", "events")


@pytest.fixture(params=["local", "s3"])
def settings(request, lake_env, table_format):
    """The contract holds on a local folder and on a real S3 server (SeaweedFS on 127.0.0.1)."""
    from lakehouse.settings import get_settings

    if request.param == "s3":
        request.getfixturevalue("s3_env")
    return get_settings()


D1, D2, D3 = dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)


def frame(day: dt.date, ids: list[int], value: str = "v") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "day": [day] * len(ids),
            "id": ids,
            "value": [f"{value}{i}" for i in ids],
            "amount": [Decimal(f"{i}.25") for i in ids],
        },
        schema={"day": pl.Date, "id": pl.Int64, "value": pl.String, "amount": pl.Decimal(12, 2)},
    )


def content(store, ref=REF, **kw) -> pl.DataFrame:
    df = store.read(ref, **kw).collect()
    return df.select(sorted(df.columns)).sort(sorted(c for c in df.columns if c != "amount"))


def seed(store) -> None:
    store.overwrite_partitions(
        REF, pl.concat([frame(D1, [1, 2]), frame(D2, [3, 4])]), partition_by="day", values=[D1, D2]
    )


def test_partition_overwrite_replaces_exactly_the_given_partitions_and_is_idempotent(store):
    seed(store)
    new_d2 = frame(D2, [5], "new")
    store.overwrite_partitions(REF, new_d2, partition_by="day", values=[D2])
    once = content(store)
    store.overwrite_partitions(REF, new_d2, partition_by="day", values=["2024-01-02"])  # keys as strings too
    twice = content(store)
    assert twice.equals(once)
    assert once.filter(pl.col("day") == D1).get_column("id").to_list() == [1, 2]  # untouched
    assert once.filter(pl.col("day") == D2).get_column("id").to_list() == [5]
    assert store.partition_columns(REF) == ("day",)


def test_empty_partition_overwrite_empties_the_partition(store):
    seed(store)
    store.overwrite_partitions(REF, frame(D1, []), partition_by="day", values=[D1])
    assert content(store).get_column("id").to_list() == [3, 4]


def test_rows_outside_the_partitions_are_refused_before_writing(store):
    seed(store)
    version = store.version(REF)
    with pytest.raises(PartitionMismatchError, match=r"1 row\(s\) have day outside the partitions"):
        store.overwrite_partitions(REF, pl.concat([frame(D1, [9]), frame(D3, [10])]), partition_by="day", values=[D1])
    assert store.version(REF) == version


def test_merge_upserts_changed_rows_only_and_a_replay_is_a_noop(store):
    seed(store)
    changes = pl.concat([frame(D1, [1], "changed"), frame(D1, [2]), frame(D3, [7])])  # update, same, insert
    result = store.merge(REF, changes, keys=["id"])
    assert (result.operation, result.rows_inserted, result.rows_updated) == ("MERGE", 1, 1)
    after = content(store)
    assert after.height == 5
    assert after.filter(pl.col("id") == 1).get_column("value").item() == "changed1"
    version = store.version(REF)
    replay = store.merge(REF, changes, keys=["id"])
    assert replay.operation == "NOOP" and store.version(REF) == version
    assert content(store).equals(after)


def test_merge_can_delete_rows_missing_from_the_source_within_a_predicate(store):
    seed(store)
    result = store.merge(REF, frame(D2, [3]), keys=["id"], delete_missing=col("day") == D2)
    assert result.rows_deleted == 1
    assert content(store).get_column("id").to_list() == [1, 2, 3]


def test_merge_refuses_duplicate_or_null_keys(store):
    seed(store)
    with pytest.raises(ValueError, match=r"duplicated key.*at source rows \[1, 2\]") as refused:
        store.merge(REF, pl.concat([frame(D1, [31337]), frame(D1, [4242, 4242])]), keys=["id"])
    assert "4242" not in str(refused.value)  # positions, never key values (they may be personal)
    with pytest.raises(ValueError, match="null merge key"):
        store.merge(REF, frame(D1, [1]).with_columns(pl.lit(None, dtype=pl.Int64).alias("id")), keys=["id"])


def test_merge_with_a_composite_key(store):
    seed(store)
    store.merge(REF, frame(D1, [1], "x").vstack(frame(D2, [1], "y")), keys=["day", "id"])
    got = content(store).filter(pl.col("id") == 1).sort("day")
    assert got.get_column("value").to_list() == ["x1", "y1"]


def rival_commits_first(store, monkeypatch, rival):
    """Make ``rival`` (another write) commit once, right before the next write of ``store`` commits
    and after that write has read the table: the lost race of two writers, made deterministic."""
    fired = []

    def fire():
        if not fired:
            fired.append(True)
            rival()

    if store.format == "delta":
        from deltalake import DeltaTable

        import lakehouse.tables.delta as module

        real_write, real_delete = module.write_deltalake, DeltaTable.delete
        monkeypatch.setattr(module, "write_deltalake", lambda *a, **k: (fire(), real_write(*a, **k))[1])
        monkeypatch.setattr(DeltaTable, "delete", lambda self, *a, **k: (fire(), real_delete(self, *a, **k))[1])
    else:  # every Iceberg commit of the store runs inside this context manager, after reading the table
        import lakehouse.tables.iceberg as module

        real_quiet = module._quiet_empty_deletes

        @contextlib.contextmanager
        def quiet():
            fire()
            with real_quiet():
                yield

        monkeypatch.setattr(module, "_quiet_empty_deletes", quiet)
    real_apply = type(store)._apply_merge  # a merge: between its plan and its commit
    monkeypatch.setattr(type(store), "_apply_merge", lambda self, *a, **k: (fire(), real_apply(self, *a, **k))[1])
    return fired


def test_a_merge_that_loses_a_race_is_planned_again_and_never_puts_an_older_row_back(store, monkeypatch):
    store.merge(REF, frame(D1, [1, 2], "a"), keys=["id"])
    rival = rival_commits_first(
        store, monkeypatch, lambda: store.merge(REF, frame(D1, [1], "c"), keys=["id"], newer_by="value")
    )
    result = store.merge(REF, frame(D1, [1, 2], "b"), keys=["id"], newer_by="value")
    assert rival
    got = dict(content(store).select("id", "value").iter_rows())
    assert got == {1: "c1", 2: "b2"}  # the rival's newer row stays; ours replaced only the older one
    assert (result.operation, result.rows_updated) == ("MERGE", 1)


def test_a_merge_that_loses_a_race_deletes_what_the_winner_added_in_its_scope(store, monkeypatch):
    store.merge(REF, frame(D1, [1, 2]), keys=["id"])
    rival = rival_commits_first(store, monkeypatch, lambda: store.append(REF, frame(D1, [3])))
    store.merge(REF, frame(D1, [1], "x"), keys=["id"], delete_missing=col("day") == D1)
    assert rival
    # serial order: the rival's row 3 landed first, then our merge removed every D1 key it lacks
    assert dict(content(store).select("id", "value").iter_rows()) == {1: "x1"}


def test_merges_racing_to_create_the_table_write_each_key_once(store, monkeypatch):
    """Two first merges into a missing table (parallel partitions of a backfill): the loser must
    merge into what the winner created, not append its rows blindly beside them."""
    rival = rival_commits_first(store, monkeypatch, lambda: store.merge(REF, frame(D1, [1, 2], "a"), keys=["id"]))
    result = store.merge(REF, frame(D1, [2, 3], "b"), keys=["id"])
    assert rival
    assert sorted(content(store).select("id", "value").iter_rows()) == [(1, "a1"), (2, "b2"), (3, "b3")]
    assert (result.operation, result.rows_inserted, result.rows_updated) == ("MERGE", 1, 1)


def test_a_partition_overwrite_that_loses_a_race_replaces_the_winners_rows(store, monkeypatch):
    seed(store)
    rival = rival_commits_first(
        store, monkeypatch, lambda: store.overwrite_partitions(REF, frame(D1, [7]), partition_by="day", values=[D1])
    )
    store.overwrite_partitions(REF, frame(D1, [8, 9]), partition_by="day", values=[D1])
    assert rival
    got = content(store)
    assert got.filter(pl.col("day") == D1).get_column("id").to_list() == [8, 9]  # not [7, 8, 9], not [7]
    assert got.filter(pl.col("day") == D2).get_column("id").to_list() == [3, 4]


def test_partition_overwrites_racing_to_create_the_table_leave_one_write_in_the_partition(store, monkeypatch):
    rival = rival_commits_first(
        store, monkeypatch, lambda: store.overwrite_partitions(REF, frame(D1, [7]), partition_by="day", values=[D1])
    )
    store.overwrite_partitions(REF, frame(D1, [8, 9]), partition_by="day", values=[D1])
    assert rival
    assert content(store).get_column("id").to_list() == [8, 9]  # the last write, not [7, 8, 9]


def test_a_delete_that_loses_a_race_counts_the_rows_it_deleted(store, monkeypatch):
    seed(store)
    rival = rival_commits_first(store, monkeypatch, lambda: store.append(REF, frame(D1, [5])))
    result = store.delete(REF, col("day") == D1)
    assert rival
    left = content(store)
    # either serial order is valid (a blind append may commit under a delete), but the count must match it
    assert result.rows_deleted == 5 - left.height
    assert left.filter(pl.col("day") == D2).get_column("id").to_list() == [3, 4]


def test_delete_with_a_predicate(store):
    seed(store)
    result = store.delete(REF, (col("day") == D1) & (col("id") > 1))
    assert result.rows_deleted == 1
    assert content(store).get_column("id").to_list() == [1, 3, 4]


def test_a_delete_of_fifty_thousand_listed_keys_is_one_commit(store):
    """delta-rs crashed the process on an IN list of ~30k values: such deletes join the values."""
    ids = list(range(100_000))
    store.overwrite_partitions(REF, frame(D1, ids[:60_000]), partition_by="day", values=[D1])
    store.overwrite_partitions(REF, frame(D2, ids[60_000:]), partition_by="day", values=[D2])
    before = store.version(REF)
    doomed = ids[::2]  # 50,000 keys over both days
    result = store.delete(REF, col("id").is_in(doomed) & (col("day") == D1))
    assert result.rows_deleted == 30_000
    assert store.version(REF) == before + 1
    left = content(store)
    assert left.height == 70_000
    assert left.filter(pl.col("day") == D1).get_column("id").to_list() == ids[1:60_000:2]
    assert left.filter(pl.col("day") == D2).height == 40_000  # the other day was outside the predicate


def test_time_travel_by_version_and_timestamp_and_history(store):
    store.overwrite_partitions(REF, frame(D1, [1]), partition_by="day", values=[D1])
    v1 = store.version(REF)
    # object stores keep modification times to the second, and Delta reads commit times from them
    time.sleep(1.1)
    between = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    store.overwrite_partitions(REF, frame(D1, [2]), partition_by="day", values=[D1])
    assert content(store).get_column("id").to_list() == [2]
    assert content(store, version=v1).get_column("id").to_list() == [1]
    assert content(store, as_of=between).get_column("id").to_list() == [1]
    history = store.history(REF)
    assert history[0].version == store.version(REF) > v1
    assert [c.version for c in history] == sorted((c.version for c in history), reverse=True)
    with pytest.raises(TableNotFoundError):
        store.read(REF, version=999).collect()


def test_restore_is_a_new_commit_with_the_old_content(store):
    seed(store)
    v_seed = store.version(REF)
    before = content(store)
    store.overwrite_partitions(
        REF, frame(D1, [8]).with_columns(pl.lit("x").alias("extra")), partition_by="day", values=[D1]
    )
    store.delete(REF, col("id") == 3)
    result = store.restore(REF, version=v_seed)
    assert result.operation == "RESTORE" and result.version > v_seed
    assert content(store).equals(before)
    assert len(store.history(REF)) >= 4  # history kept


def test_schema_evolution_adds_nullable_columns(store):
    seed(store)
    result = store.overwrite_partitions(
        REF, frame(D3, [9]).with_columns(pl.lit(1.5).alias("score")), partition_by="day", values=[D3]
    )
    assert result.columns_added == ("score",)
    got = content(store)
    assert got.filter(pl.col("id") == 9).get_column("score").item() == 1.5
    assert got.filter(pl.col("id") != 9).get_column("score").null_count() == 4
    # a later write without the column keeps it (as nulls)
    store.overwrite_partitions(REF, frame(D3, [10]), partition_by="day", values=[D3])
    assert "score" in store.schema(REF).names


def test_incompatible_type_change_names_column_and_types_and_writes_nothing(store):
    seed(store)
    version, before = store.version(REF), content(store)
    bad = frame(D1, [1]).with_columns(pl.col("id").cast(pl.String))
    with pytest.raises(SchemaMismatchError, match=r"column 'id' has type int64 in the table but string"):
        store.overwrite_partitions(REF, bad, partition_by="day", values=[D1])
    assert store.version(REF) == version
    assert content(store).equals(before)


@pytest.mark.parametrize("value", ["it's", "x'; DELETE FROM t; --", "a;b", "--", "'", "O''Brien"])
def test_partition_values_with_quotes_and_comments_neither_break_nor_inject(store, value):
    ref = TableRef("bronze", "test", "strings")
    base = pl.DataFrame({"k": ["keep", value], "n": [1, 2]})
    store.overwrite_partitions(ref, base, partition_by="k", values=["keep", value])
    store.overwrite_partitions(ref, pl.DataFrame({"k": [value], "n": [3]}), partition_by="k", values=[value])
    got = store.read(ref).collect().sort("k")
    assert dict(zip(got.get_column("k"), got.get_column("n"))) == {"keep": 1, value: 3}
    store.delete(ref, col("k") == value)
    assert store.read(ref).collect().get_column("k").to_list() == ["keep"]


def test_info_and_listing(store, lake):
    seed(store)
    info = store.info(REF)
    assert (info.rows, info.format, info.partition_by) == (4, store.format, ("day",))
    assert info.files >= 2 and info.size_bytes > 0
    assert info.uri.endswith("/silver/test/events")
    assert REF in store.list_tables()
    assert [i.ref for i in lake.tables()] == [REF]


def test_missing_table_is_a_clear_error(store):
    with pytest.raises(TableNotFoundError, match=r"silver\.test\.events"):
        store.history(REF)
    assert not store.exists(REF)


_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    os.environ["LAKEHOUSE_HOME"] = sys.argv[1]
    os.environ["LAKEHOUSE_TABLE_FORMAT"] = sys.argv[2]
    import polars as pl, pyarrow as pa
    from lakehouse.naming import TableRef
    from lakehouse.tables import Lake

    def announce_and_hang():
        print("WRITING", flush=True)
        time.sleep(120)

    if sys.argv[2] == "delta":
        import lakehouse.tables.delta as delta
        original = delta.write_deltalake
        def slow_write(uri, data, **kw):
            batches = data.to_batches(max_chunksize=1000)
            def stream():
                for i, batch in enumerate(batches):
                    if i == 2:
                        announce_and_hang()  # data files are being written; nothing committed
                    yield batch
            return original(uri, pa.RecordBatchReader.from_batches(data.schema, stream()), **kw)
        delta.write_deltalake = slow_write
    else:
        from pyiceberg.table import Transaction
        def hang_before_commit(self, *a, **kw):
            announce_and_hang()  # data files are written; the catalog pointer is not swapped yet
        Transaction.commit_transaction = hang_before_commit

    import datetime as dt
    store = Lake().store()
    n = 20000
    data = pl.DataFrame({"day": [dt.date(2024, 1, 1)] * n, "id": list(range(n)), "value": ["killed"] * n})
    store.overwrite(TableRef("silver", "test", "events"), data)
    """
)


def test_a_killed_writer_leaves_the_previous_version_readable(store, settings, table_format):
    store.overwrite(REF, pl.DataFrame({"day": [D1, D2], "id": [1, 2], "value": ["a", "b"]}))
    version, before = store.version(REF), content(store)
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(settings.home), table_format],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "WRITING", child.stderr.read()  # type: ignore[union-attr]
        child.kill()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert store.version(REF) == version
    assert content(store).equals(before)
    # and the table still takes writes
    store.append(REF, pl.DataFrame({"day": [D3], "id": [3], "value": ["c"]}))
    assert content(store).get_column("id").to_list() == [1, 2, 3]


def test_a_restore_that_loses_a_race_is_planned_again_and_commits(store, table_format, monkeypatch):
    # another writer commits between the restore's read of the table and its commit: the restore
    # must start again from the new version (a lost race is not "table not found")
    seed(store)
    v_seed = store.version(REF)
    before = content(store)
    store.delete(REF, col("id") == 3)
    raced: list[int | None] = []

    def race_once() -> None:
        if not raced:
            raced.append(None)  # before the append: it runs the patched code too
            store.append(REF, frame(D1, [77]))
            raced[0] = store.version(REF)

    if table_format == "delta":
        from deltalake import DeltaTable

        original = DeltaTable.restore

        def racing_restore(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            race_once()
            return original(self, *args, **kwargs)

        monkeypatch.setattr(DeltaTable, "restore", racing_restore)
    else:
        import lakehouse.tables.iceberg as iceberg_module

        original_conform = iceberg_module.conform

        def racing_conform(*args, **kwargs):  # type: ignore[no-untyped-def]
            race_once()
            return original_conform(*args, **kwargs)

        monkeypatch.setattr(iceberg_module, "conform", racing_conform)
    result = store.restore(REF, version=v_seed)
    assert raced and result.operation == "RESTORE" and result.version > raced[0]  # type: ignore[operator]
    assert content(store).equals(before)
