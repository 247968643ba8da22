"""The audit log is anchored outside its writer: checkpoints are signed (Ed25519) with a key the
table's storage does not hold, and verified with a verifying key kept apart. Whoever can write the
table (or drop it) but does not hold the signing key cannot rewrite history unnoticed; concurrent
writers serialise through the table's own commits, so the chain never forks and no entry is lost."""

from __future__ import annotations

import multiprocessing
import os

import polars as pl
import pytest

ATTACKER_SEED = "11" * 32  # an Ed25519 seed the attacker made up


def _log(settings, n: int = 6) -> None:
    from lakehouse.governance.audit import NewEntry, record, record_many

    record(settings, action="restore", target="silver.retail.t0", details={"to": 0})
    record_many(settings, [NewEntry("maintenance", f"gold.retail.t{i}", {"files": i}) for i in range(1, n)])


def _forged(frame: pl.DataFrame, *, drop_seq: int) -> pl.DataFrame:
    """The log without entry ``drop_seq``, renumbered and re-chained with the public hash function;
    the signatures are those of the original rows (the attacker cannot make new ones)."""
    from lakehouse.governance.audit import GENESIS, entry_hash

    rows = frame.sort("seq").filter(pl.col("seq") != drop_seq).to_dicts()
    prev = GENESIS
    for i, row in enumerate(rows, start=1):
        row.update(seq=i, prev_hash=prev)
        fields = {k: row[k] for k in ("seq", "entry_id", "recorded_at", "actor", "action", "target")}
        fields.update({k: row[k] for k in ("run_id", "details", "source_id", "prev_hash")})
        row["entry_hash"] = prev = entry_hash(**fields)
    return pl.DataFrame(rows, schema=frame.schema)


def _head_is_the_forgers(settings, frame: pl.DataFrame) -> None:
    """The forger also rewrites this host's head file to the forged head (it is only a file)."""
    import json

    path = settings.home / "governance" / "audit_head.json"
    last = frame.sort("seq").tail(1)
    path.write_text(json.dumps({settings.warehouse: {"seq": last["seq"][0], "hash": last["entry_hash"][0]}}))


def test_a_recomputed_chain_without_one_entry_fails_verification(settings, lake):
    from lakehouse.governance.audit import AUDIT, verify

    _log(settings)
    store = lake.existing_store(AUDIT)
    forged = _forged(store.read(AUDIT).collect(), drop_seq=3)
    store.overwrite(AUDIT, forged, commit_metadata={"lakehouse_audit_head": f"5:{forged['entry_hash'][-1]}"})
    _head_is_the_forgers(settings, forged)
    report = verify(settings)
    assert not report.intact
    assert "forged" in {p.kind for p in report.problems}, report.problems


@pytest.mark.parametrize("signer", ["copied signatures", "attacker's own key"])
def test_dropping_the_table_and_re_appending_fails_verification(settings, lake, signer, monkeypatch):
    """A fresh table has a clean history (only appends): only the signatures give the forgery away."""
    from lakehouse.governance.audit import AUDIT, NewEntry, read_entries, record_many, verify

    _log(settings)
    store = lake.existing_store(AUDIT)
    original = store.read(AUDIT).collect()
    store.drop(AUDIT)
    if signer == "copied signatures":
        forged = _forged(original, drop_seq=2)
        store.append(AUDIT, forged, commit_metadata={"lakehouse_audit_head": f"5:{forged['entry_hash'][-1]}"})
    else:  # through the library, with a signing key of the attacker's own
        monkeypatch.setenv("LAKEHOUSE_AUDIT_SIGNING_KEY", ATTACKER_SEED)
        kept = original.sort("seq").filter(pl.col("seq") != 2).to_dicts()
        record_many(settings, [NewEntry(r["action"], r["target"], {}, actor=r["actor"]) for r in kept])
        monkeypatch.delenv("LAKEHOUSE_AUDIT_SIGNING_KEY")
        forged = store.read(AUDIT).collect()
    _head_is_the_forgers(settings, forged)
    assert len(read_entries(settings)) == 5
    report = verify(settings)
    assert not report.intact
    assert "forged" in {p.kind for p in report.problems}, report.problems


def test_a_missing_or_wrong_verifying_key_fails_verification(settings, monkeypatch):
    from lakehouse.governance.audit import VERIFY_KEY_FILE, verify

    _log(settings, n=3)
    assert verify(settings).intact
    monkeypatch.setenv("LAKEHOUSE_AUDIT_VERIFY_KEY", "ab" * 32)
    from lakehouse.settings import get_settings

    wrong = verify(get_settings())
    assert not wrong.intact and "forged" in {p.kind for p in wrong.problems}
    monkeypatch.delenv("LAKEHOUSE_AUDIT_VERIFY_KEY")
    (settings.home / VERIFY_KEY_FILE).unlink()
    missing = verify(settings)
    assert not missing.intact
    assert [p.kind for p in missing.problems] == ["unverifiable"], missing.problems


def test_the_signing_key_file_is_private_and_the_verifying_key_apart(settings):
    from lakehouse.governance.audit import SIGNING_KEY_FILE, VERIFY_KEY_FILE

    _log(settings, n=2)
    signing, verifying = settings.home / SIGNING_KEY_FILE, settings.home / VERIFY_KEY_FILE
    assert signing.is_file() and verifying.is_file() and signing != verifying
    assert os.stat(signing).st_mode & 0o777 == 0o600
    assert signing.read_text().strip() not in verifying.read_text()


def _writer(home: str, fmt: str, name: str, n: int) -> None:
    os.environ.update(LAKEHOUSE_HOME=home, LAKEHOUSE_TABLE_FORMAT=fmt)
    from lakehouse.governance.audit import record
    from lakehouse.settings import get_settings

    settings = get_settings()
    for i in range(n):
        record(settings, action="maintenance", target=f"{name}.{i}")


def test_concurrent_writers_keep_one_chain_and_lose_nothing(settings, lake_env, table_format):
    from lakehouse.governance.audit import read_entries, verify

    _log(settings, n=2)  # the table and the keys exist before the writers start
    ctx = multiprocessing.get_context("spawn")  # delta-rs does not survive fork
    writers = [ctx.Process(target=_writer, args=(str(lake_env), table_format, f"w{k}", 8)) for k in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=600)
    assert [w.exitcode for w in writers] == [0, 0]
    entries = read_entries(settings)
    targets = sorted(e.target for e in entries if e.target.startswith("w"))
    assert targets == sorted(f"w{k}.{i}" for k in range(2) for i in range(8))
    assert [e.seq for e in entries] == list(range(1, 19))
    report = verify(settings)
    assert report.intact, report.problems
