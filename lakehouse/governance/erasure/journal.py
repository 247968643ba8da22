"""Step 2 of an erasure: the plan, written down durably before anything is deleted.

An erasure changes many tables, landing files and the online store, one after the other; a crash
(even ``kill -9``) can stop it anywhere. Before the first change, the whole plan — every table,
the exact key values and quarantined records to delete, the landing records, the partitions to
recompute — is written to a journal, and each step is marked done in it as it finishes. Running
the erasure of the same subject again finds the journal and resumes from it: the rows a later
step needs (an order's lines are found by the order ids of rows already deleted) come from the
journal, not from the lake.

Where and what: one file per unfinished erasure under ``{warehouse}/_erasure/`` (next to the
tables, so any host that can reach the lake can resume it; no table format lists it), named by
the keyed hash of the subject. Its content holds the subject's identifiers, which only the
erasure may read: it is **sealed** — encrypted with a keystream of HMAC-SHA256 blocks (a PRF in
counter mode) under a key derived from the masking key, then authenticated with HMAC-SHA256
(encrypt-then-MAC) — and it is **deleted** once the erasure is verified and certified, so
identifiers never outlive the erasure in it. Writes replace the file atomically (write a
temporary file, then rename; S3 puts are atomic).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lakehouse.governance.masking import keyed_hash, masking_key
from lakehouse.naming import join_uri
from lakehouse.settings import Settings
from lakehouse.storage import filesystem, list_files, read_bytes, write_bytes

__all__ = ["KILL_HOOK", "Journal", "journal_folder", "kill_point", "pending_journals", "seal", "unseal"]

#: Test hook: ``LAKEHOUSE_ERASURE_KILL_AT=<step>`` kills the process (SIGKILL) once that step's
#: work is done and before the journal records it, the worst moment for a resume.
KILL_HOOK = "LAKEHOUSE_ERASURE_KILL_AT"
_SUFFIX = ".journal"
_MAGIC = b"LHEJ1"


def journal_folder(settings: Settings) -> str:
    return join_uri(settings.warehouse, "_erasure")


def pending_journals(settings: Settings) -> list[str]:
    """The journals of erasures that started and did not finish (run them again to finish them)."""
    return [e.uri for e in list_files(settings, journal_folder(settings), recursive=False) if e.uri.endswith(_SUFFIX)]


def _keys(settings: Settings) -> tuple[bytes, bytes]:
    base = masking_key(settings)
    return (
        hmac.new(base, b"lakehouse erasure journal: encryption", hashlib.sha256).digest(),
        hmac.new(base, b"lakehouse erasure journal: authentication", hashlib.sha256).digest(),
    )


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = (length + 31) // 32
    return b"".join(hmac.new(key, nonce + i.to_bytes(8, "big"), hashlib.sha256).digest() for i in range(blocks))[
        :length
    ]


def seal(settings: Settings, plain: bytes) -> bytes:
    enc, mac = _keys(settings)
    nonce = secrets.token_bytes(16)
    body = bytes(a ^ b for a, b in zip(plain, _keystream(enc, nonce, len(plain)), strict=True))
    tag = hmac.new(mac, _MAGIC + nonce + body, hashlib.sha256).digest()
    return _MAGIC + nonce + body + tag


def unseal(settings: Settings, sealed: bytes) -> bytes:
    enc, mac = _keys(settings)
    if not sealed.startswith(_MAGIC) or len(sealed) < len(_MAGIC) + 16 + 32:
        raise ValueError("not an erasure journal")
    nonce, body, tag = sealed[5:21], sealed[21:-32], sealed[-32:]
    if not hmac.compare_digest(tag, hmac.new(mac, _MAGIC + nonce + body, hashlib.sha256).digest()):
        raise ValueError("the erasure journal does not authenticate (another masking key, or tampered with)")
    return bytes(a ^ b for a, b in zip(body, _keystream(enc, nonce, len(body)), strict=True))


@dataclass
class Journal:
    """One erasure's plan and progress. ``plan``: the serialised :class:`~.plan.ErasurePlan`;
    ``done``: the steps finished; ``results``: what each step did (for the certificate)."""

    settings: Settings = field(repr=False)
    uri: str
    request_id: str
    started_at: str
    plan: dict[str, Any]
    done: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False

    @staticmethod
    def uri_for(settings: Settings, column: str, value: object) -> str:
        name = keyed_hash(f"{column}={value}", masking_key(settings))
        return join_uri(journal_folder(settings), f"{name}{_SUFFIX}")

    @classmethod
    def load(cls, settings: Settings, column: str, value: object) -> Journal | None:
        uri = cls.uri_for(settings, column, value)
        try:
            data = read_bytes(settings, uri)
        except (FileNotFoundError, OSError):
            return None
        doc = json.loads(unseal(settings, data))
        return cls(settings, uri, doc["request_id"], doc["started_at"], doc["plan"], doc["done"], doc["results"], True)

    @classmethod
    def create(
        cls, settings: Settings, column: str, value: object, request_id: str, plan: Mapping[str, Any]
    ) -> Journal:
        journal = cls(
            settings, cls.uri_for(settings, column, value), request_id, dt.datetime.now(dt.UTC).isoformat(), dict(plan)
        )
        journal.save()
        return journal

    def save(self) -> None:
        doc = {
            "request_id": self.request_id,
            "started_at": self.started_at,
            "plan": self.plan,
            "done": self.done,
            "results": self.results,
        }
        sealed = seal(self.settings, json.dumps(doc, default=str, sort_keys=True).encode("utf-8"))
        if self.uri.startswith("s3://"):
            write_bytes(self.settings, self.uri, sealed)  # an S3 put replaces the object atomically
            return
        _fs, path = filesystem(self.settings, self.uri)
        tmp = f"{path}.{os.getpid()}.tmp"
        write_bytes(self.settings, tmp, sealed)
        with open(tmp, "rb+") as handle:  # durable before it replaces the previous state
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def is_done(self, step: str) -> bool:
        return step in self.done

    def finish(self, step: str) -> None:
        """Record ``step`` as done (after the kill hook, so a test can stop it just before)."""
        kill_point(step)
        if step not in self.done:
            self.done.append(step)
        self.save()

    def undo(self, *steps: str) -> None:
        """Mark steps to be run again (a resumed erasure found new rows for them)."""
        self.done = [s for s in self.done if s not in steps]

    def delete(self) -> None:
        fs, path = filesystem(self.settings, self.uri)
        with contextlib.suppress(FileNotFoundError):
            fs.delete_file(path)


def kill_point(step: str) -> None:
    """The test hook (see :data:`KILL_HOOK`)."""
    if os.environ.get(KILL_HOOK) == step:
        os.kill(os.getpid(), signal.SIGKILL)
