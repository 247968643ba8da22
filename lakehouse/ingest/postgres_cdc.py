"""Change data capture from a PostgreSQL table into bronze, exactly once.

Two modes:

``logical`` (preferred; needs ``wal_level = logical``)
    A logical replication slot with the built-in ``test_decoding`` plugin. Changes are *peeked*
    (not consumed), every change lands in bronze with its LSN, and only after the bronze commit
    is the slot advanced. The position is the largest LSN already in bronze, so the bronze write
    and the position commit together: a crash before the commit re-reads the same changes, a
    crash after it filters them out. INSERT, UPDATE and DELETE are captured as they happened.
    Use ``REPLICA IDENTITY FULL`` on the table for complete before-images of deletes.

``watermark`` (the documented fallback)
    Rows with ``updated_at`` at or after the largest ``updated_at`` in bronze, deduplicated
    against bronze by (key, updated_at); a soft-delete column marks deletes; keys that vanished
    from the table are emitted as deletes. Misses intermediate updates between two captures.

Replication lag is reported with every capture. SQL values are always bound parameters;
identifiers go through :func:`lakehouse.sql.quote_ident`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from lakehouse.exceptions import LakehouseError
from lakehouse.naming import TableRef
from lakehouse.sql import quote_ident, quote_qualified
from lakehouse.tables import TableStore

__all__ = [
    "CdcError",
    "CdcOptions",
    "CdcResult",
    "advance",
    "capture",
    "lsn_to_int",
    "parse_test_decoding",
    "write_capture",
]

_CHANGE = re.compile(r"^table (?P<table>\S+): (?P<op>INSERT|UPDATE|DELETE): (?P<body>.*)$", re.S)
_VALUE = re.compile(r'(?P<name>"(?:[^"]|"")*"|[^\s\[]+)\[(?P<type>[^\]]+)\]:(?P<value>\'(?:[^\']|\'\')*\'|[^\s]+)')


class CdcError(LakehouseError):
    """Capturing changes from PostgreSQL failed (connection, slot, or server configuration)."""


@dataclass(frozen=True)
class CdcOptions:
    table: str  # schema.table
    primary_key: Sequence[str]
    dsn_env: str = "LAKEHOUSE_CDC_DSN"
    mode: Literal["auto", "logical", "watermark"] = "auto"
    slot: str | None = None
    updated_at: str = "updated_at"
    deleted_flag: str | None = None  # a soft-delete column (non-null = deleted)

    @property
    def slot_name(self) -> str:
        return self.slot or "lakehouse_" + re.sub(r"[^a-z0-9_]", "_", self.table.lower())


@dataclass
class CdcResult:
    rows: pl.DataFrame
    mode: str
    lag: dict[str, Any]
    advance_to: str | None = None  # logical: LSN to advance the slot to after the bronze commit


def lsn_to_int(lsn: str) -> int:
    """``16/B374D848`` -> 0x16B374D848 (LSNs compare as 64-bit integers)."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _unquote(raw: str) -> str | None:
    if raw == "null":
        return None
    if raw.startswith("'") and raw.endswith("'"):
        return raw[1:-1].replace("''", "'")
    return raw


def parse_test_decoding(data: str) -> tuple[str, str, dict[str, str | None]] | None:
    """One ``test_decoding`` change line -> (table, op, {column: text value}), None for BEGIN/COMMIT.

    For an UPDATE with an old key (``old-key: ... new-tuple: ...``) the new tuple is returned.
    """
    match = _CHANGE.match(data)
    if not match:
        return None
    body = match.group("body")
    if "new-tuple:" in body:
        body = body.split("new-tuple:", 1)[1]
    values: dict[str, str | None] = {}
    for m in _VALUE.finditer(body):
        name = m.group("name")
        if name.startswith('"'):
            name = name[1:-1].replace('""', '"')
        values[name] = _unquote(m.group("value"))
    return match.group("table"), match.group("op").lower(), values


def _connect(options: CdcOptions, env: Mapping[str, str] | None = None) -> Any:
    import psycopg2

    env = os.environ if env is None else env
    dsn = env.get(options.dsn_env)
    if not dsn:
        raise CdcError(f"set {options.dsn_env} to the PostgreSQL connection string (e.g. host=... dbname=... user=...)")
    try:
        return psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        raise CdcError(f"cannot connect to PostgreSQL for {options.table}: {str(exc).strip()}") from None


def _wal_level(conn: Any) -> str:
    with conn.cursor() as cur:
        cur.execute("SHOW wal_level")
        return str(cur.fetchone()[0])


def _position(store: TableStore, ref: TableRef, column: str) -> Any:
    if not store.exists(ref) or column not in store.schema(ref).names:
        return None
    return store.read(ref, columns=[column]).select(pl.col(column).max()).collect().item()


def _capture_logical(conn: Any, options: CdcOptions, since_lsn: int | None) -> CdcResult:
    qualified = options.table if "." in options.table else f"public.{options.table}"
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (options.slot_name,))
        if cur.fetchone() is None:
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (options.slot_name,))
            conn.commit()
        cur.execute(
            "SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_changes(%s, NULL, NULL, 'include-timestamp', '1')",
            (options.slot_name,),
        )
        changes = cur.fetchall()
        cur.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = %s",
            (options.slot_name,),
        )
        lag_bytes = int(cur.fetchone()[0] or 0)
    rows: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    last_lsn: str | None = None
    for lsn, xid, data in changes:
        last_lsn = lsn
        if data.startswith("COMMIT"):
            stamp = data.split("(at ", 1)[1].rstrip(")") if "(at " in data else None
            for row in pending:
                row["_commit_ts"] = stamp
            rows.extend(pending)
            pending = []
            continue
        parsed = parse_test_decoding(data)
        if parsed is None or parsed[0] != qualified:
            continue
        _, op, values = parsed
        position = lsn_to_int(lsn)
        if since_lsn is not None and position <= since_lsn:
            continue  # already in bronze (committed before a crash, slot not yet advanced)
        pending.append(
            {**values, "_op": op, "_lsn": position, "_xid": int(xid), "_change": json.dumps(values, sort_keys=True)}
        )
    frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    if frame.height:
        frame = frame.with_columns(
            pl.col("_commit_ts").str.to_datetime(strict=False, time_zone="UTC", time_unit="us").alias("_commit_ts")
        )
    lag_seconds = None
    newest = frame.get_column("_commit_ts").max() if frame.height else None
    if isinstance(newest, dt.datetime):
        lag_seconds = (dt.datetime.now(dt.UTC) - newest).total_seconds()
    return CdcResult(
        rows=frame, mode="logical", lag={"lag_bytes": lag_bytes, "lag_seconds": lag_seconds}, advance_to=last_lsn
    )


def _capture_watermark(conn: Any, options: CdcOptions, since: Any, known: pl.DataFrame) -> CdcResult:
    schema, _, name = options.table.rpartition(".")
    target = quote_qualified(schema or "public", name)
    with conn.cursor() as cur:
        if since is None:
            cur.execute(f"SELECT * FROM {target}")
        else:
            cur.execute(f"SELECT * FROM {target} WHERE {quote_ident(options.updated_at)} >= %s", (since,))
        names = [d[0] for d in cur.description]
        fetched = cur.fetchall()
        keys = ", ".join(quote_ident(k) for k in options.primary_key)
        cur.execute(f"SELECT {keys} FROM {target}")
        present = {tuple(r) for r in cur.fetchall()}
    records = []
    for values in fetched:
        row = {
            n: (v.isoformat() if hasattr(v, "isoformat") else (str(v) if v is not None else None))
            for n, v in zip(names, values, strict=True)
        }
        deleted = options.deleted_flag is not None and row.get(options.deleted_flag) is not None
        records.append({**row, "_op": "delete" if deleted else "upsert"})
    frame = pl.DataFrame(records, infer_schema_length=None) if records else pl.DataFrame()
    if frame.height and known.height:  # already captured: same key and updated_at
        frame = frame.join(
            known.select([*options.primary_key, options.updated_at]).cast(pl.String),
            on=[*options.primary_key, options.updated_at],
            how="anti",
        )
    # hard deletes: keys whose latest bronze state is not a delete but which are gone from the table
    if known.height:
        latest = known.sort("_ingested_at", "_source_line").unique(
            list(options.primary_key), keep="last"
        )  # capture order
        alive = latest.filter(pl.col("_op") != "delete")
        gone = [
            r
            for r in alive.select(list(options.primary_key)).rows()
            if tuple(str(v) for v in r) not in {tuple(str(v) for v in p) for p in present}
        ]
        if gone:
            deletes = pl.DataFrame(
                [dict(zip(options.primary_key, (str(v) for v in r), strict=True)) | {"_op": "delete"} for r in gone]
            )
            frame = pl.concat([frame, deletes], how="diagonal_relaxed") if frame.height else deletes
    watermark = (
        frame.get_column(options.updated_at).max() if frame.height and options.updated_at in frame.columns else since
    )
    lag = None
    if watermark:
        lag = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(str(watermark)).astimezone(dt.UTC)).total_seconds()
    return CdcResult(rows=frame, mode="watermark", lag={"lag_seconds": lag})


def capture(
    store: TableStore, ref: TableRef, options: CdcOptions, *, env: Mapping[str, str] | None = None
) -> CdcResult:
    """Read the changes not yet in bronze table ``ref`` (nothing is written here)."""
    conn = _connect(options, env)
    try:
        mode = options.mode
        if mode == "auto":
            mode = "logical" if _wal_level(conn) == "logical" else "watermark"
        if mode == "logical":
            if _wal_level(conn) != "logical":
                raise CdcError(
                    "logical decoding needs wal_level = logical (ALTER SYSTEM SET wal_level = logical; restart)"
                )
            return _capture_logical(conn, options, _position(store, ref, "_lsn"))
        known = pl.DataFrame()
        if store.exists(ref):
            known = store.read(
                ref, columns=[*options.primary_key, options.updated_at, "_op", "_ingested_at", "_source_line"]
            ).collect()
        return _capture_watermark(conn, options, _position(store, ref, options.updated_at), known)
    finally:
        conn.close()


def advance(options: CdcOptions, lsn: str, *, env: Mapping[str, str] | None = None) -> None:
    """Let the server drop WAL up to ``lsn`` (call only after the bronze commit)."""
    conn = _connect(options, env)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (options.slot_name, lsn))
        conn.commit()
    finally:
        conn.close()


def write_capture(store: TableStore, ref: TableRef, result: CdcResult, *, source: str, ingested_at: dt.datetime) -> int:
    """Append the captured changes to bronze with the lineage columns; returns rows written."""
    from lakehouse.ingest.lineage import with_lineage

    if result.rows.height == 0:
        return 0
    data_columns = [c for c in result.rows.columns if not c.startswith("_")]
    order = "_lsn" if "_lsn" in result.rows.columns else None
    frame = result.rows.with_columns(
        pl.lit(source).alias("_source_file"),
        (pl.col("_lsn") if order else pl.int_range(1, result.rows.height + 1)).cast(pl.Int64).alias("_source_line"),
        pl.lit(ingested_at.date()).alias("_partition_date"),
    )
    frame = with_lineage(frame, data_columns=[*data_columns, "_op"], ingested_at=ingested_at)
    store.append(ref, frame, partition_by=["_partition_date"], commit_metadata={"lakehouse_cdc_mode": result.mode})
    return frame.height
