"""CDC from a real PostgreSQL table into bronze: each change exactly once, crashes included."""

import datetime as dt
import os
import shutil
import subprocess
import uuid

import polars as pl
import pytest
from conftest import PROJECT_ROOT, port_open, require

from lakehouse.ingest.postgres_cdc import CdcOptions, advance, capture, lsn_to_int, parse_test_decoding, write_capture
from lakehouse.naming import TableRef

# one shared server, which the CDC test may restart: these run in one xdist worker
pytestmark = pytest.mark.xdist_group("postgres")

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
REF = TableRef("bronze", "crm", "accounts")


@pytest.fixture
def pg(monkeypatch):
    require(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg2

    monkeypatch.setenv("LAKEHOUSE_CDC_DSN", DSN)
    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def table(pg):
    name = f"cdc_{uuid.uuid4().hex[:8]}"
    with pg.cursor() as cur:
        cur.execute(
            f"CREATE TABLE public.{name} (id int PRIMARY KEY, name text, balance numeric(12,2), "
            "updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz)"
        )
        cur.execute(f"ALTER TABLE public.{name} REPLICA IDENTITY FULL")
    yield name
    import psycopg2

    with psycopg2.connect(DSN) as conn, conn.cursor() as cur:  # the logical test may have restarted the server
        cur.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            (f"lakehouse_public_{name}",),
        )
        cur.execute(f"DROP TABLE IF EXISTS public.{name}")


def execute(pg, *statements):
    with pg.cursor() as cur:
        for sql, params in statements:
            cur.execute(sql, params)


def run(store, options, *, fail_write=False, skip_advance=False):
    result = capture(store, REF, options)
    if fail_write:
        raise RuntimeError("killed between reading the changes and committing them")
    written = write_capture(store, REF, result, source=f"postgres:{options.table}", ingested_at=dt.datetime.now(dt.UTC))
    if result.advance_to and not skip_advance:
        advance(options, result.advance_to)
    return written, result


def test_parse_test_decoding_lines():
    line = "table public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:1 name[text]:'O''Brien; -- x' balance[numeric]:null"
    assert parse_test_decoding(line) == ("public.t", "update", {"id": "1", "name": "O'Brien; -- x", "balance": None})
    assert parse_test_decoding("BEGIN 1234") is None
    assert lsn_to_int("16/B374D848") == 0x16B374D848


def _seed(pg, table: str) -> None:
    """Rows 1, 2 and 3, stamped 10:01, 10:02 and 10:03 on 2024-01-01."""
    execute(
        pg,
        *[
            (
                f"INSERT INTO public.{table} (id, name, balance, updated_at) VALUES (%s, %s, %s, %s)",
                (i, f"n{i}", i * 10, dt.datetime(2024, 1, 1, 10, i, tzinfo=dt.UTC)),
            )
            for i in (1, 2, 3)
        ],
    )


def test_watermark_mode_captures_each_change_once(pg, table, store):
    options = CdcOptions(table=f"public.{table}", primary_key=["id"], mode="watermark", deleted_flag="deleted_at")
    _seed(pg, table)
    assert run(store, options)[0] == 3
    execute(
        pg,
        (
            f"UPDATE public.{table} SET balance = 99, updated_at = %s WHERE id = 1",
            (dt.datetime(2024, 1, 2, tzinfo=dt.UTC),),
        ),
        (
            f"UPDATE public.{table} SET deleted_at = now(), updated_at = %s WHERE id = 2",
            (dt.datetime(2024, 1, 2, 1, tzinfo=dt.UTC),),
        ),
        (f"DELETE FROM public.{table} WHERE id = 3", ()),
    )
    with pytest.raises(RuntimeError):
        run(store, options, fail_write=True)  # crash: nothing reached bronze
    written, result = run(store, options)
    assert written == 3 and result.lag["lag_seconds"] is not None
    assert run(store, options)[0] == 0  # nothing new
    rows = store.read(REF).collect().sort("_source_line")
    assert sorted(zip(rows.get_column("id"), rows.get_column("_op"), strict=True)) == sorted(
        [("1", "upsert"), ("2", "upsert"), ("3", "upsert"), ("1", "upsert"), ("2", "delete"), ("3", "delete")]
    )


def _enable_logical(pg) -> bool:
    """Switch the local server to wal_level=logical (a restart through the project's services
    script, deploy/local/services.sh) if it is not already."""
    with pg.cursor() as cur:
        cur.execute("SHOW wal_level")
        if cur.fetchone()[0] == "logical":
            return True
        if os.geteuid() != 0 or not shutil.which("pg_ctlcluster"):
            return False
        cur.execute("ALTER SYSTEM SET wal_level = logical")
    script = PROJECT_ROOT / "deploy" / "local" / "services.sh"
    subprocess.run(["bash", str(script), "restart-postgres"], check=True, timeout=120)
    return port_open("127.0.0.1", 5432)


def test_logical_decoding_captures_insert_update_delete_exactly_once(pg, table, store, monkeypatch):
    if not _enable_logical(pg):
        require(False, "cannot switch PostgreSQL to wal_level=logical here")
    import psycopg2

    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    options = CdcOptions(table=f"public.{table}", primary_key=["id"], mode="logical")
    capture(store, REF, options)  # creates the slot: changes from here on are captured
    execute(
        conn,
        (f"INSERT INTO public.{table} (id, name, balance) VALUES (1, 'Ann', 10.50), (2, 'Bob', 20)", ()),
        (f"UPDATE public.{table} SET balance = 11 WHERE id = 1", ()),
        (f"DELETE FROM public.{table} WHERE id = 2", ()),
    )
    with pytest.raises(RuntimeError):
        run(store, options, fail_write=True)  # crash before the bronze commit
    written, result = run(store, options, skip_advance=True)  # crash after the commit, before the slot moved
    assert written == 4 and result.mode == "logical" and result.lag["lag_bytes"] >= 0
    assert run(store, options)[0] == 0  # the same changes again: filtered by the LSN in bronze
    rows = store.read(REF).collect().sort("_lsn")
    assert rows.select("_op", "id", "balance").rows() == [
        ("insert", "1", "10.50"),
        ("insert", "2", "20.00"),
        ("update", "1", "11.00"),
        ("delete", "2", "20.00"),
    ]
    assert rows.get_column("_lsn").is_sorted() and rows.get_column("_commit_ts").null_count() == 0
    execute(conn, (f"INSERT INTO public.{table} (id, name) VALUES (3, 'Cy')", ()))
    assert run(store, options)[0] == 1
    conn.close()
    assert pl.Series(store.read(REF).collect().get_column("_lsn")).n_unique() == 5


def _logical_options(pg, table):
    if not _enable_logical(pg):
        require(False, "cannot switch PostgreSQL to wal_level=logical here")
    return CdcOptions(table=f"public.{table}", primary_key=["id"], mode="logical")


def _transaction():
    """A connection whose statements stay in one open transaction until ``commit()``."""
    import psycopg2

    conn = psycopg2.connect(DSN)
    conn.autocommit = False
    return conn


def _captured(store):
    """Bronze as (op, id, balance), in commit order."""
    rows = store.read(REF).collect()
    order = ["_commit_lsn", "_lsn"] if "_commit_lsn" in rows.columns else ["_lsn"]
    return rows.sort(order).select("_op", "id", "balance").rows()


def test_logical_decoding_keeps_a_transaction_that_commits_after_a_capture(pg, table, store):
    """T1 begins and writes, T2 writes and commits, capture, T1 writes again and commits,
    capture: T1's changes have LSNs below T2's, yet they were never in bronze."""
    options = _logical_options(pg, table)
    capture(store, REF, options)  # creates the slot
    t1, t2 = _transaction(), _transaction()
    try:
        execute(t1, (f"INSERT INTO public.{table} (id, name, balance) VALUES (1, 'Ann', 10)", ()))
        execute(
            t2,
            (f"INSERT INTO public.{table} (id, name, balance) VALUES (2, 'Bob', 20)", ()),
            (f"UPDATE public.{table} SET balance = 21 WHERE id = 2", ()),
        )
        t2.commit()
        assert run(store, options)[0] == 2  # T2 only: T1 is still open
        execute(t1, (f"UPDATE public.{table} SET balance = 11 WHERE id = 1", ()))
        t1.commit()
        assert run(store, options)[0] == 2  # T1's insert (LSN below T2's) and its update
        assert run(store, options)[0] == 0
    finally:
        t1.close()
        t2.close()
    expected = [("insert", "2", "20.00"), ("update", "2", "21.00"), ("insert", "1", "10.00"), ("update", "1", "11.00")]
    assert sorted(_captured(store)) == sorted(expected)
    assert _captured(store) == expected  # commit order: T2 before T1
    assert store.read(REF).collect().get_column("_lsn").n_unique() == 4


def test_logical_decoding_crash_after_bronze_commit_with_interleaved_transactions(pg, table, store):
    """The crash variants of the interleaved case: a rerun after a crash before the bronze commit
    or between the bronze commit and the slot advance writes nothing twice and loses nothing."""
    options = _logical_options(pg, table)
    capture(store, REF, options)
    t1, t2 = _transaction(), _transaction()
    try:
        execute(t1, (f"INSERT INTO public.{table} (id, name, balance) VALUES (1, 'Ann', 10)", ()))
        execute(t2, (f"INSERT INTO public.{table} (id, name, balance) VALUES (2, 'Bob', 20)", ()))
        t2.commit()
        with pytest.raises(RuntimeError):
            run(store, options, fail_write=True)  # crash before the bronze commit
        assert run(store, options, skip_advance=True)[0] == 1  # T2; crash before the slot moved
        execute(
            t1,
            (f"UPDATE public.{table} SET balance = 22 WHERE id = 2", ()),
            (f"DELETE FROM public.{table} WHERE id = 1", ()),
        )
        t1.commit()
        # the slot still hands out T2 (already in bronze) and now T1 (begun before T2, not in bronze)
        assert run(store, options, skip_advance=True)[0] == 3
        assert run(store, options)[0] == 0  # both again: nothing new, and now the slot moves
        assert run(store, options)[0] == 0
    finally:
        t1.close()
        t2.close()
    execute(pg, (f"INSERT INTO public.{table} (id, name, balance) VALUES (3, 'Cy', 30)", ()))
    assert run(store, options)[0] == 1
    assert _captured(store) == [
        ("insert", "2", "20.00"),
        ("insert", "1", "10.00"),
        ("update", "2", "22.00"),
        ("delete", "1", "10.00"),
        ("insert", "3", "30.00"),
    ]
    with pg.cursor() as cur:  # the slot is past everything in bronze: nothing is handed out again
        cur.execute(
            "SELECT count(*) FROM pg_logical_slot_peek_changes(%s, NULL, NULL) WHERE data LIKE 'table %%'",
            (options.slot_name,),
        )
        assert cur.fetchone()[0] == 0


def test_watermark_mode_keeps_a_row_committed_after_a_later_watermark(pg, table, store):
    """A long transaction stamps ``updated_at`` (e.g. ``now()``, its start time) before another
    transaction that commits and is captured first: the late row is older than the watermark."""
    options = CdcOptions(table=f"public.{table}", primary_key=["id"], mode="watermark", deleted_flag="deleted_at")
    _seed(pg, table)
    assert run(store, options)[0] == 3
    t1 = _transaction()
    try:
        execute(
            t1,
            (
                f"UPDATE public.{table} SET balance = 11, updated_at = %s WHERE id = 1",
                (dt.datetime(2024, 1, 2, tzinfo=dt.UTC),),
            ),
            (
                f"INSERT INTO public.{table} (id, name, balance, updated_at) VALUES (4, 'n4', 40, %s)",
                (dt.datetime(2024, 1, 2, 1, tzinfo=dt.UTC),),
            ),
        )
        execute(
            pg,
            (
                f"UPDATE public.{table} SET balance = 22, updated_at = %s WHERE id = 2",
                (dt.datetime(2024, 1, 3, tzinfo=dt.UTC),),
            ),
        )
        assert run(store, options)[0] == 1  # id 2; T1 is still open
        t1.commit()
        assert run(store, options)[0] == 2  # T1's rows, stamped before the watermark (2024-01-03)
        assert run(store, options)[0] == 0
    finally:
        t1.close()
    rows = store.read(REF).collect()
    assert sorted(rows.select("id", "_op", "balance").rows()) == sorted(
        [
            ("1", "upsert", "10.00"),
            ("2", "upsert", "20.00"),
            ("3", "upsert", "30.00"),
            ("2", "upsert", "22.00"),
            ("1", "upsert", "11.00"),
            ("4", "upsert", "40.00"),
        ]
    )


def test_dagster_asset_captures_interleaved_transactions_once(pg, table, store, settings):
    """The bronze asset a ``format: postgres`` source becomes: each materialization writes the
    transactions committed since the last one, in commit order, and moves the slot."""
    import dagster as dg

    from lakehouse.ingest.factory import build_source
    from lakehouse.ingest.sources import SourceSpec
    from lakehouse.resource import LakeResource

    options = _logical_options(pg, table)
    spec = SourceSpec(
        name=REF.name,
        domain=REF.domain,
        format="postgres",
        description="Accounts of the CRM, every change.",
        owner="team:crm",
        primary_key=("id",),
        options={"table": options.table, "mode": "logical"},
    )
    asset, checks = build_source(spec)
    assert spec.bronze == REF and checks == []
    resources = {"lake": LakeResource.from_settings(settings)}

    def materialize() -> dict:
        result = dg.materialize([asset], resources=resources)
        assert result.success
        return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}

    assert materialize()["rows_captured"] == 0  # creates the slot
    t1 = _transaction()
    try:
        execute(t1, (f"INSERT INTO public.{table} (id, name, balance) VALUES (1, 'Ann', 10)", ()))
        execute(pg, (f"INSERT INTO public.{table} (id, name, balance) VALUES (2, 'Bob', 20)", ()))
        first = materialize()
        assert (first["rows_captured"], first["cdc_mode"]) == (1, "logical")
        assert first["replication_lag_bytes"] >= 0
        t1.commit()
        assert materialize()["rows_captured"] == 1
        assert materialize()["rows_captured"] == 0
    finally:
        t1.close()
    assert _captured(store) == [("insert", "2", "20.00"), ("insert", "1", "10.00")]
    declared = asset.metadata_by_key[dg.AssetKey(REF.path)]["dagster/column_schema"].columns
    assert {"_lsn", "_commit_lsn", "_xid", "_commit_ts"} <= {c.name for c in declared}
    assert {"_lsn", "_commit_lsn", "_xid", "_commit_ts"} <= set(store.schema(REF).names)


def test_logical_decoding_after_a_crash_of_a_capture_that_predates_commit_lsn(pg, table, store):
    """Bronze written before ``_commit_lsn`` existed (only per-change ``_lsn``), then a crash
    before the slot moved: the rerun recognises that transaction by its change LSNs."""
    options = _logical_options(pg, table)
    capture(store, REF, options)
    t1 = _transaction()
    try:
        execute(t1, (f"INSERT INTO public.{table} (id, name, balance) VALUES (1, 'Ann', 10)", ()))
        execute(pg, (f"INSERT INTO public.{table} (id, name, balance) VALUES (2, 'Bob', 20)", ()))
        old = capture(store, REF, options)
        old.rows = old.rows.drop("_commit_lsn")  # what the previous release wrote
        assert write_capture(store, REF, old, source="postgres", ingested_at=dt.datetime.now(dt.UTC)) == 1
        t1.commit()  # ... and crashed before the slot advance
        assert run(store, options)[0] == 1  # T1 only: T2 is in bronze (by its change LSN)
        assert run(store, options)[0] == 0
    finally:
        t1.close()
    assert sorted(_captured(store)) == [("insert", "1", "10.00"), ("insert", "2", "20.00")]
    rows = store.read(REF).collect().sort("_lsn")
    assert rows.get_column("_commit_lsn").is_null().to_list() == [False, True]  # id 1 (new), id 2 (old)


def test_watermark_mode_limits(pg, table, store):
    """What the fallback cannot see, pinned so a change of behaviour is noticed: only the latest
    committed state between two captures, and nothing of an update that keeps ``updated_at``."""
    options = CdcOptions(table=f"public.{table}", primary_key=["id"], mode="watermark")
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    execute(pg, (f"INSERT INTO public.{table} (id, name, balance, updated_at) VALUES (1, 'a', 1, %s)", (stamp,)))
    assert run(store, options)[0] == 1
    execute(
        pg,
        (f"UPDATE public.{table} SET balance = 2, updated_at = %s WHERE id = 1", (stamp + dt.timedelta(hours=1),)),
        (f"UPDATE public.{table} SET balance = 3, updated_at = %s WHERE id = 1", (stamp + dt.timedelta(hours=2),)),
    )
    assert run(store, options)[0] == 1  # the latest state only: balance 2 is never seen
    execute(pg, (f"UPDATE public.{table} SET balance = 4 WHERE id = 1", ()))  # updated_at unchanged
    assert run(store, options)[0] == 0
    rows = store.read(REF).collect()
    assert sorted(rows.select("id", "_op", "balance").rows()) == [("1", "upsert", "1.00"), ("1", "upsert", "3.00")]
