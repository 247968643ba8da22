"""DuckDB over the lake: both formats visible as <layer>_<domain>.<table>, offline extensions."""

import datetime as dt

import polars as pl
import pytest

from lakehouse.exceptions import QueryError
from lakehouse.naming import TableRef
from lakehouse.query.duckdb import Query


def test_query_sees_tables_of_both_formats(lake_env, settings, tmp_path, monkeypatch):
    from lakehouse.tables import Lake

    monkeypatch.setenv("HOME", str(tmp_path))  # DuckDB's default extension folder lives under HOME

    lake = Lake(settings)
    lake.store("delta").overwrite(
        TableRef("silver", "q", "a"), pl.DataFrame({"id": [1, 2], "d": [dt.date(2024, 1, 1)] * 2})
    )
    lake.store("iceberg").overwrite(TableRef("gold", "q", "b"), pl.DataFrame({"id": [2, 3], "name": ["it's", "x"]}))
    with Query(settings) as q:
        assert sorted(q.views) == ["gold_q.b", "silver_q.a"]
        joined = q.sql("select a.id, b.name from silver_q.a a join gold_q.b b using (id) where b.name = ?", ["it's"])
        assert joined.to_dicts() == [{"id": 2, "name": "it's"}]
        with pytest.raises(QueryError, match=r"DuckDB: .*no_such_table"):
            q.sql("select * from silver_q.no_such_table")
    assert not (tmp_path / ".duckdb").exists()  # extensions were loaded from the wheels, not installed
