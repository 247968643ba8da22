"""A tamper-evident audit log: ``governance/audit/audit_log``, append-only and hash-chained.

Every entry says who did what, when, to which target, in which run, with details (JSON), and
carries ``entry_hash = sha256(prev_hash + the entry's canonical JSON)``, where ``prev_hash`` is
the previous entry's hash. :func:`verify` recomputes the chain, so an edited entry, a removed
entry (a gap in ``seq``) or a re-ordered one is found; it also reads the table's own history
(only appends and file compaction are legitimate commits on an append-only table), the head
recorded with each append (so removing the *last* entries is found too) and the head this host
last wrote (``$LAKEHOUSE_HOME/governance/audit_head.json``).

Writers on one host are serialised by a lock file, so the chain never forks; entries never hold
personal data in clear (erasure certificates carry keyed hashes, queries their shape only).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import hashlib
import json
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import polars as pl

from lakehouse.exceptions import LakehouseError
from lakehouse.naming import TableRef
from lakehouse.settings import Settings
from lakehouse.tables import Lake, TableStore

__all__ = [
    "ACTIONS",
    "AUDIT",
    "AUDIT_SCHEMA",
    "GENESIS",
    "AuditAction",
    "AuditEntry",
    "AuditError",
    "AuditProblem",
    "AuditReport",
    "NewEntry",
    "default_actor",
    "entry_hash",
    "read_entries",
    "record",
    "record_many",
    "verify",
]

AUDIT = TableRef("governance", "audit", "audit_log")
GENESIS = "0" * 64
HEAD_MARKER = "lakehouse_audit_head"
_HEAD_FILE = "governance/audit_head.json"
_LOCK_FILE = "governance/audit.lock"

AuditAction = Literal[
    "materialization",
    "restore",
    "maintenance",
    "erasure",
    "policy_change",
    "privileged_query",
    "contract_violation",
]
ACTIONS: tuple[AuditAction, ...] = get_args(AuditAction)

AUDIT_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "entry_id": pl.String(),
    "recorded_at": pl.Datetime("us", "UTC"),
    "actor": pl.String(),
    "action": pl.String(),
    "target": pl.String(),
    "run_id": pl.String(),
    "details": pl.String(),
    "source_id": pl.String(),
    "prev_hash": pl.String(),
    "entry_hash": pl.String(),
}
#: commits an append-only table may legitimately have (Delta operations, Iceberg snapshot operations)
_APPEND_ONLY = {
    "CREATE TABLE",
    "WRITE",
    "APPEND",
    "OPTIMIZE",
    "COMPACT",
    "SORT",
    "ZORDER",
    "VACUUM START",
    "VACUUM END",
}


class AuditError(LakehouseError):
    """The audit log cannot be written (for example: an unknown action, or a forked chain)."""


@dataclass(frozen=True)
class NewEntry:
    """An entry to append: the chain fields are filled in by :func:`record_many`."""

    action: AuditAction
    target: str
    details: Mapping[str, Any] = field(default_factory=dict)
    actor: str | None = None
    run_id: str | None = None
    source_id: str | None = None
    recorded_at: dt.datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    entry_id: str
    recorded_at: dt.datetime
    actor: str
    action: str
    target: str
    run_id: str | None
    details: str
    source_id: str | None
    prev_hash: str
    entry_hash: str

    @property
    def details_json(self) -> dict[str, Any]:
        value = json.loads(self.details)
        return value if isinstance(value, dict) else {"value": value}


@dataclass(frozen=True)
class AuditProblem:
    seq: int | None
    kind: str  # edited, removed, reordered, forked, rewritten, truncated
    message: str


@dataclass
class AuditReport:
    entries: int
    head_seq: int | None
    head_hash: str | None
    problems: list[AuditProblem]

    @property
    def intact(self) -> bool:
        return not self.problems


def default_actor() -> str:
    """``user@host`` of this process (the CLI's caller, or the Dagster step's user)."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(
    *,
    seq: int,
    entry_id: str,
    recorded_at: dt.datetime,
    actor: str,
    action: str,
    target: str,
    run_id: str | None,
    details: str,
    source_id: str | None,
    prev_hash: str,
) -> str:
    """The hash that chains an entry to ``prev_hash`` (every field counts)."""
    stamp = recorded_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = _canonical([seq, entry_id, stamp, actor, action, target, run_id, details, source_id, prev_hash])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    path = settings.home / _LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(store: TableStore | None) -> tuple[int, str]:
    if store is None or not store.exists(AUDIT):
        return 0, GENESIS
    last = store.read(AUDIT, columns=["seq", "entry_hash"]).sort("seq").tail(1).collect()
    if last.height == 0:
        return 0, GENESIS
    return int(last.item(0, "seq")), str(last.item(0, "entry_hash"))


def _head_file(settings: Settings) -> dict[str, Any]:
    path = settings.home / _HEAD_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_head(settings: Settings, seq: int, digest: str) -> None:
    heads = _head_file(settings)
    heads[settings.warehouse] = {"seq": seq, "hash": digest}
    path = settings.home / _HEAD_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(heads, indent=2, sort_keys=True))
    tmp.replace(path)


def record_many(settings: Settings, entries: Sequence[NewEntry], *, lake: Lake | None = None) -> list[AuditEntry]:
    """Append ``entries`` in one commit, chained after the current head."""
    if not entries:
        return []
    for e in entries:
        if e.action not in ACTIONS:
            raise AuditError(f"unknown audit action {e.action!r}; accepted: {', '.join(ACTIONS)}")
    lake = lake or Lake(settings)
    with _locked(settings):
        existing = lake.format_of(AUDIT)
        store = lake.store(existing) if existing else lake.store_for(AUDIT)
        seq, prev = _tail(store if existing else None)
        now = dt.datetime.now(dt.UTC)
        out: list[AuditEntry] = []
        for e in entries:
            seq += 1
            fields: dict[str, Any] = {
                "seq": seq,
                "entry_id": uuid.uuid4().hex,
                "recorded_at": (e.recorded_at or now).astimezone(dt.UTC),
                "actor": e.actor or default_actor(),
                "action": e.action,
                "target": e.target,
                "run_id": e.run_id,
                "details": _canonical(dict(e.details)),
                "source_id": e.source_id,
                "prev_hash": prev,
            }
            digest = entry_hash(**fields)
            out.append(AuditEntry(**fields, entry_hash=digest))
            prev = digest
        frame = pl.DataFrame([e.__dict__ for e in out], schema=AUDIT_SCHEMA)
        store.append(AUDIT, frame, commit_metadata={HEAD_MARKER: f"{seq}:{prev}"})
        _write_head(settings, seq, prev)
    return out


def record(
    settings: Settings,
    *,
    action: AuditAction,
    target: str,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
    run_id: str | None = None,
    source_id: str | None = None,
) -> AuditEntry:
    """Append one entry (who: ``actor``, default ``user@host``) and return it."""
    entry = NewEntry(action, target, details or {}, actor=actor, run_id=run_id, source_id=source_id)
    return record_many(settings, [entry])[0]


def read_entries(settings: Settings, *, lake: Lake | None = None) -> list[AuditEntry]:
    """Every entry, in ``seq`` order (empty when there is no audit log yet)."""
    lake = lake or Lake(settings)
    fmt = lake.format_of(AUDIT)
    if fmt is None:
        return []
    frame = lake.store(fmt).read(AUDIT).collect().sort("seq")
    return [
        AuditEntry(
            seq=int(row["seq"]),
            entry_id=str(row["entry_id"]),
            recorded_at=row["recorded_at"],
            actor=str(row["actor"]),
            action=str(row["action"]),
            target=str(row["target"]),
            run_id=row["run_id"],
            details=str(row["details"]),
            source_id=row["source_id"],
            prev_hash=str(row["prev_hash"]),
            entry_hash=str(row["entry_hash"]),
        )
        for row in frame.iter_rows(named=True)
    ]


def verify(settings: Settings, *, lake: Lake | None = None) -> AuditReport:
    """Recompute the chain and cross-check it with the table's history and the recorded heads."""
    lake = lake or Lake(settings)
    problems: list[AuditProblem] = []
    fmt = lake.format_of(AUDIT)
    anchor = _head_file(settings).get(settings.warehouse)
    if fmt is None:
        if anchor:
            problems.append(
                AuditProblem(
                    None, "removed", f"the audit table is missing but this host recorded entry {anchor['seq']}"
                )
            )
        return AuditReport(0, None, None, problems)
    store = lake.store(fmt)
    entries = read_entries(settings, lake=lake)
    by_seq: dict[int, AuditEntry] = {}
    for e in entries:
        if e.seq in by_seq:
            problems.append(AuditProblem(e.seq, "forked", f"entry {e.seq} appears more than once"))
        by_seq.setdefault(e.seq, e)
    head_seq = max(by_seq) if by_seq else 0
    prev_hash = GENESIS
    for seq in range(1, head_seq + 1):
        entry = by_seq.get(seq)
        if entry is None:
            problems.append(AuditProblem(seq, "removed", f"entry {seq} is missing (removed from the log)"))
            prev_hash = ""
            continue
        expected = entry_hash(**{k: getattr(entry, k) for k in AUDIT_SCHEMA if k != "entry_hash"})
        if expected != entry.entry_hash:
            problems.append(
                AuditProblem(
                    seq,
                    "edited",
                    f"entry {seq} ({entry.action} {entry.target}) was edited: its hash does not match its content",
                )
            )
        if prev_hash and entry.prev_hash != prev_hash:
            problems.append(
                AuditProblem(seq, "reordered", f"entry {seq} does not follow entry {seq - 1} (chain broken)")
            )
        prev_hash = entry.entry_hash
    marker_seen = False
    for commit in store.history(AUDIT):
        operation = commit.operation.upper()
        mode = str(commit.parameters.get("mode", "Append")).lower()
        if operation not in _APPEND_ONLY or (operation == "WRITE" and mode != "append"):
            shown = f"{operation} {mode}" if operation == "WRITE" else operation
            problems.append(
                AuditProblem(None, "rewritten", f"the audit table was rewritten at version {commit.version} ({shown})")
            )
        marker = commit.user_metadata.get(HEAD_MARKER)
        if marker and not marker_seen:
            marker_seen = True
            seq_text, _, digest = marker.partition(":")
            recorded = by_seq.get(int(seq_text))
            if int(seq_text) != head_seq or recorded is None or recorded.entry_hash != digest:
                problems.append(
                    AuditProblem(
                        int(seq_text),
                        "truncated",
                        f"the last append ended at entry {seq_text}, but the log now ends at entry {head_seq}",
                    )
                )
    if anchor:
        recorded = by_seq.get(int(anchor["seq"]))
        if recorded is None or recorded.entry_hash != anchor["hash"]:
            problems.append(
                AuditProblem(
                    int(anchor["seq"]),
                    "truncated",
                    f"entry {anchor['seq']} written from this host is missing or changed",
                )
            )
    head = by_seq.get(head_seq)
    return AuditReport(len(entries), head_seq or None, head.entry_hash if head else None, problems)
