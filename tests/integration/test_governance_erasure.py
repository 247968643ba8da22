"""Right to erasure on the smallest lake that has every hard case, for both table formats.

Landing files (one of them Latin-1, one with a malformed line of the subject), bronze rows with
their file and line, a bronze and a silver quarantine holding the subject in ``_raw``, silver
entities with several versions, a dimension, a fact table that knows the subject only by
surrogate key and order id, and a real Dagster aggregate (with the real totals check) that holds
no subject rows but must be recomputed. The test proves the subject is gone from every table,
every readable version, the change feed, the tables' files and the landing files; that every
other row is untouched and every reconciliation still holds; and that the certificate is in an
intact audit log.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest
from conftest import run_cli

SUBJECT = 2
DAYS = ("2024-01-01", "2024-01-02")
EMAILS = {1: "ann.smith@example.com", 2: "Bjoern.Mueller@example.org", 3: "chloe@example.net"}
NEW_EMAIL_2 = "bjoern.m@example.org"  # the subject changed address on day 2


def _customers_csv(day: int) -> bytes:
    rows = ["customer_id,first_name,last_name,email,phone,updated_at"]
    for cid in (1, 2, 3):
        email = NEW_EMAIL_2 if (cid == 2 and day == 2) else EMAILS[cid]
        name = "Björn,Müller" if cid == 2 else ("Ann,Smith" if cid == 1 else "Chloé,Dubois")
        rows.append(f"{cid},{name},{email},+49 30 55500{cid}{day},2024-01-0{day}T08:00:00Z")
    # a ragged line (quarantined in bronze): the subject's on day 1 (Latin-1), someone else's on day 2
    rows.append("2,Björn,Müller,x,y,z,ragged" if day == 1 else "3,Chloé,Dubois,x,y,z,ragged")
    return ("\n".join(rows) + "\n").encode("latin-1" if day == 1 else "utf-8")


ORDERS_CSV = (
    b"order_id,customer_id,order_date,order_total,updated_at\n"
    b"10,1,2024-01-01,10.00,2024-01-01T10:00:00Z\n"
    b"11,2,2024-01-01,20.00,2024-01-01T11:00:00Z\n"
    b'12,3,2024-01-02,"30.00",2024-01-02T12:00:00Z\n'
    b"11,2,2024-01-01,25.00,2024-01-01T13:00:00Z\n"  # a correction: the latest version wins
    b"13,2,2024-01-02,40.00,2024-01-02T09:00:00Z,extra\n"  # ragged: quarantined in bronze
    b"14,1,2024-01-02,50.00,2024-01-02T14:00:00Z\n"
)
LINES_CSV = (
    b"order_id,line_number,quantity,net_amount\n10,1,1,10.00\n11,1,1,15.00\n11,2,2,10.00\n12,1,3,30.00\n14,1,5,50.00\n"
)


def _bronze(settings, source: str, day: str, data: bytes, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Landing file -> bronze rows and quarantine, read by the project's readers (as ingestion does)."""
    from lakehouse.ingest.readers import read_file
    from lakehouse.naming import join_uri
    from lakehouse.storage import write_bytes

    file = f"shop/{source}/{day}/{name}"
    write_bytes(settings, join_uri(settings.landing, file), data)
    result = read_file(data, source=file)
    stamp = pl.lit(dt.date.fromisoformat(day)).alias("_partition_date")
    rows = result.rows.with_columns(pl.lit(file).alias("_source_file"), stamp)
    quarantine = result.quarantine.with_columns(pl.lit(file).alias("_source_file"), stamp)
    return rows, quarantine


def _t(name: str):
    from lakehouse.naming import TableRef

    return TableRef.parse(name)


def _build_lake(settings, store) -> dict[str, pl.DataFrame]:
    """Write every table (several versions each) and return the day-2 silver/gold content."""
    c1, q1 = _bronze(settings, "customers", DAYS[0], _customers_csv(1), "customers.csv")
    c2, q2 = _bronze(settings, "customers", DAYS[1], _customers_csv(2), "customers.csv")
    orders, orders_q = _bronze(settings, "orders", DAYS[0], ORDERS_CSV, "orders.csv")
    lines, _ = _bronze(settings, "order_lines", DAYS[0], LINES_CSV, "lines.csv")
    assert orders_q.height == 1 and "13,2," in orders_q.item(0, "_raw")
    store.append(_t("bronze.shop.customers"), c1)
    store.append(_t("bronze.shop.customers"), c2)
    store.append(_t("bronze.shop.customers__quarantine"), q1.vstack(q2))
    store.append(_t("bronze.shop.orders"), orders)
    store.append(_t("bronze.shop.orders__quarantine"), orders_q)
    store.append(_t("bronze.shop.order_lines"), lines)

    typed = lambda f: f.with_columns(pl.col("customer_id").cast(pl.Int64))  # noqa: E731
    for day_rows in (c1, c2):  # silver customers: merged day by day (two versions)
        silver_c = typed(day_rows).select(
            "customer_id", "first_name", "last_name", "email", "phone", "_source_file", "_source_line"
        )
        silver_c = silver_c.with_columns(pl.col("email").str.to_lowercase())
        store.merge(_t("silver.shop.customers"), silver_c, keys=["customer_id"])
    o = orders.with_columns(
        pl.col("order_id").cast(pl.Int64),
        pl.col("customer_id").cast(pl.Int64),
        pl.col("order_date").str.to_date(),
        pl.col("order_total").cast(pl.Decimal(18, 2)),
    )
    latest = o.sort("updated_at").unique("order_id", keep="last").sort("order_id")
    rejected = latest.filter(pl.col("order_id") == 11).with_columns(
        pl.lit(25).alias("bad")
    )  # silver reject of the subject
    silver_orders = latest.select(
        "order_id", "customer_id", "order_date", "order_total", "_source_file", "_source_line"
    )
    for day in DAYS:  # one partition write per day (two versions)
        part = silver_orders.filter(pl.col("order_date") == dt.date.fromisoformat(day))
        store.overwrite_partitions(
            _t("silver.shop.orders"), part, partition_by="order_date", values=[dt.date.fromisoformat(day)]
        )
    raw = json.dumps({"order_id": 11, "customer_id": SUBJECT, "order_total": "-1"})
    store.append(
        _t("silver.shop.orders__quarantine"),
        pl.DataFrame(
            {
                "_source_file": [rejected.item(0, "_source_file")],
                "_source_line": [99],
                "_raw": [raw],
                "_reason": ["order_total -1 is negative"],
            }
        ),
    )
    lines_s = lines.with_columns(
        pl.col("order_id").cast(pl.Int64),
        pl.col("line_number").cast(pl.Int64),
        pl.col("net_amount").cast(pl.Decimal(18, 2)),
    ).select("order_id", "line_number", "net_amount")
    store.append(_t("silver.shop.order_lines"), lines_s)
    dim = (
        pl.concat([typed(c1), typed(c2)])
        .with_columns(pl.col("email").str.to_lowercase())
        .select("customer_id", "email")
        .unique(maintain_order=True)
        .with_row_index("version")
        .with_columns((pl.col("customer_id") * 100 + pl.col("version")).cast(pl.Int64).alias("customer_sk"))
        .select("customer_sk", "customer_id", "email")
    )
    store.append(_t("gold.shop.dim_customer"), dim.head(3))
    store.append(_t("gold.shop.dim_customer"), dim.slice(3))
    current_sk = dim.group_by("customer_id").agg(pl.col("customer_sk").max())
    fct = (
        lines_s.join(silver_orders.select("order_id", "customer_id", "order_date"), on="order_id")
        .join(current_sk, on="customer_id")
        .select("order_id", "line_number", "order_date", "customer_sk", "net_amount")
        .sort("order_id", "line_number")
    )
    store.append(_t("gold.shop.fct_sales"), fct.head(2))
    store.append(_t("gold.shop.fct_sales"), fct.slice(2))
    return {"silver_orders": silver_orders, "fct": fct, "dim": dim}


def _defs(settings):
    """A real Dagster aggregate over silver orders, with the real totals check."""
    from lakehouse.checks import aggregate_match_check
    from lakehouse.io_manager import LakehouseIOManager
    from lakehouse.partitions import daily_partitions
    from lakehouse.resource import LakeResource

    orders = dg.AssetSpec(
        ["silver", "shop", "orders"], partitions_def=daily_partitions, metadata={"partition_expr": "order_date"}
    )

    @dg.asset(
        key=["gold", "shop", "daily_totals"],
        ins={"orders": dg.AssetIn(key=orders.key)},
        partitions_def=daily_partitions,
        metadata={"partition_expr": "order_date"},
    )
    def daily_totals(orders: pl.DataFrame) -> pl.DataFrame:
        return orders.group_by("order_date").agg(
            pl.len().alias("orders"), pl.col("order_total").sum().cast(pl.Decimal(18, 2)).alias("revenue")
        )

    check = aggregate_match_check(
        asset=["gold", "shop", "daily_totals"],
        upstream=["silver", "shop", "orders"],
        aggregates={
            "revenue": (pl.col("revenue").sum(), pl.col("order_total").sum()),
            "orders": (pl.col("orders").sum(), pl.len()),
        },
        partitions_def=daily_partitions,
        partition_column="order_date",
    )
    lake = LakeResource.from_settings(settings)
    return dg.Definitions(
        assets=[orders, daily_totals],
        asset_checks=[check],
        resources={"lake": lake, "io_manager": LakehouseIOManager(lake=lake)},
    )


def _subject_filter(frame: pl.DataFrame) -> pl.Expr:
    parts = [pl.lit(False)]
    if "customer_id" in frame.columns:
        parts.append(pl.col("customer_id").cast(pl.String) == str(SUBJECT))
    if "email" in frame.columns:
        parts.append(pl.col("email").str.to_lowercase().is_in([EMAILS[2].lower(), NEW_EMAIL_2]))
    if "order_id" in frame.columns:
        parts.append(pl.col("order_id").cast(pl.String).is_in(["11", "13"]))
    if "customer_sk" in frame.columns:
        parts.append((pl.col("customer_sk") // 100) == SUBJECT)
    if "_raw" in frame.columns:
        raw = pl.col("_raw")
        parts.append(
            raw.str.contains(f'"customer_id": {SUBJECT}') | raw.str.starts_with("13,2,") | raw.str.starts_with("2,")
        )
    out = parts[0]
    for p in parts[1:]:
        out = out | p.fill_null(False)
    return out


def _content(lake) -> dict[str, pl.DataFrame]:
    out = {}
    for info in lake.tables():
        if info.ref.layer != "governance":
            out[str(info.ref)] = lake.store(info.format).read(info.ref).collect()
    return out


def test_erasure_removes_the_subject_everywhere_and_keeps_everything_else(settings, store, lake):
    from lakehouse.governance.audit import read_entries, verify
    from lakehouse.governance.erasure import erase, verify_certificates
    from lakehouse.ingest.readers import count_records, detect_format
    from lakehouse.naming import join_uri
    from lakehouse.storage import list_files, read_bytes

    _build_lake(settings, store)
    defs = _defs(settings)
    # a persistent instance, as the CLI uses: the recompute runs go through InProcessRuns there
    with dg.DagsterInstance.get() as instance:
        job = defs.resolve_implicit_global_asset_job_def()
        for day in DAYS:
            assert job.execute_in_process(partition_key=day, instance=instance).success
        before = _content(lake)
        # the subject is really there: in every table, and in an old version of silver customers
        holding = {name for name, frame in before.items() if frame.filter(_subject_filter(frame)).height}
        assert holding == {n for n in before if n != "gold.shop.daily_totals"}, holding
        old = store.read(
            _t("silver.shop.customers"), version=store.history(_t("silver.shop.customers"))[-1].version
        ).collect()
        assert EMAILS[2].lower() in old.get_column("email").to_list()

        result = erase(
            settings, column="customer_id", value=SUBJECT, defs=defs, instance=instance, reason="ticket DPO-1"
        )

    assert result.passed, result.verification
    removed = {t["table"]: t["rows_removed"] for t in result.tables}
    expected = {name: frame.filter(_subject_filter(frame)).height for name, frame in before.items() if name in holding}
    assert removed == expected
    assert all(t["history"] == "purged" for t in result.tables), result.tables
    # the aggregate was recomputed for the subject's day, and its real totals check passed
    assert [r["partitions"] for r in result.recomputed] == [["2024-01-01"]]
    assert all(c["passed"] for r in result.recomputed for c in r["checks"]) and result.recomputed[0]["checks"]

    after = _content(lake)
    # 1. every other row is exactly as it was; the subject's rows are gone
    for name, frame in before.items():
        kept = frame.filter(~_subject_filter(frame)) if name != "gold.shop.daily_totals" else None
        if kept is not None:
            assert after[name].sort(after[name].columns).equals(kept.sort(kept.columns)), name
    daily = after["gold.shop.daily_totals"].sort("order_date")
    assert daily.select("orders").to_series().to_list() == [1, 2]  # order 11 (the subject's) left day 1
    # 2. no readable version and no change feed holds the subject; unreadable versions cannot leak
    for info in lake.tables():
        s = lake.store(info.format)
        for commit in s.history(info.ref):
            try:
                frame = s.read(info.ref, version=commit.version).collect()
            except Exception:
                continue
            assert frame.filter(_subject_filter(frame)).height == 0, (info.ref, commit.version)
        try:
            changes = s.changes(info.ref, since=-1)
        except Exception:
            continue
        assert changes.filter(_subject_filter(changes)).height == 0, info.ref
    # 3. nothing under the tables' folders still spells the subject's e-mail addresses
    needles = [e.encode() for e in (EMAILS[2], EMAILS[2].lower(), NEW_EMAIL_2)]
    for info in lake.tables():
        for entry in list_files(settings, info.uri):
            data = read_bytes(settings, entry.uri)
            assert not any(n in data for n in needles), entry.uri
    # 4. landing: the subject's records are blank lines; landing records = bronze + quarantine per file
    for entry in list_files(settings, join_uri(settings.landing, "shop")):
        data = read_bytes(settings, entry.uri)
        assert (
            not any(n in data.lower() for n in needles) and b"M\xfcller" not in data and "Müller".encode() not in data
        )
        file = entry.uri[len(settings.landing) + 1 :]
        source = file.split("/")[1]
        written = sum(
            after[f"bronze.shop.{t}"].filter(pl.col("_source_file") == file).height
            for t in (source, f"{source}__quarantine")
            if f"bronze.shop.{t}" in after
        )
        assert count_records(data, fmt=detect_format(file, data)) == written, file
    # other records kept their line numbers: bronze still points at the right lines
    from lakehouse.ingest.readers import read_file

    orders_file = "shop/orders/2024-01-01/orders.csv"
    reread = read_file(read_bytes(settings, join_uri(settings.landing, orders_file)), source=orders_file).rows
    bronze_orders = after["bronze.shop.orders"].select("order_id", "_source_line").sort("_source_line")
    assert reread.select("order_id", "_source_line").sort("_source_line").equals(bronze_orders)
    # 5. reconciliations: facts = lines, every fact key in the dimension, bronze = silver + duplicates
    assert after["gold.shop.fct_sales"]["net_amount"].sum() == after["silver.shop.order_lines"]["net_amount"].sum()
    assert after["gold.shop.fct_sales"].join(after["gold.shop.dim_customer"], on="customer_sk", how="anti").height == 0
    bronze_keys = after["bronze.shop.orders"].get_column("order_id")
    assert bronze_keys.len() == after["silver.shop.orders"].height + (bronze_keys.len() - bronze_keys.n_unique())
    # 6. the certificate: in an intact audit log, with hashed identifiers only
    entries = read_entries(settings)
    cert = entries[-1]
    assert cert.action == "erasure" and cert.seq == result.audit_seq
    details = cert.details_json
    assert details["rows_removed"] == sum(expected.values()) and details["reason"] == "ticket DPO-1"
    assert {t["table"] for t in details["tables"]} == holding
    assert all(t["version_after"] is not None and t["version_before"] is not None for t in details["tables"])
    from lakehouse.governance.masking import keyed_hash, masking_key

    assert cert.target == f"customer_id=#{keyed_hash(SUBJECT, masking_key(settings))}"
    assert not any(e.lower() in cert.details.lower() for e in (EMAILS[2], NEW_EMAIL_2)) and "Müller" not in cert.details
    assert verify(settings).intact
    assert verify_certificates(settings)[0]
    # ... and the erasure_verified proof fails the moment the subject comes back
    store.append(_t("silver.shop.customers"), before["silver.shop.customers"].filter(pl.col("customer_id") == SUBJECT))
    passed, details = verify_certificates(settings)
    assert not passed and any("silver.shop.customers" in f for f in details["findings"])


def test_dry_run_changes_nothing_and_a_bad_subject_is_refused(settings, store, lake):
    from lakehouse.governance.erasure import ErasureError, erase, parse_subject

    _build_lake(settings, store)
    versions = {str(i.ref): i.version for i in lake.tables()}
    result = erase(settings, column="email", value=EMAILS[2], dry_run=True, recompute=False)
    assert result.dry_run and result.audit_seq is None
    # an e-mail address finds the customer id, then the orders and their lines
    touched = {str(t.ref) for t in result.plan.tables}
    assert {"silver.shop.customers", "silver.shop.orders", "silver.shop.order_lines", "gold.shop.fct_sales"} <= touched
    assert SUBJECT in result.plan.values["customer_id"] and 11 in result.plan.values["order_id"]
    assert {str(i.ref): i.version for i in lake.tables()} == versions
    with pytest.raises(ErasureError, match="must be COLUMN=VALUE"):
        parse_subject("customer_id")


@pytest.mark.parametrize("table_format", ["delta"], indirect=True)  # the command, not the format, is under test
def test_the_erase_command_plans_like_the_library(settings, store, lake):
    _build_lake(settings, store)
    versions = {str(i.ref): i.version for i in lake.tables()}
    cli = run_cli(["erase", "--subject", "customer_id=2", "--dry-run", "--no-recompute", "--json"], settings.home)
    assert cli.returncode == 0, cli.stderr[-2000:]
    planned = json.loads(cli.stdout)
    assert planned["dry_run"] and planned["passed"]
    assert {t["table"] for t in planned["tables"]} == {
        "bronze.shop.customers", "bronze.shop.customers__quarantine", "bronze.shop.orders",
        "bronze.shop.orders__quarantine", "bronze.shop.order_lines", "silver.shop.customers", "silver.shop.orders",
        "silver.shop.orders__quarantine", "silver.shop.order_lines", "gold.shop.dim_customer", "gold.shop.fct_sales",
    }  # fmt: skip
    assert {f["file"] for f in planned["landing"]} == {
        "shop/customers/2024-01-01/customers.csv", "shop/customers/2024-01-02/customers.csv",
        "shop/orders/2024-01-01/orders.csv", "shop/order_lines/2024-01-01/lines.csv",
    }  # fmt: skip
    assert {str(i.ref): i.version for i in lake.tables()} == versions
