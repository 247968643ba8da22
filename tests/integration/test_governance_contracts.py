"""Data contracts stop breaking changes: before the write lands (contract IO manager) and as a
blocking check that keeps the downstream asset from running (both formats)."""

from __future__ import annotations

import textwrap

import dagster as dg
import polars as pl
import pytest

CONTRACT = textwrap.dedent(
    """
    contract: shop_accounts
    version: 2.1.0
    asset: silver/shop/accounts
    owner: team:shop
    description: Accounts of the shop.
    schema:
      account_id: {type: int64, nullable: false}
      email: {type: string, nullable: false, pii: email}
      balance: {type: "decimal(18,2)"}
    primary_key: [account_id]
    quality:
      - {column: balance, min: 0}
    consumers:
      - {asset: gold/shop/account_totals, owner: team:finance}
    """
)
GOOD = pl.DataFrame(
    {"account_id": [1, 2], "email": ["a@example.com", "b@example.com"], "balance": [10, 20]},
    schema={"account_id": pl.Int64, "email": pl.String, "balance": pl.Decimal(18, 2)},
)


def _defs(settings, path, output: pl.DataFrame, *, enforce: bool):
    from lakehouse.governance.contracts import ContractIOManager, contract_checks, load_contracts
    from lakehouse.io_manager import LakehouseIOManager
    from lakehouse.resource import LakeResource

    @dg.asset(key=["silver", "shop", "accounts"])
    def accounts() -> pl.DataFrame:
        return output

    @dg.asset(key=["gold", "shop", "account_totals"], ins={"accounts": dg.AssetIn(key=["silver", "shop", "accounts"])})
    def account_totals(accounts: pl.DataFrame) -> pl.DataFrame:
        return accounts.select(pl.len().alias("accounts"))

    lake = LakeResource.from_settings(settings)
    io = ContractIOManager(lake=lake, contract_paths=[str(path)]) if enforce else LakehouseIOManager(lake=lake)
    return [accounts, account_totals, *contract_checks(load_contracts([path]))], {"lake": lake, "io_manager": io}


def _run(settings, path, output, *, enforce):
    assets, resources = _defs(settings, path, output, enforce=enforce)
    return dg.materialize(assets, resources=resources, raise_on_error=False)


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


@pytest.fixture
def contract_file(tmp_path):
    path = tmp_path / "accounts.yaml"
    path.write_text(CONTRACT)
    return path


def test_a_good_output_passes_its_contract(settings, contract_file):
    result = _run(settings, contract_file, GOOD, enforce=True)
    assert result.success
    assert _materialized(result) == {"silver/shop/accounts", "gold/shop/account_totals"}
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "data_contract" and check.passed


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (GOOD.drop("email"), "column 'email' (string) is missing"),
        (
            GOOD.with_columns(pl.col("account_id").cast(pl.String)),
            "column 'account_id' is string, the contract promises int64",
        ),
    ],
)
def test_a_removed_or_retyped_column_is_refused_before_the_write_lands(settings, lake, contract_file, broken, message):
    from lakehouse.naming import TableRef

    ref = TableRef("silver", "shop", "accounts")
    assert _run(settings, contract_file, GOOD, enforce=True).success
    version = lake.existing_store(ref).version(ref)
    result = _run(settings, contract_file, broken, enforce=True)
    assert not result.success
    assert _materialized(result) == set()  # neither the table nor its consumer
    errors = [e.event_specific_data.error for e in result.all_events if e.is_step_failure]
    text = " ".join((err.cause.message if err.cause else err.message) for err in errors)
    assert "breaks contract shop_accounts" in text and message in text and "nothing was written" in text
    assert lake.existing_store(ref).version(ref) == version


def test_a_failing_contract_check_blocks_the_downstream_asset(settings, lake, contract_file):
    """Without the enforcing IO manager, a breaking write lands, but the blocking check stops its consumer."""
    from lakehouse.governance.contracts import evaluate, load_contracts
    from lakehouse.naming import TableRef

    totals = TableRef("gold", "shop", "account_totals")
    assert _run(settings, contract_file, GOOD, enforce=False).success
    totals_version = lake.existing_store(totals).version(totals)
    bad = pl.DataFrame(
        {"account_id": [1, 1, 3], "email": ["a@example.com", None, "c@example.com"], "balance": [10, 20, -5]},
        schema=GOOD.schema,
    )
    result = _run(settings, contract_file, bad, enforce=False)
    assert _materialized(result) == {"silver/shop/accounts"}  # the consumer did not run
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert lake.existing_store(totals).version(totals) == totals_version
    # what `lakehouse contracts verify` lists
    from lakehouse.governance.masking import keyed_hash, masking_key

    violations, rows = evaluate(load_contracts([contract_file])[0], lake)
    assert rows == 3
    # the failing value only as its keyed hash (messages reach the audit log, which erasure cannot)
    failing = keyed_hash("-5.00", masking_key(settings))
    assert sorted((v.kind, v.message) for v in violations) == [
        ("not_nullable", "column 'email' has 1 null(s)"),
        ("primary_key", "primary key account_id: 2 duplicated row(s), 0 null key(s)"),
        ("quality", f"balance min 0: 1 row(s) fail, e.g. row 2 (hmac:{failing})"),
    ]


def test_bad_contract_files_name_the_file_and_field(tmp_path):
    from lakehouse.governance.contracts import ContractError, load_contracts

    path = tmp_path / "bad.yaml"
    path.write_text(CONTRACT.replace("primary_key: [account_id]", "primary_key: [id]"))
    with pytest.raises(ContractError, match=r"bad\.yaml: primary_key: columns \['id'\] are not in the schema"):
        load_contracts([path])
    path.write_text(CONTRACT.replace("pii: email", "pii: mail"))
    with pytest.raises(ContractError, match=r"schema\.email\.pii: 'mail' is not a PII class"):
        load_contracts([path])
