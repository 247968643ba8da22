"""Personal data never lands where right-to-erasure cannot reach it.

Erasure deletes a subject from the lake's tables and the landing files, but the Dagster event log,
the logs, the append-only audit log and the other governance tables are not rewritten. So a
subject's values (an e-mail, a phone number, an id) must never be copied there: not as a sample of
a contract violation, not as a quarantine reason in metadata, not as a duplicated key.

A small demo (2 days) runs in process with one extra subject whose row breaks the customers
contract (a malformed e-mail) and a second row of theirs that bronze quarantines (columns shifted:
the phone in birth_date, the e-mail in signup_date). Their values then must occur in the
quarantine table (which erasure reaches) and nowhere outside the lake's data tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

SUBJECT_ID = "9182736451"
EMAIL = "zq7741.subject@@mail.example"  # lower case: silver lower-cases e-mails
PHONE = "+49 151 7733 9182"
NEEDLES = (EMAIL, PHONE, SUBJECT_ID)


def _subject_rows(day: str) -> bytes:
    good = [SUBJECT_ID, "Zqxwv", "Subjectson", EMAIL, PHONE, "1984-03-02", "Wxyzstrasse 77", "Berlin", "10115"]
    good += ["Berlin", "DE", "consumer", day, f"{day}T10:00:00Z"]
    shifted = [*good[:5], PHONE, *good[6:12], EMAIL, good[13]]  # phone in birth_date, e-mail in signup_date
    return ("\n".join(",".join(row) for row in (good, shifted)) + "\n").encode("ascii")


def _hits(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


@pytest.fixture
def subject_lake(lake_env: Path, monkeypatch: pytest.MonkeyPatch):
    """A 2-day demo lake (Delta) with the subject seeded into both days' customer snapshots."""
    monkeypatch.setenv("LAKEHOUSE_TABLE_FORMAT", "delta")
    from lakehouse.cli import run_after_daily, run_daily, simulated_services
    from lakehouse.partitions import partition_dates
    from lakehouse.settings import get_settings
    from lakehouse.simulator import SimulationConfig, generate

    settings = get_settings()
    generate(settings, SimulationConfig(start=settings.start_date, days=2, seed=7, scale=0.3))
    keys = partition_dates(settings.start_date, 2)
    for day in keys:
        path = Path(settings.landing) / "retail" / "customers" / day / f"customers_{day}.csv"
        data = path.read_bytes()
        path.write_bytes(data + (b"" if data.endswith(b"\n") else b"\n") + _subject_rows(day))
    with simulated_services(settings):
        runs = run_daily(keys, show_progress=False)
        runs += run_after_daily(keys)
    return settings, runs


def test_no_subject_value_outside_the_erasable_tables(subject_lake, lake_env):
    import dagster as dg
    from dagster._serdes import serialize_value

    from lakehouse.governance.audit import read_entries, verify
    from lakehouse.naming import TableRef
    from lakehouse.tables import Lake

    settings, runs = subject_lake
    lake = Lake(settings)
    # the arrangement: the subject's row is quarantined with its values in the reason (erasable),
    quarantine_ref = TableRef("bronze", "retail", "customers__quarantine")
    quarantined = lake.existing_store(quarantine_ref).read(quarantine_ref).collect()
    reasons = " ".join(quarantined.get_column("_reason").to_list())
    assert PHONE in reasons and EMAIL in reasons
    # ... and their malformed e-mail breaks the customers contract (recorded in governance)
    results_ref = TableRef("governance", "contracts", "contract_results")
    results = lake.existing_store(results_ref).read(results_ref).collect()
    violation = results.filter((pl.col("contract") == "retail_customers") & (pl.col("kind") == "quality"))
    assert violation.height >= 1 and "email pattern" in violation.get_column("message")[0]
    assert any(e.action == "contract_violation" for e in read_entries(settings))
    assert verify(settings).intact  # the audit log the graph wrote verifies with the lake's verifying key
    # the blocking contract check stops the customer dimension (and what needs it) on both days
    assert runs[-1]["partition"] == "-" and runs[-1]["success"], runs[-1]  # the governance run

    found: dict[str, list[str]] = {}
    # 1. every byte Dagster stored (SQLite event log, run storage, compute logs) under DAGSTER_HOME
    for file in sorted(Path(lake_env / "dagster").rglob("*")):
        if file.is_file():
            hits = _hits(file.read_bytes().decode("utf-8", "replace"))
            if hits:
                found[f"file {file.relative_to(lake_env)}"] = hits
    # 2. the decoded event log records (metadata, check results, errors), whatever the encoding
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            for record in instance.all_logs(run.run_id):
                hits = _hits(serialize_value(record))
                if hits:
                    found[f"event {record.dagster_event_type or 'log'} in run {run.run_id[:8]}"] = hits
    # 3. log files in the state folder (alerts, dbt) outside the lake's data
    for file in sorted(lake_env.rglob("*.log")) + sorted(lake_env.rglob("*.jsonl")):
        if "landing" not in file.parts and "warehouse" not in file.parts:
            hits = _hits(file.read_text(errors="replace"))
            if hits:
                found[f"log {file.relative_to(lake_env)}"] = hits
    # 4. every governance table (audit log included) and the exported data dictionary
    for info in lake.tables():
        if info.ref.layer == "governance":
            frame = lake.store(info.format).read(info.ref).collect()
            text = json.dumps(frame.cast(pl.String).to_dicts(), ensure_ascii=False)
            hits = _hits(text)
            if hits:
                found[f"table {info.ref}"] = hits
    for file in (Path(settings.warehouse) / "_catalog").glob("*"):
        hits = _hits(file.read_text(errors="replace"))
        if hits:
            found[f"file {file.name}"] = hits
    assert found == {}


def test_a_duplicated_key_is_reported_by_its_keyed_hash(settings, store):
    """The unique-key check's sample of duplicated keys (Dagster metadata) holds no key value."""
    import dagster as dg

    from lakehouse.checks import unique_key_check
    from lakehouse.governance.masking import keyed_hash, masking_key
    from lakehouse.naming import TableRef
    from lakehouse.resource import LakeResource

    ref = TableRef("silver", "shop", "contacts")
    store.append(ref, pl.DataFrame({"email": [EMAIL, EMAIL, "other@example.org"], "n": [1, 2, 3]}))

    @dg.asset(key=ref.path)
    def contacts() -> None:
        return None

    check = unique_key_check(asset=ref.path, columns=["email"])
    result = dg.materialize(
        [contacts, check], resources={"lake": LakeResource.from_settings(settings)}, raise_on_error=False
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    sample = evaluation.metadata["sample_duplicates"].value
    assert sample == [{"email": f"hmac:{keyed_hash(EMAIL, masking_key(settings))}", "rows": 2}]
    assert EMAIL not in json.dumps(sample)
