"""Erasure is safe: it never breaks a write in flight, a writer cannot put the subject back behind
its back, a crash (even ``kill -9``) at any step is finished by running it again, verification
fails closed and reads decoded values, identifiers match exactly (``ann@x.com`` is not
``joann@x.com``), and the erasure package does not import the code location.

The lake is small on purpose (tests/erasure_lake.py, shared with the erasure fault-injection
trials of tests/faults.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from erasure_lake import ANN, LANDING_FILE, erased_state_problems
from erasure_lake import build as _build
from erasure_lake import read as _read
from erasure_lake import t as _t


def _assert_ann_gone_and_joann_kept(settings, store) -> None:
    assert erased_state_problems(settings, store) == []


def _erase(settings, **kw):
    from lakehouse.governance.erasure import erase

    return erase(settings, column="email", value=ANN, recompute=False, **kw)


# -- e. exact matching ------------------------------------------------------------------------------


def test_exact_matching_keeps_a_customer_whose_address_contains_the_subjects(settings, store):
    _build(settings, store)
    result = _erase(settings)
    assert result.passed, result.verification
    _assert_ann_gone_and_joann_kept(settings, store)


# -- d. verification fails closed and reads decoded values ------------------------------------------


def test_a_read_error_fails_verification(settings, store, lake, monkeypatch):
    from lakehouse.governance.erasure import verify_absent

    _build(settings, store)

    def broken(self, ref, **kw):
        raise OSError("simulated: connection reset while reading")

    monkeypatch.setattr(type(store), "read", broken)
    checked = verify_absent(settings, {"email": {"nobody@x.com"}}, lake=lake)
    assert not checked.passed
    assert any("connection reset" in f for f in checked.findings), checked.findings


def _leftover(settings, store, name: str, table: pa.Table, compression: str) -> str:
    """A Parquet file no version references (e.g. left by a failed write) under the table's folder."""
    from lakehouse.naming import join_uri
    from lakehouse.storage import filesystem

    location = store.location(_t(name))
    folder = join_uri(location, "data") if settings.table_format == "iceberg" else location
    uri = join_uri(folder, f"leftover-{uuid.uuid4().hex}.parquet")
    fs, path = filesystem(settings, uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        pq.write_table(table, out, compression=compression, write_statistics=False)
    return uri


def test_verification_reads_compressed_parquet_values(settings, store, lake):
    from lakehouse.governance.erasure import verify_absent
    from lakehouse.storage import read_bytes

    _build(settings, store)
    eve = "eve.erased@example.org"  # a subject already gone from every table
    emails = [f"customer{i}@example.org" for i in range(200)] + [eve] + [f"z{i}@example.org" for i in range(200)]
    uri = _leftover(settings, store, "silver.shop.orders", pa.table({"email": emails}), "gzip")
    assert eve.encode() not in read_bytes(settings, uri)  # a byte search cannot see it
    values = {"email": {eve}, "customer_id": {9}}
    checked = verify_absent(settings, values, lake=lake, residue_tables=[_t("silver.shop.orders")])
    assert not checked.passed
    assert checked.findings == [f"silver.shop.orders: file {uri.rsplit('/', 1)[-1]} still holds the subject in email"]


def test_verification_searches_integer_ids(settings, store, lake):
    from lakehouse.governance.erasure import verify_absent

    _build(settings, store)
    ids = pa.table({"customer_id": pa.array([7, 9, 11], pa.int64())})
    uri = _leftover(settings, store, "silver.shop.orders", ids, "snappy")
    values = {"customer_id": {9}}  # a subject already gone from every table
    checked = verify_absent(settings, values, lake=lake, residue_tables=[_t("silver.shop.orders")])
    assert not checked.passed
    assert checked.findings == [
        f"silver.shop.orders: file {uri.rsplit('/', 1)[-1]} still holds the subject in customer_id"
    ]


# -- a. the purge never removes files a running write may still commit ------------------------------


def test_the_purge_keeps_the_files_of_a_write_in_flight(settings, store):
    _build(settings, store)
    ref = _t("silver.shop.shipments")
    schema = store.read(ref).collect().to_arrow().schema
    if settings.table_format == "iceberg":  # as pyiceberg writes it: with the columns' field ids
        from pyiceberg.io.pyarrow import schema_to_pyarrow

        schema = schema_to_pyarrow(store._table(ref).schema())
    inflight = pa.table({"order_id": pa.array([300], pa.int64()), "carrier": ["fedex"]}).cast(schema)
    # a writer (outside Dagster's pools) has written its data file and commits after the erasure
    uri = _leftover(settings, store, "silver.shop.shipments", inflight, "snappy")
    result = _erase(settings)
    assert os.path.exists(uri), "the purge deleted the data file of a write in flight"
    assert result.passed, result.verification
    if settings.table_format == "delta":
        from deltalake import DeltaTable
        from deltalake.transaction import AddAction

        table = DeltaTable(store.location(ref))
        name = uri.rsplit("/", 1)[-1]
        stats = json.dumps({"numRecords": 1})
        add = AddAction(name, os.path.getsize(uri), {}, int(time.time() * 1000), True, stats)
        table.create_write_transaction([add], "append", table.schema())
    else:
        store._table(ref).add_files([uri])
    after = store.read(ref).collect().sort("order_id")
    assert after.rows() == [(200, "dhl"), (300, "fedex")]


# -- a + b. erasure holds the writers' pools --------------------------------------------------------


def test_a_writer_holding_the_pool_cannot_write_the_subject_back(settings, store):
    from lakehouse.governance.erasure import verify_certificates
    from lakehouse.naming import pool_for

    _build(settings, store)
    ref = _t("silver.shop.customers")
    pool = pool_for(ref)
    out: dict[str, object] = {}
    with dg.DagsterInstance.get() as instance:
        events = instance.event_log_storage
        events.set_concurrency_slots(pool, 1)
        assert events.claim_concurrency_slot(pool, "writer-run", "write_customers").is_claimed
        read_before = store.read(ref).collect()  # the run read the subject's row before the erasure
        version_before = store.version(ref)

        def run() -> None:
            out["result"] = _erase(settings, instance=instance)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(4)  # the writer takes its time
        waited = thread.is_alive()
        version_while_held = store.version(ref)
        store.merge(ref, read_before, keys=["customer_id"])  # ... and commits what it read
        events.free_concurrency_slot_for_step("writer-run", "write_customers")
        thread.join(180)
        assert not thread.is_alive()
    assert waited, "the erasure did not wait for the writer holding the table's pool"
    assert version_while_held == version_before  # nothing was deleted while the writer held the pool
    result = out["result"]
    assert result.passed, result.verification  # type: ignore[attr-defined]
    _assert_ann_gone_and_joann_kept(settings, store)
    assert verify_certificates(settings)[0]
    with dg.DagsterInstance.get() as instance:  # the erasure gave its slots back
        assert instance.event_log_storage.get_concurrency_info(pool).active_slot_count == 0


# -- c. plan -> journal -> apply -> verify: a crash is finished by running it again ------------------


def test_a_crash_between_orders_and_shipments_is_finished_by_a_rerun(settings, store, monkeypatch):
    from lakehouse.governance.erasure import verify_certificates

    _build(settings, store)
    original = type(store).delete

    def crash_on_shipments(self, ref, where, **kw):
        if ref.name == "shipments":
            raise RuntimeError("simulated crash before shipments")
        return original(self, ref, where, **kw)

    monkeypatch.setattr(type(store), "delete", crash_on_shipments)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _erase(settings)
    assert _read(store, "silver.shop.orders").rows() == [(200, 2)]  # orders went first
    monkeypatch.setattr(type(store), "delete", original)
    result = _erase(settings)  # the keys followed from the deleted orders come from the journal
    assert _read(store, "silver.shop.shipments").rows() == [(200, "dhl")]  # order 100's shipments too
    assert result.passed, result.verification
    _assert_ann_gone_and_joann_kept(settings, store)
    assert verify_certificates(settings)[0]


_SCRIPT = """
import json
from lakehouse.settings import get_settings
from lakehouse.governance.erasure import erase
result = erase(get_settings(), column="email", value="ann@x.com", recompute=False)
print(json.dumps({"passed": result.passed, "resumed": result.resumed}))
"""


def _run(settings, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", _SCRIPT], env=full, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # two subprocesses each
@pytest.mark.parametrize(
    ("table_format", "step"),
    [
        ("delta", "planned"),  # the journal is written, nothing changed yet
        ("delta", "landing:" + LANDING_FILE),
        ("delta", "delete:silver.shop.orders"),  # orders gone, shipments not: their keys are journaled
        ("iceberg", "delete:silver.shop.orders"),
        ("iceberg", "purge:silver.shop.customers"),
        ("delta", "verify"),  # verified, not certified
    ],
    indirect=["table_format"],
)
def test_kill_9_at_any_step_then_a_rerun_completes(settings, store, step):
    from lakehouse.governance.erasure import pending_journals, verify_certificates
    from lakehouse.storage import read_bytes

    _build(settings, store)
    killed = _run(settings, LAKEHOUSE_ERASURE_KILL_AT=step)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    [journal] = pending_journals(settings)
    sealed = read_bytes(settings, journal)  # what it holds is not readable without the key
    assert ANN.encode() not in sealed and b"ann" not in sealed.lower() and b"shipments" not in sealed
    rerun = _run(settings)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert json.loads(rerun.stdout.strip().splitlines()[-1]) == {"passed": True, "resumed": True}
    _assert_ann_gone_and_joann_kept(settings, store)
    assert verify_certificates(settings)[0]
    assert pending_journals(settings) == []  # done: the journal (which holds the values) is gone


# -- f. no import of the code location --------------------------------------------------------------


def test_the_erasure_package_does_not_import_the_code_location(settings, store):
    _build(settings, store)
    script = (
        "import sys\n"
        "from lakehouse.settings import get_settings\n"
        "from lakehouse.governance.erasure import erase\n"
        "erase(get_settings(), column='email', value='ann@x.com', dry_run=True)\n"
        "bad = sorted(m for m in sys.modules if m == 'lakehouse.definitions' or m == 'assets' or m.startswith('assets.'))\n"
        "print(bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=dict(os.environ), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


# -- g. a landing file read with its source's options is verified without them ---------------------


def test_a_landing_file_the_default_reader_misreads_never_verifies_with_the_subject_in_it(settings, store):
    # a header-less file (the source spec names its columns): read with the default options its
    # first record is taken for a header, so the subject's record there is invisible to a parse
    from lakehouse.ingest.readers import read_file
    from lakehouse.naming import join_uri
    from lakehouse.storage import read_bytes, write_bytes

    file = "shop/contacts/2024-01-01/contacts.csv"
    data = b"ann@x.com,Ann\njoann@x.com,Jo Ann\n"  # all text: a default read takes line 1 for a header
    write_bytes(settings, join_uri(settings.landing, file), data)
    options = {"header": False, "column_names": ["email", "name"]}
    read = read_file(data, source=file, options=options)
    assert read.rows.get_column("email").to_list() == [ANN, "joann@x.com"]
    store.append(_t("bronze.shop.contacts"), read.rows.with_columns(pl.lit(file).alias("_source_file")))
    result = _erase(settings)
    landing = read_bytes(settings, join_uri(settings.landing, file))
    still_there = any(line.split(b",")[0] == ANN.encode() for line in landing.splitlines())
    assert _read(store, "bronze.shop.contacts").get_column("email").to_list() == ["joann@x.com"]
    # never "verified" with her record in the file; and this one is erased from it (read without header)
    assert not (result.passed and still_there), (result.verification, landing)
    assert landing == b"\njoann@x.com,Jo Ann\n"
    assert result.passed, result.verification


def test_verification_fails_while_a_landing_file_holds_the_subject_in_any_parse(settings, store):
    # a JSON document whose records sit under a key (its source's records_path): read without the
    # source's options it is one record with no e-mail column, yet it holds the subject's address
    import json as json_module

    from lakehouse.governance.erasure import verify_absent
    from lakehouse.naming import join_uri
    from lakehouse.storage import write_bytes

    file = "shop/contacts/2024-01-01/contacts.json"
    document = {"data": [{"contact": {"mail": ANN}}, {"contact": {"mail": "joann@x.com"}}]}
    write_bytes(settings, join_uri(settings.landing, file), json_module.dumps(document).encode())
    checked = verify_absent(settings, {"email": {ANN}}, landing_files=[file])
    assert not checked.passed
    assert checked.findings == [f"landing file {file} still holds the subject's records"]
    other = verify_absent(settings, {"email": {"ann@y.com"}}, landing_files=[file])
    assert other.passed, other.findings  # whole tokens only: not a substring of someone else's


# -- h. a purge killed between expiring snapshots and deleting their files is finished by a rerun ----


@pytest.mark.parametrize("table_format", ["iceberg"], indirect=True)
def test_a_purge_killed_after_expiring_snapshots_deletes_their_files_when_run_again(settings, store, monkeypatch):
    import datetime as dt

    import lakehouse.tables.iceberg as iceberg_module
    from lakehouse.tables.predicates import col

    ref = _t("silver.shop.contacts")
    store.append(ref, pl.DataFrame({"customer_id": [1, 2], "email": [ANN, "joann@x.com"]}))
    store.delete(ref, col("customer_id") == 1)
    old_files = store._referenced_files(store._table(ref), store._table(ref).snapshots())
    real_filesystem = iceberg_module.filesystem

    class Killed(BaseException):
        pass

    def dying_filesystem(*args, **kwargs):  # type: ignore[no-untyped-def]
        fs, root = real_filesystem(*args, **kwargs)

        class Dying:  # the process dies at its first deletion, after the expiry committed
            def __getattr__(self, name):  # type: ignore[no-untyped-def]
                return getattr(fs, name)

            def delete_file(self, path):  # type: ignore[no-untyped-def]
                raise Killed(path)

        return Dying(), root

    monkeypatch.setattr(iceberg_module, "filesystem", dying_filesystem)
    with pytest.raises(Killed):
        store.purge_history_sparing_writes(ref, grace=dt.timedelta(hours=1))
    assert len(store._table(ref).snapshots()) == 1  # the expiry committed
    monkeypatch.setattr(iceberg_module, "filesystem", real_filesystem)
    store.purge_history_sparing_writes(ref, grace=dt.timedelta(hours=1))  # every file is young
    needed = store._referenced_files(store._table(ref), store._table(ref).snapshots())
    fs, _root = real_filesystem(settings, store.location(ref))
    left = [f for f in old_files - needed if fs.get_file_info(f).type != iceberg_module.pafs.FileType.NotFound]
    assert left == []  # the files of the expired snapshots (the subject's row among them) are gone
    assert _read(store, "silver.shop.contacts").rows() == [(2, "joann@x.com")]
