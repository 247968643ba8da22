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


def test_watermark_mode_captures_each_change_once(pg, table, store):
    options = CdcOptions(table=f"public.{table}", primary_key=["id"], mode="watermark", deleted_flag="deleted_at")
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
