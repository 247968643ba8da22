"""Trino over the same tables: one Trino schema per ``<layer>_<domain>``, in the ``iceberg`` or
``delta_lake`` catalog of ``deploy/trino/catalog``. Queries are written in DuckDB's dialect (the
project's SQL files) and transpiled with sqlglot, so one SQL file runs on both engines."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

import dagster as dg
import polars as pl
import sqlglot

from lakehouse.exceptions import QueryError
from lakehouse.naming import TableRef, table_location
from lakehouse.settings import Settings, TableFormat, redact
from lakehouse.sql import quote_literal, quote_qualified

__all__ = ["CATALOGS", "TrinoResource", "register_statements", "to_trino", "trino_query"]

CATALOGS: dict[str, str] = {"iceberg": "iceberg", "delta": "delta_lake"}


def _expand_group_by_all(tree: sqlglot.exp.Expr) -> sqlglot.exp.Expr:
    """``GROUP BY ALL`` (DuckDB) as ``GROUP BY 1, 2, ...``: the projections without an aggregate."""
    for select in tree.find_all(sqlglot.exp.Select):
        group = select.args.get("group")
        if group is None or not group.args.get("all"):
            continue
        positions = [
            sqlglot.exp.Literal.number(i)
            for i, projection in enumerate(select.expressions, 1)
            if not projection.find(sqlglot.exp.AggFunc)
        ]
        select.set("group", sqlglot.exp.Group(expressions=positions) if positions else None)
    return tree


def to_trino(sql: str) -> str:
    """DuckDB SQL in Trino's dialect (raises QueryError with the position when it does not parse)."""
    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"cannot transpile to Trino: {exc}") from None
    return ";\n".join(_expand_group_by_all(t).sql(dialect="trino", pretty=True) for t in trees if t is not None)


class TrinoResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A Trino connection (credentials only through ``dg.EnvVar``)."""

    host: str
    port: int = 8080
    user: str = "lakehouse"
    password: str | None = None
    http_scheme: str = "http"
    catalog: str = "iceberg"

    @classmethod
    def from_url(cls, url: str, *, password: Any = None, catalog: str = "iceberg") -> TrinoResource:
        parts = urllib.parse.urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 8080,
            user=parts.username or "lakehouse",
            http_scheme=parts.scheme or "http",
            password=password,
            catalog=catalog,
        )

    def connect(self) -> Any:
        import trino

        auth = trino.auth.BasicAuthentication(self.user, self.password) if self.password else None
        return trino.dbapi.connect(  # type: ignore[no-untyped-call]
            host=self.host,
            port=self.port,
            user=self.user,
            http_scheme=self.http_scheme,
            auth=auth,
            catalog=self.catalog,
        )

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        try:
            conn = self.connect()
        except Exception as exc:
            raise QueryError(redact(f"Trino at {self.host}:{self.port}: {exc}", [self.password])) from None
        try:
            cur = conn.cursor()
            cur.execute(sql, list(params or []))
            rows = cur.fetchall()
            names = [d[0] for d in cur.description or []]
        except Exception as exc:
            # the client's errors may quote its request (URL, headers): never the password
            raise QueryError(redact(f"Trino: {exc}\n  in: {sql.strip()[:500]}", [self.password])) from None
        finally:
            conn.close()
        return pl.DataFrame(rows, schema=names, orient="row")


def trino_query(settings: Settings, sql: str, *, fmt: TableFormat | None = None) -> pl.DataFrame:
    """Run DuckDB-dialect ``sql`` on Trino (``LAKEHOUSE_TRINO_URL``) in the lake format's catalog."""
    if not settings.trino_url:
        raise QueryError("set LAKEHOUSE_TRINO_URL (e.g. http://127.0.0.1:8080) to query with Trino")
    password = os.environ.get("LAKEHOUSE_TRINO_PASSWORD")
    resource = TrinoResource.from_url(
        settings.trino_url, password=password, catalog=CATALOGS[fmt or settings.table_format]
    )
    return resource.query(to_trino(sql))


def register_statements(settings: Settings, tables: Sequence[TableRef]) -> list[str]:
    """Trino statements that make Delta tables visible: one schema per ``<layer>_<domain>``, each
    table registered at its location (the one mapping the whole project uses)."""
    out = []
    for namespace in sorted({t.namespace for t in tables}):
        layer, domain = namespace.split("_", 1)
        location = table_location(TableRef(layer, domain, "x"), settings).rsplit("/", 1)[0]
        out.append(
            f"CREATE SCHEMA IF NOT EXISTS {quote_qualified('delta_lake', namespace)} WITH (location = {quote_literal(location)})"
        )
    for ref in tables:
        out.append(
            f"CALL delta_lake.system.register_table(schema_name => {quote_literal(ref.namespace)}, "
            f"table_name => {quote_literal(ref.name)}, table_location => {quote_literal(table_location(ref, settings))})"
        )
    return out
