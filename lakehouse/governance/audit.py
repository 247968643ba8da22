"""A tamper-evident audit log: ``governance/audit/audit_log``, append-only, hash-chained and signed.

Every entry says who did what, when, to which target, in which run, with details (JSON), and
carries ``entry_hash = sha256(prev_hash + the entry's canonical JSON)``, where ``prev_hash`` is
the previous entry's hash. :func:`verify` recomputes the chain, so an edited entry, a removed
entry (a gap in ``seq``) or a re-ordered one is found.

A hash chain alone proves nothing against whoever can write the table: they can drop it and
append a recomputed chain. So the chain is anchored outside the writer: the last entry of every
append carries a **signed checkpoint** (Ed25519 over its ``seq`` and ``entry_hash``, which covers
every entry before it). The signing key comes from ``LAKEHOUSE_AUDIT_SIGNING_KEY`` or, by default,
a key file created once in the state folder (mode 0600); the **verifying key** is kept apart
(``LAKEHOUSE_AUDIT_VERIFY_KEY``, or the ``.pub`` file written once when the key file is created,
never overwritten). :func:`verify` trusts only that verifying key: a missing or different one
fails verification, as does an entry after the last valid checkpoint. :func:`verify` also reads
the table's own history (only appends and file compaction are legitimate commits on an
append-only table; every committed append must still be there) and the head this host last wrote
(``$LAKEHOUSE_HOME/governance/audit_head.json``).

Writers are serialised by the table's own commit protocol, not by a lock (a host-local lock
cannot serialise writers on several hosts): an append is optimistic. It extends the head the
writer read and names it in its commit; when two appends extend the same head, the one the table
committed first wins (commit order is the table's version order), and the other writer sees its
batch lost and appends it again after the new head. A lost batch's rows stay in the table (it is
append-only) but are not part of the chain. Entries never hold personal data in clear (erasure
certificates carry keyed hashes, queries their shape only, contract violations hashed samples).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from lakehouse.exceptions import LakehouseError
from lakehouse.naming import TableRef
from lakehouse.settings import Settings
from lakehouse.tables import Lake, TableStore

__all__ = [
    "ACTIONS",
    "AUDIT",
    "AUDIT_SCHEMA",
    "GENESIS",
    "SIGNING_KEY_FILE",
    "VERIFY_KEY_FILE",
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
    "signing_key",
    "verify",
    "verifying_key",
]

AUDIT = TableRef("governance", "audit", "audit_log")
GENESIS = "0" * 64
HEAD_MARKER = "lakehouse_audit_head"
#: commit metadata of an append: the head it extends (``seq:hash``) and its batch id
PARENT_MARKER = "lakehouse_audit_parent"
BATCH_MARKER = "lakehouse_audit_batch"
_HEAD_FILE = "governance/audit_head.json"
SIGNING_KEY_FILE = Path("governance") / "audit_signing.key"
VERIFY_KEY_FILE = Path("governance") / "audit_verify.pub"
_SIGNED_PREFIX = b"lakehouse-audit-checkpoint/v1:"
#: appends a writer attempts before giving up (each lost race costs one; there is no lock to wait on)
_MAX_ATTEMPTS = 40

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

#: the fields an entry's hash covers, in order
_CHAINED = (
    "seq",
    "entry_id",
    "recorded_at",
    "actor",
    "action",
    "target",
    "run_id",
    "details",
    "source_id",
    "prev_hash",
)
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
    # the append (writer attempt) the row was written by, and the signed checkpoint on its last entry
    "batch_id": pl.String(),
    "signature": pl.String(),
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
    """The audit log cannot be written (for example: an unknown action, or a bad signing key)."""


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
    batch_id: str | None = None
    signature: str | None = None

    @property
    def details_json(self) -> dict[str, Any]:
        value = json.loads(self.details)
        return value if isinstance(value, dict) else {"value": value}


@dataclass(frozen=True)
class AuditProblem:
    seq: int | None
    kind: str  # edited, removed, reordered, forked, rewritten, truncated, forged, unsigned, unverifiable
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


# -- keys ------------------------------------------------------------------------------------------


def _env_setting(settings: Settings, name: str) -> str | None:
    """``settings.<name>``, else this process's (a Dagster resource's settings carry no secrets)."""
    value = getattr(settings, name)
    if value is None:
        from lakehouse.settings import get_settings

        value = getattr(get_settings(), name)
    return value if isinstance(value, str) and value.strip() else None


def _create_once(path: Path, text: str, mode: int) -> None:
    """Write ``path`` unless it exists, atomically: concurrent creators end with one complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.link(tmp, path)  # fails if another writer created it first: theirs stays
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The checkpoint signing key: ``LAKEHOUSE_AUDIT_SIGNING_KEY`` (64 hex characters, an Ed25519
    seed), else the state folder's key file, created once (mode 0600) together with its verifying
    key file (``.pub``), which is never overwritten afterwards: a replaced key file does not
    replace the key verification trusts."""
    text = _env_setting(settings, "audit_signing_key")
    if text is None:
        path = settings.home / SIGNING_KEY_FILE
        if not path.is_file():
            seed = Ed25519PrivateKey.generate()
            raw = seed.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
            _create_once(path, raw + "\n", 0o600)
        text = path.read_text().strip()
        key = _private_key(text, str(path))
        _create_once(settings.home / VERIFY_KEY_FILE, _public_hex(key) + "\n", 0o644)
        return key
    return _private_key(text, "LAKEHOUSE_AUDIT_SIGNING_KEY")


def _private_key(text: str, where: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text.strip()))
    except ValueError:
        raise AuditError(f"{where}: not an Ed25519 key (64 hex characters)") from None


def verifying_key(settings: Settings) -> Ed25519PublicKey | None:
    """The key :func:`verify` trusts: ``LAKEHOUSE_AUDIT_VERIFY_KEY``, else the state folder's
    ``.pub`` file; None when neither exists (the log then cannot be verified). Never derived from
    the signing key: whoever can replace that must not thereby choose what verification trusts."""
    text = _env_setting(settings, "audit_verify_key")
    where = "LAKEHOUSE_AUDIT_VERIFY_KEY"
    if text is None:
        path = settings.home / VERIFY_KEY_FILE
        if not path.is_file():
            return None
        text, where = path.read_text().strip(), str(path)
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.strip()))
    except ValueError:
        raise AuditError(f"{where}: not an Ed25519 public key (64 hex characters)") from None


def _checkpoint(seq: int, digest: str) -> bytes:
    return _SIGNED_PREFIX + f"{seq}:{digest}".encode()


def _signed(key: Ed25519PublicKey, entry: AuditEntry) -> bool:
    if not entry.signature:
        return False
    try:
        key.verify(bytes.fromhex(entry.signature), _checkpoint(entry.seq, entry.entry_hash))
    except (InvalidSignature, ValueError):
        return False
    return True


# -- the chain -------------------------------------------------------------------------------------


@dataclass
class _Chain:
    """The table's rows resolved into one chain: from :data:`GENESIS`, follow ``prev_hash`` links;
    where two appends extended the same entry, the one committed first is the chain."""

    entries: list[AuditEntry]  # every row
    chain: list[AuditEntry]  # the chain, in order
    committed: dict[str, int]  # batch id -> version of its commit (from the table's history)
    ambiguous: list[int]  # seq of forks that history could not order

    @property
    def head(self) -> tuple[int, str]:
        return (self.chain[-1].seq, self.chain[-1].entry_hash) if self.chain else (0, GENESIS)

    def has(self, batch_id: str) -> bool:
        return any(e.batch_id == batch_id for e in reversed(self.chain))


#: what a writer needs to find the head: the links, not the content
_LINKS = ("seq", "entry_hash", "prev_hash", "batch_id")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _rows(frame: pl.DataFrame) -> list[AuditEntry]:
    names = [n for n in AUDIT_SCHEMA if n in frame.columns]
    blank: dict[str, Any] = {"entry_id": "", "recorded_at": _EPOCH, "actor": "", "action": "", "target": ""}
    blank.update(run_id=None, details="", source_id=None)
    return [
        AuditEntry(**{**blank, **{n: row[n] for n in names}})
        for row in frame.sort("seq").select(names).iter_rows(named=True)
    ]


def _batch_order(committed: Mapping[str, int], entry: AuditEntry) -> int:
    return committed.get(entry.batch_id or "", -1)  # rows without a batch id predate the protocol


def _resolve(entries: list[AuditEntry], committed: Mapping[str, int]) -> _Chain:
    children: dict[str, list[AuditEntry]] = {}
    for e in entries:
        children.setdefault(e.prev_hash, []).append(e)
    chain: list[AuditEntry] = []
    ambiguous: list[int] = []
    on_chain: set[int] = set()
    hashes = {GENESIS}
    current = GENESIS

    def take(entry: AuditEntry) -> None:
        chain.append(entry)
        on_chain.add(id(entry))
        hashes.add(entry.entry_hash)

    while True:
        while current in children:
            kids = [k for k in children[current] if id(k) not in on_chain]
            if not kids:
                break
            # rows of one append follow each other; where two appends extended the same entry,
            # the one the table committed first is the chain (the other lost the race)
            batch = chain[-1].batch_id if chain else None
            same = [k for k in kids if batch is not None and k.batch_id == batch]
            if same:
                kid = same[0]
            else:
                kids.sort(key=lambda k: _batch_order(committed, k))
                kid = kids[0]
                if len(kids) > 1 and _batch_order(committed, kids[1]) == _batch_order(committed, kid):
                    ambiguous.append(kid.seq)
            take(kid)
            current = kid.entry_hash
        # entries removed from the middle break the links: go on with the next entry above the
        # head, unless it belongs to an append that lost a race (its first row hangs off the chain)
        lost = {e.batch_id for e in entries if id(e) not in on_chain and e.prev_hash in hashes and e.batch_id}
        head = chain[-1].seq if chain else 0
        rest = [
            e
            for e in entries
            if id(e) not in on_chain and e.seq > head and e.prev_hash not in hashes and e.batch_id not in lost
        ]
        if not rest:
            break
        nxt = min(rest, key=lambda e: (e.seq, _batch_order(committed, e)))
        take(nxt)
        current = nxt.entry_hash
    return _Chain(entries, chain, dict(committed), ambiguous)


def _load(store: TableStore | None, *, links_only: bool = False) -> _Chain:
    """The (existing) table resolved into its chain; ``None``: no table. ``links_only`` (writers)
    reads only the link columns, and the table's history only when there is a fork to order."""
    if store is None:  # no table yet
        return _Chain([], [], {}, [])
    scan = store.read(AUDIT)
    if links_only:
        scan = scan.select([c for c in _LINKS if c in scan.collect_schema().names()])
    entries = _rows(scan.collect())
    committed: dict[str, int] = {}
    forked = len({e.prev_hash for e in entries}) < len(entries)
    if forked or not links_only:
        for commit in store.history(AUDIT):
            batch = commit.user_metadata.get(BATCH_MARKER)
            if batch:
                committed[batch] = min(commit.version, committed.get(batch, commit.version))
    return _resolve(entries, committed)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(heads, indent=2, sort_keys=True))
    tmp.replace(path)


def _build(entries: Sequence[NewEntry], head: tuple[int, str], batch: str, key: Ed25519PrivateKey) -> list[AuditEntry]:
    seq, prev = head
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
        prev = entry_hash(**fields)
        out.append(AuditEntry(**fields, entry_hash=prev, batch_id=batch))
    last = out[-1]
    signature = key.sign(_checkpoint(last.seq, last.entry_hash)).hex()
    out[-1] = AuditEntry(**{**last.__dict__, "signature": signature})
    return out


def record_many(settings: Settings, entries: Sequence[NewEntry], *, lake: Lake | None = None) -> list[AuditEntry]:
    """Append ``entries`` in one commit, chained after the current head, the last one signed.

    Optimistic: the append names the head it extends; if another writer's append extending the
    same head was committed first, this one is void and is made again after the new head.

    Raises:
        AuditError: an unknown action, a bad signing key, or ``_MAX_ATTEMPTS`` lost races in a row.
    """
    if not entries:
        return []
    for e in entries:
        if e.action not in ACTIONS:
            raise AuditError(f"unknown audit action {e.action!r}; accepted: {', '.join(ACTIONS)}")
    lake = lake or Lake(settings)
    key = signing_key(settings)
    for attempt in range(_MAX_ATTEMPTS):
        existing = lake.format_of(AUDIT)
        store = lake.store(existing) if existing else lake.store_for(AUDIT)
        read_at = store.version(AUDIT) if existing else None  # before the rows: a conservative bound
        parent = _load(store if existing else None, links_only=True).head
        batch = uuid.uuid4().hex
        out = _build(entries, parent, batch, key)
        frame = pl.DataFrame([e.__dict__ for e in out], schema=AUDIT_SCHEMA)
        metadata = {
            HEAD_MARKER: f"{out[-1].seq}:{out[-1].entry_hash}",
            PARENT_MARKER: f"{parent[0]}:{parent[1]}",
            BATCH_MARKER: batch,
        }
        try:
            written = store.append(AUDIT, frame, commit_metadata=metadata)
        except Exception:
            if existing or not store.exists(AUDIT):
                raise
            continue  # another writer created the table at the same moment: append to theirs
        # the commit right after the version read: nothing came between, the head was still the head
        uncontested = read_at is not None and written.version == read_at + 1
        if uncontested or _load(store, links_only=True).has(batch):
            _write_head(settings, out[-1].seq, out[-1].entry_hash)
            return out
        time.sleep(min(2.0, 0.02 * 2**attempt) * (0.5 + random.random()))  # noqa: S311 - jitter
    raise AuditError(f"could not append to {AUDIT}: {_MAX_ATTEMPTS} appends in a row lost to other writers")


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
    """Every entry of the chain, in ``seq`` order (empty when there is no audit log yet); rows of
    appends that lost a race to another writer are not entries."""
    lake = lake or Lake(settings)
    fmt = lake.format_of(AUDIT)
    if fmt is None:
        return []
    return _load(lake.store(fmt)).chain


def verify(settings: Settings, *, lake: Lake | None = None) -> AuditReport:
    """Recompute the chain, check its signed checkpoints with the verifying key, and cross-check it
    with the table's history and the recorded heads."""
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
    loaded = _load(store)
    chain = loaded.chain
    by_seq = {e.seq: e for e in chain}
    head_seq = chain[-1].seq if chain else 0
    for seq in loaded.ambiguous:
        problems.append(AuditProblem(seq, "forked", f"entry {seq} appears more than once"))
    # the chain: contiguous, linked, every hash matching its content
    previous: AuditEntry | None = None
    for entry in chain:
        expected_seq = previous.seq + 1 if previous else 1
        if entry.seq > expected_seq:
            for missing in range(expected_seq, entry.seq):
                problems.append(AuditProblem(missing, "removed", f"entry {missing} is missing (removed from the log)"))
        elif entry.prev_hash != (previous.entry_hash if previous else GENESIS):
            problems.append(
                AuditProblem(
                    entry.seq, "reordered", f"entry {entry.seq} does not follow entry {expected_seq - 1} (chain broken)"
                )
            )
        previous = entry
        digest = entry_hash(**{k: getattr(entry, k) for k in _CHAINED})
        if digest != entry.entry_hash:
            problems.append(
                AuditProblem(
                    entry.seq,
                    "edited",
                    f"entry {entry.seq} ({entry.action} {entry.target}) was edited: its hash does not match its content",
                )
            )
    # rows off the chain: appends that lost a race (committed, after the winner) and nothing else
    on_chain = {id(e) for e in chain}
    stray = [e for e in loaded.entries if id(e) not in on_chain]
    chain_batches = {e.batch_id for e in chain}
    for e in stray:
        if not (e.batch_id and e.batch_id in loaded.committed and e.batch_id not in chain_batches):
            problems.append(
                AuditProblem(
                    e.seq, "forked", f"entry {e.seq} ({e.action} {e.target}) is not on the chain (removed or forked)"
                )
            )
    # signed checkpoints: every signature valid, the head signed
    key = verifying_key(settings)
    if key is None:
        if loaded.entries:
            problems.append(
                AuditProblem(
                    None,
                    "unverifiable",
                    "no verifying key: set LAKEHOUSE_AUDIT_VERIFY_KEY (or keep governance/audit_verify.pub); "
                    "without it the log's checkpoints cannot be checked",
                )
            )
    else:
        last_signed = 0
        for entry in chain:
            if entry.signature:
                if _signed(key, entry):
                    last_signed = entry.seq
                else:
                    problems.append(
                        AuditProblem(
                            entry.seq,
                            "forged",
                            f"the checkpoint at entry {entry.seq} is not signed by the trusted key "
                            "(the chain was recomputed, or the verifying key is wrong)",
                        )
                    )
        if head_seq and last_signed < head_seq:
            problems.append(
                AuditProblem(
                    head_seq,
                    "forged",
                    f"entries {last_signed + 1}..{head_seq} are not covered by a valid signed checkpoint",
                )
            )
    # the table's own history: only appends, and every committed append still there
    present = {e.batch_id for e in loaded.entries if e.batch_id}
    truncation_seen = False
    for commit in store.history(AUDIT):
        operation = commit.operation.upper()
        mode = str(commit.parameters.get("mode", "Append")).lower()
        if operation not in _APPEND_ONLY or (operation == "WRITE" and mode != "append"):
            shown = f"{operation} {mode}" if operation == "WRITE" else operation
            problems.append(
                AuditProblem(None, "rewritten", f"the audit table was rewritten at version {commit.version} ({shown})")
            )
        batch = commit.user_metadata.get(BATCH_MARKER)
        marker = commit.user_metadata.get(HEAD_MARKER)
        lost_race = bool(batch) and batch in present and batch not in chain_batches
        if marker and not lost_race and not truncation_seen:
            ended = int(marker.partition(":")[0])
            if ended > head_seq:  # removed entries in the middle are reported as gaps above
                truncation_seen = True
                problems.append(
                    AuditProblem(
                        ended,
                        "truncated",
                        f"the last append ended at entry {ended}, but the log now ends at entry {head_seq}",
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
    return AuditReport(len(chain), head_seq or None, head.entry_hash if head else None, problems)
