import datetime as dt
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pytest

from lakehouse.exceptions import SchemaMismatchError
from lakehouse.tables.predicates import col, to_iceberg, to_polars, to_sql
from lakehouse.tables.schema import conform, plan_write, to_arrow


def test_predicate_translations_agree():
    frame = pl.DataFrame(
        {"d": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), None], "s": ["a", "it's", "c"], "n": [1, 2, 3]}
    )
    pred = col("d").is_in([dt.date(2024, 1, 2), None]) | ((col("s") == "a") & (col("n") >= 1))
    assert to_sql(pred) == """(("d" IN (DATE '2024-01-02') OR "d" IS NULL) OR ("s" = 'a' AND "n" >= 1))"""
    assert frame.filter(to_polars(pred)).get_column("n").to_list() == [1, 2, 3]
    assert frame.filter(to_polars(~(col("s") == "it's"))).get_column("n").to_list() == [1, 3]
    assert type(to_iceberg(col("d").is_in([dt.date(2024, 1, 2), dt.date(2024, 1, 3)]))).__name__ == "In"


def test_empty_in_list_matches_nothing():
    assert to_sql(col("x").is_in([])) == "FALSE"
    assert pl.DataFrame({"x": [1]}).filter(to_polars(col("x").is_in([]))).height == 0


def test_plan_adds_new_columns_and_allows_safe_widening():
    table = pa.schema([("id", pa.int64()), ("amount", pa.decimal128(12, 2)), ("v", pa.float64())])
    data = to_arrow(pl.DataFrame({"id": pl.Series([1], dtype=pl.Int32), "amount": [Decimal("1.50")], "extra": ["x"]}))
    plan = plan_write("t", table, data.schema)
    assert [f.name for f in plan.new_columns] == ["extra"]
    assert plan.missing_columns == ["v"]
    out = conform(
        data.cast(pa.schema([("id", pa.int32()), ("amount", pa.decimal128(10, 2)), ("extra", pa.string())])),
        plan.target,
    )
    assert out.schema.names == ["id", "amount", "v", "extra"]
    assert out.column("v").null_count == 1 and out.column("id").type == pa.int64()


def test_incompatible_type_names_column_and_both_types():
    table = pa.schema([("id", pa.int64())])
    with pytest.raises(SchemaMismatchError, match=r"column 'id' has type int64 in the table but string in the data"):
        plan_write("silver.retail.orders", table, pa.schema([("id", pa.string())]))
    with pytest.raises(SchemaMismatchError, match="decimal128"):
        plan_write("t", pa.schema([("a", pa.decimal128(12, 2))]), pa.schema([("a", pa.decimal128(12, 4))]))


def test_narrowing_is_checked_value_by_value():
    target = pa.schema([("n", pa.int32()), ("a", pa.decimal128(5, 2))])
    ok = pa.table({"n": pa.array([1], pa.int64()), "a": pa.array([Decimal("999.99")], pa.decimal128(38, 2))})
    assert conform(ok, target).schema == target
    too_big = pa.table({"n": pa.array([2**40], pa.int64()), "a": pa.array([Decimal("1.00")], pa.decimal128(38, 2))})
    with pytest.raises(SchemaMismatchError, match="column 'n'"):
        conform(too_big, target, table_name="t")
    too_wide = pa.table({"n": pa.array([1], pa.int64()), "a": pa.array([Decimal("1000.00")], pa.decimal128(38, 2))})
    with pytest.raises(SchemaMismatchError, match="column 'a'"):
        conform(too_wide, target, table_name="t")


def test_to_arrow_normalises_types():
    frame = pl.DataFrame(
        {
            "s": ["a"],
            "ts": [dt.datetime(2024, 1, 1)],
            "u": pl.Series([1], dtype=pl.UInt32),
            "c": pl.Series(["x"], dtype=pl.Categorical),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "Europe/Paris")))
    schema = to_arrow(frame).schema
    assert schema.field("s").type == pa.string()
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("u").type == pa.int64()
    assert schema.field("c").type == pa.string()
