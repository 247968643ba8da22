"""Masking: analysts see masked personal data (and joins on hashed keys still work), stewards see clear
values and are audited; the DuckDB guard and the generated Trino rules (both formats)."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat

import polars as pl
import pytest

CUSTOMERS = pl.DataFrame(
    {
        "customer_id": [1, 2, 3],
        "first_name": ["Björn", "Ann", "Chloé"],
        "email": ["bjoern@example.org", "ann@example.com", "chloe@example.net"],
        "phone": ["+49 30 5284425", "+44 20 7946 0958", "+33 1 23 45 67 89"],
        "birth_date": [dt.date(1952, 4, 11), dt.date(1978, 3, 24), dt.date(2001, 1, 5)],
        "postcode": ["80331", "75001", "30-001"],
        "street": ["Königsallee 51", "Rue de la Paix 3", "Market Street 10"],
        "segment": ["consumer", "corporate", "consumer"],
    }
)
ORDERS = pl.DataFrame({"order_id": [10, 11, 12, 13], "customer_id": [1, 1, 2, 3], "total": [5.0, 7.5, 1.0, 2.0]})
DIM = pl.DataFrame({"customer_sk": [100, 200, 300], "customer_id": [1, 2, 3], "email": CUSTOMERS["email"]})


@pytest.fixture
def shop(settings, store):
    from lakehouse.naming import TableRef

    store.append(TableRef("silver", "shop", "customers"), CUSTOMERS)
    store.append(TableRef("silver", "shop", "orders"), ORDERS)
    store.append(TableRef("gold", "shop", "dim_customer"), DIM)
    return settings


def test_analysts_see_masked_values_and_joins_on_hashed_keys_still_work(shop):
    from lakehouse.governance.masking import keyed_hash, keyed_hash_int, masking_key
    from lakehouse.query.duckdb import Query

    key = masking_key(shop)
    with Query(shop, role="analyst") as q:
        rows = q.sql("select * from silver_shop.customers order by segment, postcode").to_dicts()
        masked_join = q.sql(
            "select count(*) as n from silver_shop.orders o join silver_shop.customers c on o.customer_id = c.customer_id"
        ).item()
        email_join = q.sql(
            "select count(*) as n from silver_shop.customers c join gold_shop.dim_customer d on c.email = d.email"
        ).item()
        per_customer = q.sql(
            "select customer_id, count(*) as n from silver_shop.orders group by 1 order by 2 desc"
        ).to_dicts()
    by_email = {r["email"]: r for r in rows}
    for original in CUSTOMERS.iter_rows(named=True):
        r = by_email[keyed_hash(original["email"], key)]  # the keyed hash, 32 hex characters
        assert len(r["email"]) == 32 and r["email"] != original["email"]
        assert r["customer_id"] == keyed_hash_int(original["customer_id"], key) != original["customer_id"]
        assert r["phone"] == "*" * (len(original["phone"]) - 4) + original["phone"][-4:]
        assert r["birth_date"] == dt.date(original["birth_date"].year, 1, 1)
        assert r["postcode"] == original["postcode"][:2] + "*" * (len(original["postcode"]) - 2)
        assert r["first_name"] is None and r["street"] is None
        assert r["segment"] == original["segment"]  # not personal data: in clear
    assert masked_join == ORDERS.height and email_join == CUSTOMERS.height
    assert per_customer[0] == {"customer_id": keyed_hash_int(1, key), "n": 2}


def test_stewards_see_clear_values_and_their_queries_over_personal_data_are_audited(shop):
    from lakehouse.governance.audit import read_entries
    from lakehouse.query.duckdb import Query

    with Query(shop, role="steward", actor="dpo@example") as q:
        clear = q.sql("select email from silver_shop.customers where email = 'ann@example.com'").to_dicts()
        q.sql("select sum(total) from silver_shop.orders")  # no personal data in it: not audited
    assert clear == [{"email": "ann@example.com"}]
    entries = read_entries(shop)
    assert [(e.action, e.target, e.actor) for e in entries] == [
        ("privileged_query", "silver_shop.customers", "dpo@example")
    ]
    sql = entries[0].details_json["sql"]
    assert "ann@example.com" not in sql and "?" in sql and entries[0].details_json["role"] == "steward"


DENIED = [
    "select * from delta_scan('/tmp/lake/silver/shop/customers')",
    "select * from read_parquet('/tmp/x.parquet')",
    "select * from '/tmp/x.parquet'",
    "select query('select 1')",
    "select lh_mask_hash('x')",
    "copy silver_shop.customers to '/tmp/out.csv'",
    "set enable_external_access = true",
    "attach '/tmp/other.db' as other",
    "select 1; select 2",
    "select * from information_schema.tables",
]


def test_the_analyst_role_runs_only_selects_over_the_masked_views(shop):
    from lakehouse.governance.masking import QueryNotAllowedError
    from lakehouse.query.duckdb import Query

    with Query(shop, role="analyst") as q:
        for sql in DENIED:
            with pytest.raises(QueryNotAllowedError, match="analyst role"):
                q.sql(sql)
        # and what is allowed still runs: a CTE over a view
        assert q.sql("with c as (select * from silver_shop.customers) select count(*) from c").item() == 3


def test_masking_key_file_and_s3_without_a_key(settings):
    from lakehouse.governance.masking import KEY_FILE, MaskingKeyError, masking_key

    key = masking_key(settings)
    path = settings.home / KEY_FILE
    assert len(key) == 64 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert masking_key(settings) == key  # stable
    assert masking_key(settings.with_overrides(masking_key="from-env")) == b"from-env"
    with pytest.raises(MaskingKeyError, match="LAKEHOUSE_MASKING_KEY is not set"):
        masking_key(settings.with_overrides(warehouse="s3://bucket/lake"))


def test_trino_rules_mask_personal_data_for_analysts_only(shop, lake):
    import sqlglot

    from lakehouse.governance.inventory import pii_columns
    from lakehouse.governance.masking import trino_rules
    from lakehouse.governance.policy import load_policy

    infos = lake.tables()
    pii = pii_columns(shop, [(i.ref, i.format) for i in infos], lake=lake)
    catalog = {"delta": "delta_lake", "iceberg": "iceberg"}
    rules = trino_rules(
        load_policy(),
        [(i.ref, lake.store(i.format).schema(i.ref), pii[i.ref], catalog[i.format]) for i in infos],
        key_sql="'k-0123456789'",
    )
    tables = rules["tables"]
    assert tables[-1] == {"privileges": []}  # anything not listed is denied
    analyst = {(r["schema"], r["table"]): r for r in tables if r.get("group") == "analyst"}
    steward = {(r["schema"], r["table"]): r for r in tables if r.get("group") == "steward"}
    masks = {c["name"]: c["mask"] for c in analyst[("silver_shop", "customers")]["columns"]}
    assert set(masks) == {"customer_id", "first_name", "email", "phone", "birth_date", "postcode", "street"}
    assert "hmac_sha256" in masks["email"] and "from_big_endian_64" in masks["customer_id"]
    assert masks["first_name"] == "CAST(NULL AS varchar)" and "date_trunc('year'" in masks["birth_date"]
    assert all("columns" not in r for r in steward.values())
    for expression in masks.values():
        sqlglot.parse_one(expression, read="trino")  # every mask is valid Trino SQL
    # without the key the rules fail closed: no hash with a placeholder (Trino would use it as a
    # public key, and every hashed id could be reversed by enumerating ids), the columns are hidden
    keyless = trino_rules(
        load_policy(), [(i.ref, lake.store(i.format).schema(i.ref), pii[i.ref], catalog[i.format]) for i in infos]
    )
    text = json.dumps(keyless)
    assert "hmac_sha256" not in text and "${" not in text
    hidden = {c["name"]: c["mask"] for c in _analyst(keyless, "silver_shop", "customers")["columns"]}
    assert hidden["email"] == "CAST(NULL AS varchar)" and hidden["customer_id"] == "CAST(NULL AS bigint)"


def _analyst(rules, schema, table):
    return next(
        r for r in rules["tables"] if r.get("group") == "analyst" and (r["schema"], r["table"]) == (schema, table)
    )


def test_analysts_cannot_map_surrogate_keys_back_by_enumerating_ids(shop, store):
    """customer_sk is a deterministic hash of the natural key: whoever can compute that hash for
    the ids 1..N maps every clear key back to its customer. Analysts see it masked (keyed with the
    masking key), and joins on it still work."""
    from lakehouse.modeling.keys import FIRST_VERSION, surrogate_key
    from lakehouse.naming import TableRef
    from lakehouse.query.duckdb import Query

    sks = [surrogate_key(i, FIRST_VERSION) for i in (1, 2, 3)]
    store.append(
        TableRef("gold", "shop", "dim_customer_v"), pl.DataFrame({"customer_sk": sks, "customer_id": [1, 2, 3]})
    )
    store.append(
        TableRef("gold", "shop", "fct_sales"), pl.DataFrame({"customer_sk": [sks[0], sks[0], sks[2]], "net": [1, 2, 3]})
    )
    guesses = {surrogate_key(i, FIRST_VERSION): i for i in range(1, 5001)}
    with Query(shop, role="steward") as q:  # the attack works on clear keys ...
        clear = q.sql("select customer_sk from gold_shop.fct_sales").get_column("customer_sk").to_list()
    assert sorted(guesses[sk] for sk in clear) == [1, 1, 3]
    with Query(shop, role="analyst") as q:  # ... and finds nothing in what analysts see
        seen = q.sql("select customer_sk from gold_shop.fct_sales").get_column("customer_sk").to_list()
        dims = q.sql("select customer_sk from gold_shop.dim_customer_v").get_column("customer_sk").to_list()
        joined = q.sql(
            "select count(*) as n from gold_shop.fct_sales f join gold_shop.dim_customer_v d using (customer_sk)"
        ).item()
    assert len(seen) == 3 and all(isinstance(sk, int) for sk in seen)
    assert [sk for sk in seen + dims if sk in guesses] == []
    assert joined == 3


def test_governance_tables_are_denied_to_analysts(shop):
    """Governance tables are not reached by erasure; analysts read none of their content."""
    from lakehouse.governance.audit import record
    from lakehouse.query.duckdb import Query

    record(shop, action="restore", target="silver.shop.customers", details={"note": "ann@example.com"})
    with Query(shop, role="analyst") as q:
        rows = q.sql("select * from governance_audit.audit_log").to_dicts()
    assert len(rows) == 1 and set(rows[0].values()) == {None}
    with Query(shop, role="steward") as q:
        assert q.sql("select target from governance_audit.audit_log").item() == "silver.shop.customers"
