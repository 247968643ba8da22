"""Governance on the shared demo lake (read only): the PII inventory, the audit log, the catalog
export and contract results that `lakehouse demo` leaves behind, and the governance CLI."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

CUSTOMER_PII = {
    "email": "email",
    "phone": "phone",
    "first_name": "person_name",
    "last_name": "person_name",
    "street": "street_address",
    "birth_date": "date_of_birth",
}


def _inventory(demo) -> pl.DataFrame:
    from lakehouse.governance.inventory import INVENTORY

    lake = demo.lake
    return lake.existing_store(INVENTORY).read(INVENTORY).collect()


def test_the_pii_inventory_flags_customer_pii_and_no_numeric_measures(demo):
    inventory = _inventory(demo)
    found = {(r["table"], r["column"]): r["pii_class"] for r in inventory.iter_rows(named=True)}
    for table in ("bronze.retail.customers", "silver.retail.customers", "gold.retail.dim_customer"):
        for column, pii_class in CUSTOMER_PII.items():
            assert found.get((table, column)) == pii_class, (table, column, found.get((table, column)))
    assert found[("silver.retail.web_requests", "client_ip")] == "ip_address"
    assert inventory.get_column("confidence").min() >= 0.8 and inventory.get_column("sample_size").min() > 0
    # no numeric measure is personal data: every flagged column is text or a date
    lake = demo.lake
    for (table, column), pii_class in found.items():
        from lakehouse.naming import TableRef

        ref = TableRef.parse(table)
        dtype = str(lake.existing_store(ref).schema(ref).field(column).type)
        assert dtype in ("string", "large_string", "string_view", "date32[day]"), (table, column, dtype, pii_class)
    for measure in ("order_total", "net_amount", "revenue", "quantity", "unit_price", "margin_amount", "list_price"):
        assert not inventory.filter(pl.col("column") == measure).height, measure


def test_audit_catalog_and_contracts_after_the_demo(demo):
    from lakehouse.governance.audit import read_entries, verify
    from lakehouse.naming import join_uri
    from lakehouse.storage import read_bytes

    settings = demo.settings
    report = verify(settings)
    assert report.intact, report.problems
    entries = read_entries(settings)
    materialized = {e.target for e in entries if e.action == "materialization"}
    data_tables = {
        "/".join(t["table"].split(".")) for t in demo.summary["tables"] if not t["table"].startswith("governance")
    }
    assert data_tables <= materialized, data_tables - materialized
    assert any(e.action == "policy_change" and e.target == "policy.yaml" for e in entries)
    daily_runs = {c["run_id"] for c in demo.daily_checks}
    assert daily_runs <= {e.run_id for e in entries if e.action == "materialization"}
    dictionary = json.loads(read_bytes(settings, join_uri(settings.warehouse, "_catalog", "data_dictionary.json")))
    by_table = {t["table"]: t for t in dictionary["tables"]}
    fct = by_table["gold.retail.fct_sales"]
    net = next(c for c in fct["columns"] if c["name"] == "net_amount")
    assert ["silver.retail.order_lines", "net_amount"] in net["derived_from"]
    assert fct["owners"] == ["team:retail-analytics"] and fct["contract"]["name"] == "retail_sales_facts"
    email = next(c for c in by_table["silver.retail.customers"]["columns"] if c["name"] == "email")
    assert email["pii_class"] == "email"
    markdown = read_bytes(settings, join_uri(settings.warehouse, "_catalog", "data_dictionary.md")).decode()
    assert "## gold.retail.fct_sales" in markdown and "| email | string | email |" in markdown
    lake = demo.lake
    from lakehouse.naming import TableRef

    results = TableRef("governance", "contracts", "contract_results")
    outcome = lake.existing_store(results).read(results).collect()
    assert set(outcome.get_column("kind")) == {"ok"} and outcome.height == 4
    checks = [c for c in demo.summary["checks"] if c["check"].endswith(":data_contract")]
    assert checks and all(c["passed"] for c in checks)


def test_analysts_query_the_demo_through_masks(demo):
    from lakehouse.governance.masking import keyed_hash, masking_key
    from lakehouse.query.duckdb import Query

    settings = demo.settings
    with Query(settings, role="analyst") as q:
        masked = q.sql("select email, phone, first_name, birth_date from silver_retail.customers limit 5").to_dicts()
        joined = q.sql(
            "select count(*) from silver_retail.orders o join silver_retail.customers c using (customer_id)"
        ).item()
    with Query(settings) as q:  # the library's own session: clear, not audited
        clear = q.sql("select email from silver_retail.customers").get_column("email").to_list()
        clear_join = q.sql(
            "select count(*) from silver_retail.orders o join silver_retail.customers c using (customer_id)"
        ).item()
    key = masking_key(settings)
    hashes = {keyed_hash(e, key) for e in clear}
    assert all(r["email"] in hashes and r["first_name"] is None and r["phone"].startswith("***") for r in masked)
    assert all(r["birth_date"].month == 1 and r["birth_date"].day == 1 for r in masked)
    assert joined == clear_join > 0


def _invoke(demo, monkeypatch, *args: str):
    """A command in this process (as typed, without starting a new interpreter each time)."""
    from click.testing import CliRunner

    from lakehouse.cli import cli

    demo.activate(monkeypatch)
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def test_pii_scan_contracts_and_audit_from_the_cli(demo, monkeypatch):
    table = _invoke(demo, monkeypatch, "pii", "scan", "silver.retail.customers", "--json")
    assert table.exit_code == 0, table.output[-2000:]
    columns = {c["column"]: c for c in json.loads(table.output)["columns"]}
    assert {k: columns[k]["pii_class"] for k in CUSTOMER_PII} == CUSTOMER_PII
    assert columns["segment"]["pii_class"] is None and columns["customer_id"]["pii_class"] is None
    landing = next((demo.home / "landing" / "retail" / "customers").rglob("*.csv"))
    file = _invoke(demo, monkeypatch, "pii", "scan", str(landing), "--json")
    assert file.exit_code == 0, file.output[-2000:]
    assert {c["column"]: c["pii_class"] for c in json.loads(file.output)["columns"]}["email"] == "email"
    contracts = _invoke(demo, monkeypatch, "contracts", "verify", "--json")
    assert contracts.exit_code == 0 and json.loads(contracts.output)["errors"] == 0, contracts.output[-2000:]
    audit = _invoke(demo, monkeypatch, "audit", "verify")
    assert audit.exit_code == 0 and audit.output.startswith("audit log intact:"), audit.output
    denied = _invoke(demo, monkeypatch, "query", "select * from read_csv('/etc/passwd')", "--role", "analyst")
    assert denied.exit_code != 0 and "the analyst role cannot read READ_CSV('/etc/passwd')" in str(denied.exception)


@pytest.mark.parametrize("demo", ["delta"], indirect=True)  # the command, not the format, is under test
def test_query_role_analyst_as_users_run_it(demo):
    masked = demo.cli(
        "query", "select email, first_name from silver_retail.customers limit 3", "--role", "analyst", "--json"
    )
    assert masked.returncode == 0, masked.stderr[-2000:]
    rows = json.loads(masked.stdout)
    assert len(rows) == 3 and all(
        len(r["email"]) == 32 and "@" not in r["email"] and r["first_name"] is None for r in rows
    )
    denied = demo.cli("query", "select * from read_csv('/etc/passwd')", "--role", "analyst")
    assert denied.returncode == 2 and "error: the analyst role cannot read READ_CSV('/etc/passwd')" in denied.stderr


@pytest.mark.parametrize("demo", ["delta"], indirect=True)  # definitions, not tables: one format is enough
def test_catalog_search_and_column_lineage_across_python_and_dbt(demo, monkeypatch):
    from lakehouse.definitions import build_definitions
    from lakehouse.governance.catalog import build_catalog, column_lineage, search
    from lakehouse.governance.contracts import load_contracts
    from lakehouse.governance.inventory import read_inventory

    demo.activate(monkeypatch)
    found, _ = read_inventory(demo.lake)
    with dg.DagsterInstance.get() as instance:  # dbt models report their column lineage at run time
        entries = build_catalog(
            build_definitions().resolve_asset_graph(),
            pii=found,
            contracts=load_contracts(),
            lake_tables=demo.lake.tables(),
            instance=instance,
        )
    hits = search(entries, "email")
    assert {"kind": "column", "table": "silver.retail.customers", "column": "email"}.items() <= next(
        h for h in hits if h.get("column") == "email" and h["table"] == "silver.retail.customers"
    ).items()
    assert any(
        h["kind"] == "table" and h["table"] == "gold.retail.fct_sales" for h in search(entries, "team:retail-analytics")
    )
    assert {h["table"] for h in search(entries, "date_of_birth")} >= {
        "silver.retail.customers",
        "gold.retail.dim_customer",
    }
    steps = column_lineage(entries, "gold.retail.fct_sales", "net_amount")
    upstream = {(s.table, s.column) for s in steps if s.direction == "upstream"}
    assert ("silver.retail.order_lines", "net_amount") in upstream and (
        "bronze.retail.order_lines",
        "unit_price",
    ) in upstream
    downstream = {s.table for s in steps if s.direction == "downstream"}
    assert any(t.startswith("gold.marts.") for t in downstream), downstream  # through the dbt marts
    cli = _invoke(demo, monkeypatch, "lineage", "gold.retail.fct_sales.net_amount", "--json")
    assert cli.exit_code == 0, cli.output[-2000:]
    first = json.loads(cli.output)["lineage"][0]
    assert {
        "direction": "upstream",
        "depth": 1,
        "table": "silver.retail.order_lines",
        "column": "net_amount",
    }.items() <= first.items()
