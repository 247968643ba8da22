"""The audit log is hash-chained: verify finds an edited, a removed and a truncated entry (both formats)."""

from __future__ import annotations

import itertools

import polars as pl
import pytest
from conftest import run_cli


def _log(settings, n: int = 5) -> list:
    from lakehouse.governance.audit import NewEntry, record, record_many

    first = [record(settings, action="restore", target=f"silver.retail.t{i}", details={"to": i}) for i in range(2)]
    rest = record_many(
        settings, [NewEntry("maintenance", f"gold.retail.t{i}", {"files": i}, run_id=f"run-{i}") for i in range(n - 2)]
    )
    return [*first, *rest]


def test_the_chain_verifies_and_links_every_entry(settings):
    from lakehouse.governance.audit import GENESIS, read_entries, verify

    written = _log(settings)
    entries = read_entries(settings)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    assert [e.entry_hash for e in entries] == [e.entry_hash for e in written]
    report = verify(settings)
    assert report.intact and report.entries == 5 and report.head_seq == 5 and report.head_hash == written[-1].entry_hash


@pytest.mark.parametrize("tamper", ["edit", "remove_middle", "remove_last"])
def test_verify_detects_a_planted_edit_or_a_removed_entry(settings, lake, tamper):
    from lakehouse.governance.audit import AUDIT, verify
    from lakehouse.tables import col

    _log(settings)
    store = lake.existing_store(AUDIT)
    if tamper == "edit":  # rewrite one entry's details, as someone with write access to the table could
        frame = store.read(AUDIT).collect()
        edited = frame.with_columns(
            pl.when(pl.col("seq") == 3).then(pl.lit('{"files":99}')).otherwise(pl.col("details")).alias("details")
        )
        store.overwrite(AUDIT, edited)
        expected = {"edited", "rewritten"}
    elif tamper == "remove_middle":
        store.delete(AUDIT, col("seq") == 2)
        expected = {"removed", "rewritten"}
    else:
        store.delete(AUDIT, col("seq") == 5)
        expected = {"truncated", "rewritten", "forged"}  # the signed checkpoint was on entry 5
    report = verify(settings)
    assert not report.intact
    assert {p.kind for p in report.problems} == expected, report.problems
    messages = " | ".join(p.message for p in report.problems)
    if tamper == "edit":
        assert "entry 3 (maintenance gold.retail.t0) was edited" in messages
    elif tamper == "remove_middle":
        assert "entry 2 is missing (removed from the log)" in messages
    else:
        assert "the last append ended at entry 5, but the log now ends at entry 4" in messages


def test_a_forged_rechain_is_still_caught_by_the_history_and_this_hosts_head(settings, lake):
    """Removing the last entry and rewriting the table leaves no gap in seq; history and the head do not agree."""
    from lakehouse.governance.audit import AUDIT, verify

    _log(settings)
    store = lake.existing_store(AUDIT)
    store.overwrite(AUDIT, store.read(AUDIT).collect().filter(pl.col("seq") < 5))
    kinds = {p.kind for p in verify(settings).problems}
    assert kinds == {"rewritten", "truncated", "forged"}  # entry 4 is not covered by a signed checkpoint


def test_unknown_actions_are_refused(settings):
    from lakehouse.governance.audit import AuditError, record

    with pytest.raises(AuditError, match="unknown audit action 'deleted_stuff'"):
        record(settings, action="deleted_stuff", target="x")  # type: ignore[arg-type]


def test_cli_audit_verify_exit_codes(settings, lake, lake_env, table_format):
    from lakehouse.governance.audit import AUDIT, verify

    _log(settings, n=3)
    assert verify(settings).intact  # exit 0 (the demo's CLI tests run the intact case)
    store = lake.existing_store(AUDIT)
    frame = store.read(AUDIT).collect()
    store.overwrite(AUDIT, frame.with_columns(pl.lit("mallory@evil").alias("actor")))
    bad = run_cli(["audit", "verify"], lake_env, LAKEHOUSE_TABLE_FORMAT=table_format)
    assert bad.returncode == 1
    assert "audit log TAMPERED" in bad.stdout and "entry 1 (restore silver.retail.t0) was edited" in bad.stdout
