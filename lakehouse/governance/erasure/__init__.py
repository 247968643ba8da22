"""Right to erasure: remove one data subject from every layer, and from every version that could
bring them back, with a certificate in the audit log.

``erase(settings, column="customer_id", value=123)`` runs four steps, one module each:

1. :mod:`.plan` — **find the subject everywhere** (every table with a column that identifies the
   subject; the values of the policy's other identifiers and followed keys found in the subject's
   rows, until nothing new turns up; quarantined ``_raw`` records parsed and compared field by
   field). Identifiers match exactly (texts case-folded): ``ann@x.com`` is not ``joann@x.com``.
2. :mod:`.journal` — the plan (tables, exact key values, landing records, partitions to recompute)
   is written, sealed, to ``{warehouse}/_erasure/`` **before anything changes**; each step is
   marked done as it finishes, and running the erasure again resumes it after a crash. The
   journal is deleted once the erasure is verified.
3. :mod:`.apply` — holding the Dagster pool of every table that could hold the subject (the pool
   its writer and its maintenance share): blank the subject's **landing** records (so a
   re-ingestion cannot bring them back), **delete** the rows, erase the **online feature store**,
   **recompute** the derived aggregates (through the code location the caller passes in), and
   **purge history** (old versions, change feed, log statistics) — sparing files a write in
   flight may still commit.
4. :mod:`.verify` — still holding the pools: no readable version, change feed, decoded file under
   the erased tables or landing file holds the subject; anything unreadable fails it. The
   certificate (tables, rows, versions, landing records, verification; identifiers only as keyed
   hashes) goes to the audit log.

This package never imports the code location (``lakehouse.definitions``, ``assets``): callers
that want derived assets recomputed pass their definitions (or a launcher) in.
"""

from lakehouse.governance.erasure.apply import (
    GRACE,
    ErasureResult,
    Launcher,
    dagster_launcher,
    erase,
    subject_hashes,
)
from lakehouse.governance.erasure.journal import pending_journals
from lakehouse.governance.erasure.plan import ErasureError, ErasurePlan, TablePlan, parse_subject, plan_erasure
from lakehouse.governance.erasure.verify import Verification, verify_absent, verify_certificates

__all__ = [
    "GRACE",
    "ErasureError",
    "ErasurePlan",
    "ErasureResult",
    "Launcher",
    "TablePlan",
    "Verification",
    "dagster_launcher",
    "erase",
    "parse_subject",
    "pending_journals",
    "plan_erasure",
    "subject_hashes",
    "verify_absent",
    "verify_certificates",
]
