"""Maintenance and change capture behave the same for Delta and Iceberg."""

import datetime as dt
import hashlib
import os
from pathlib import Path

import polars as pl
import pytest

from lakehouse.exceptions import TableNotFoundError
from lakehouse.naming import TableRef
from lakehouse.tables import col

REF = TableRef("silver", "ops", "events")
DAYS = [dt.date(2024, 1, d) for d in (1, 2, 3, 4)]


def checksum(frame: pl.DataFrame) -> str:
    """Order-independent digest of a table's content."""
    rows = frame.select(sorted(frame.columns)).sort(sorted(frame.columns)).write_csv()
    return hashlib.sha256(rows.encode()).hexdigest()


def data_files(store, ref) -> int:
    root = Path(store.location(ref))
    return sum(1 for p in root.rglob("*.parquet") if "_change_data" not in p.parts)


def test_200_small_appends_then_compaction(store):
    for i in range(200):
        day = DAYS[i % len(DAYS)]
        store.append(REF, pl.DataFrame({"day": [day], "id": [i], "value": [f"v{i}"]}), partition_by=["day"])
    before = store.info(REF)
    content = checksum(store.read(REF).collect())
    assert before.files == 200 and before.rows == 200
    result = store.compact(REF)
    after = store.info(REF)
    assert result.operation == "COMPACT" and result.files_before == 200
    assert after.files <= len(DAYS)  # one file per partition
    assert after.rows == 200 and checksum(store.read(REF).collect()) == content
    assert after.version > before.version
    # compacting a compacted table changes nothing
    again = store.compact(REF)
    assert again.files_after == after.files


def test_vacuum_keeps_the_retention_window_and_removes_unreferenced_files(store):
    store.overwrite(REF, pl.DataFrame({"day": [DAYS[0]], "id": [1], "value": ["a"]}))
    old_version = store.version(REF)
    for i in range(2, 6):
        store.overwrite(REF, pl.DataFrame({"day": [DAYS[0]], "id": [i], "value": ["x"]}))
    files_on_disk = data_files(store, REF)
    assert files_on_disk >= 5
    kept = store.vacuum(REF, retention=dt.timedelta(hours=1))
    assert kept.files_removed == 0
    assert store.read(REF, version=old_version).collect().get_column("id").to_list() == [1]  # still in the window

    dry = store.vacuum(REF, retention=dt.timedelta(0), dry_run=True)
    assert dry.dry_run and dry.files_removed >= 4 and data_files(store, REF) == files_on_disk
    swept = store.vacuum(REF, retention=dt.timedelta(0))
    assert swept.files_removed >= 4 and swept.bytes_removed > 0
    assert data_files(store, REF) == store.info(REF).files == 1
    assert store.read(REF).collect().get_column("id").to_list() == [5]  # the current version is intact
    with pytest.raises((TableNotFoundError, OSError, Exception)):
        store.read(REF, version=old_version).collect()  # the old version is gone for good


def test_sorted_rewrite_keeps_the_content(store):
    rows = pl.DataFrame({"day": [DAYS[i % 2] for i in range(50)], "id": list(range(50))[::-1], "value": ["z"] * 50})
    for chunk in range(5):
        store.append(REF, rows.slice(chunk * 10, 10), partition_by=["day"])
    content = checksum(store.read(REF).collect())
    result = store.sort_files(REF, ["id"])
    assert result.operation in ("ZORDER", "SORT") and result.details["columns"] == ["id"]
    assert checksum(store.read(REF).collect()) == content
    assert store.info(REF).files <= 2


def test_changes_between_two_versions(store):
    base = pl.DataFrame({"day": [DAYS[0]] * 4, "id": [1, 2, 3, 4], "value": ["a", "b", "c", "d"]})
    store.merge(REF, base, keys=["id"])
    v1 = store.version(REF)
    store.merge(REF, pl.DataFrame({"day": [DAYS[0]] * 3, "id": [2, 4, 5], "value": ["B", "d", "e"]}), keys=["id"])
    store.delete(REF, col("id") == 3)
    changes = store.changes(REF, since=v1, keys=["id"])
    got = sorted((r["_change_type"], r["id"], r["value"]) for r in changes.to_dicts())
    assert got == [
        ("delete", 3, "c"),
        ("insert", 5, "e"),
        ("update_postimage", 2, "B"),
        ("update_preimage", 2, "b"),
    ]
    assert changes.get_column("_commit_version").max() == store.version(REF)
    assert store.changes(REF, since=store.version(REF), keys=["id"]).height == 0


def test_oversized_listing_is_not_needed_for_info(store):
    store.append(REF, pl.DataFrame({"day": [DAYS[0]], "id": [1], "value": ["a"]}))
    info = store.info(REF)
    assert info.avg_file_bytes == info.size_bytes // info.files > 0
    assert os.path.isdir(info.uri)
