import datetime as dt
from decimal import Decimal

import duckdb
import pytest

from lakehouse.exceptions import InvalidTableKeyError
from lakehouse.naming import TableRef, table_location
from lakehouse.sql import literal_list, quote_ident, quote_literal


def test_key_maps_to_location_namespace_and_sql_name():
    ref = TableRef.from_key(["silver", "retail", "orders"])
    assert table_location(ref, "/lake/wh") == "/lake/wh/silver/retail/orders"
    assert (
        table_location(["gold", "retail", "fct_sales"], "s3://bucket/prefix/")
        == "s3://bucket/prefix/gold/retail/fct_sales"
    )
    assert ref.namespace == "silver_retail"
    assert ref.sql_name == "silver_retail.orders"
    assert TableRef.parse("silver_retail.orders") == ref
    assert TableRef.parse("silver.retail.orders") == ref
    assert TableRef.parse("silver/retail/orders") == ref


@pytest.mark.parametrize(
    "key, message",
    [
        (["silver", "retail"], "three parts"),
        (["platinum", "retail", "orders"], "layer 'platinum'"),
        (["silver", "Retail", "orders"], "snake_case"),
        (["silver", "retail", "orders; drop"], "snake_case"),
    ],
)
def test_bad_keys_are_rejected_with_a_clear_message(key, message):
    with pytest.raises(InvalidTableKeyError, match=message):
        TableRef.from_key(key)


def test_quote_ident_and_literal():
    assert quote_ident('we"ird') == '"we""ird"'
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal(None) == "NULL"
    assert quote_literal(True) == "TRUE"
    assert quote_literal(Decimal("12.50")) == "12.50"
    assert quote_literal(dt.date(2024, 1, 2)) == "DATE '2024-01-02'"
    assert (
        quote_literal(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == "TIMESTAMP '2024-01-02 03:04:05.000000+00:00'"
    )
    assert literal_list([1, "a"]) == "(1, 'a')"
    with pytest.raises(ValueError):
        quote_ident("")
    with pytest.raises(ValueError):
        quote_literal(float("nan"))
    with pytest.raises(TypeError):
        quote_literal(object())


@pytest.mark.parametrize("value", ["x'; DROP TABLE t; --", "a''b", "--", ";", "O'Brien", "\\'", "é ünï"])
def test_quoted_literals_round_trip_through_duckdb(value):
    con = duckdb.connect()
    con.execute("CREATE TABLE t (v VARCHAR)")
    con.execute("INSERT INTO t VALUES (?)", [value])
    assert con.execute(f"SELECT count(*) FROM t WHERE v = {quote_literal(value)}").fetchone() == (1,)
    assert con.execute(f"SELECT {quote_literal(value)}").fetchone() == (value,)
    assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)  # table still there
