"""Change data capture from a PostgreSQL table into bronze, exactly once.

Two modes:

``logical`` (preferred; needs ``wal_level = logical``)
    A logical replication slot with the built-in ``test_decoding`` plugin. Changes are *peeked*
    (not consumed), every change lands in bronze with its own LSN (``_lsn``) and the LSN of its
    transaction's commit (``_commit_lsn``), and only after the bronze commit is the slot advanced.
    The slot hands out whole committed transactions in commit order, so the position is the
    largest *commit* LSN already in bronze: a transaction that began before another one but
    committed after it was captured has smaller per-change LSNs, yet a larger commit LSN, so it is
    never mistaken for "already in bronze". The bronze write and the position commit together: a
    crash before the commit re-reads the same transactions, a crash after it (slot not yet
    advanced) filters them out by commit LSN. INSERT, UPDATE and DELETE are captured as they
    happened; ``(_commit_lsn, _lsn)`` is the commit order (per key ``_lsn`` alone is, too: a row is
    locked until the transaction that changed it ends). Use ``REPLICA IDENTITY FULL`` on the table
    for complete before-images of deletes. Run one capture per slot at a time (the asset's pool).

``watermark`` (the documented fallback)
    One repeatable-read snapshot of the table's (key, ``updated_at``) pairs is compared with the
    pairs already in bronze: every pair bronze has not seen is captured, whatever its age, so a
    row stamped by a long transaction that commits after a capture with a later ``updated_at``
    is still found (a plain "``updated_at`` at or after the largest in bronze" filter loses it).
    A soft-delete column marks deletes; keys that vanished from the table are emitted as deletes.
    Limits: each capture scans the key and ``updated_at`` columns of the whole table; only the
    latest committed state of a row is seen, so intermediate updates between two captures are
    missed; an update that leaves ``updated_at`` unchanged (or sets it to a value this key already
    had) is invisible; a hard delete carries no before-image and no time.

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


def _legacy_lsns(store: TableStore, ref: TableRef, since: int) -> set[int]:
    """Per-change LSNs (at or after ``since``) of bronze rows written before ``_commit_lsn`` existed.

    Those rows carry no commit position; a transaction left in the slot by a crash between such a
    write and the slot advance is recognised by its change LSNs instead (each WAL record has its
    own LSN, so membership is exact).
    """
    if not store.exists(ref):
        return set()
    names = store.schema(ref).names
    if "_lsn" not in names:
        return set()
    frame = store.read(ref, columns=[c for c in ("_lsn", "_commit_lsn") if c in names])
    if "_commit_lsn" in names:
        frame = frame.filter(pl.col("_commit_lsn").is_null())
    found = frame.filter(pl.col("_lsn") >= since).select("_lsn").collect().get_column("_lsn")
    return {int(v) for v in found.drop_nulls()}


def _capture_logical(conn: Any, options: CdcOptions, store: TableStore, ref: TableRef) -> CdcResult:
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
    # bronze holds exactly the transactions (of this table) committed at or before this position
    captured_upto = _position(store, ref, "_commit_lsn")
    legacy: set[int] | None = None
    rows: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    last_commit: str | None = None
    for lsn, xid, data in changes:
        if data.startswith("BEGIN"):
            pending = []
            continue
        if data.startswith("COMMIT"):
            last_commit = lsn
            commit_lsn = lsn_to_int(lsn)  # the end of the commit record: increases in commit order
            if not pending or (captured_upto is not None and commit_lsn <= captured_upto):
                pending = []  # nothing of this table, or already in bronze (slot not advanced after a crash)
                continue
            if legacy is None:  # the oldest change the slot handed out bounds what can be in question
                legacy = _legacy_lsns(store, ref, min(lsn_to_int(change[0]) for change in changes))
            if legacy and any(row["_lsn"] in legacy for row in pending):
                pending = []  # written by a capture that predates _commit_lsn
                continue
            stamp = data.split("(at ", 1)[1].rstrip(")") if "(at " in data else None
            for row in pending:
                row["_commit_lsn"] = commit_lsn
                row["_commit_ts"] = stamp
            rows.extend(pending)
            pending = []
            continue
        parsed = parse_test_decoding(data)
        if parsed is None or parsed[0] != qualified:
            continue
        _, op, values = parsed
        pending.append(
            {
                **values,
                "_op": op,
                "_lsn": lsn_to_int(lsn),
                "_xid": int(xid),
                "_change": json.dumps(values, sort_keys=True),
            }
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
        rows=frame, mode="logical", lag={"lag_bytes": lag_bytes, "lag_seconds": lag_seconds}, advance_to=last_commit
    )


def _text(value: Any) -> str | None:
    """A PostgreSQL value as bronze stores it (and compares it): ISO text for dates and times."""
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _capture_watermark(conn: Any, options: CdcOptions, known: pl.DataFrame) -> CdcResult:
    schema, _, name = options.table.rpartition(".")
    target = quote_qualified(schema or "public", name)
    stamp = quote_ident(options.updated_at)
    keys = ", ".join(quote_ident(k) for k in options.primary_key)
    width = len(options.primary_key)
    # (key, updated_at) pairs bronze already holds, as text (bronze stores the text form)
    seen: set[tuple[str | None, ...]] = set()
    if known.height:
        seen = set(known.select([*options.primary_key, options.updated_at]).cast(pl.String).rows())
    conn.rollback()  # end the transaction a probe (SHOW wal_level) opened: the snapshot starts below
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        with conn.cursor() as cur:
            # one snapshot for both reads: the pairs decide what is new, the rows are their content
            cur.execute(f"SELECT {keys}, {stamp} FROM {target}")
            current = {tuple(_text(v) for v in r[:width]): (_text(r[width]), r[width]) for r in cur.fetchall()}
            changed = {key: raw for key, (text, raw) in current.items() if (*key, text) not in seen}
            fetched: list[tuple[Any, ...]] = []
            names: list[str] = []
            if changed:
                # the oldest unseen stamp, not the newest in bronze: a long transaction's rows
                # can carry a stamp from before the last capture
                clauses, params = [], []
                stamps = [raw for raw in changed.values() if raw is not None]
                if stamps:
                    clauses.append(f"{stamp} >= %s")
                    params.append(min(stamps))
                if len(stamps) < len(changed):
                    clauses.append(f"{stamp} IS NULL")
                cur.execute(f"SELECT * FROM {target} WHERE {' OR '.join(clauses)}", params)
                names = [d[0] for d in cur.description]
                fetched = cur.fetchall()
    finally:
        conn.rollback()
    records = []
    for values in fetched:
        row = {n: _text(v) for n, v in zip(names, values, strict=True)}
        if (*(row[k] for k in options.primary_key), row[options.updated_at]) in seen:
            continue  # already captured: same key and updated_at
        deleted = options.deleted_flag is not None and row.get(options.deleted_flag) is not None
        records.append({**row, "_op": "delete" if deleted else "upsert"})
    frame = pl.DataFrame(records, infer_schema_length=None) if records else pl.DataFrame()
    # hard deletes: keys whose latest bronze state is not a delete but which are gone from the table
    if known.height:
        latest = known.sort("_ingested_at", "_source_line").unique(
            list(options.primary_key), keep="last"
        )  # capture order
        alive = latest.filter(pl.col("_op") != "delete")
        gone = [r for r in alive.select(list(options.primary_key)).rows() if tuple(_text(v) for v in r) not in current]
        if gone:
            deletes = pl.DataFrame(
                [dict(zip(options.primary_key, (_text(v) for v in r), strict=True)) | {"_op": "delete"} for r in gone]
            )
            frame = pl.concat([frame, deletes], how="diagonal_relaxed") if frame.height else deletes
    # the newest stamp captured so far (a late-committed row can be older than the last one)
    newest = [
        part.get_column(options.updated_at).cast(pl.String).max()
        for part in (known, frame)
        if part.height and options.updated_at in part.columns
    ]
    watermark = max((v for v in newest if v is not None), default=None)
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
            return _capture_logical(conn, options, store, ref)
        known = pl.DataFrame()
        if store.exists(ref):
            known = store.read(
                ref, columns=[*options.primary_key, options.updated_at, "_op", "_ingested_at", "_source_line"]
            ).collect()
        return _capture_watermark(conn, options, known)
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
