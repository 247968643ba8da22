"""Trino over the same tables: one Trino schema per ``<layer>_<domain>``, in the ``iceberg`` or
``delta_lake`` catalog of ``deploy/trino/catalog``. Queries are written in DuckDB's dialect (the
project's SQL files) and transpiled with sqlglot, so one SQL file runs on both engines."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import sqlglot

from lakehouse.exceptions import QueryError
from lakehouse.naming import TableRef, join_uri, table_location
from lakehouse.settings import Settings, TableFormat, redact
from lakehouse.sql import quote_literal, quote_qualified

__all__ = [
    "CATALOGS",
    "TrinoCatalogs",
    "TrinoResource",
    "delta_metastore_dir",
    "register_statements",
    "register_tables",
    "to_trino",
    "trino_catalogs",
    "trino_query",
    "write_catalogs",
]

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
    return _resource(settings, CATALOGS[fmt or settings.table_format]).query(to_trino(sql))


def _resource(settings: Settings, catalog: str) -> TrinoResource:
    if not settings.trino_url:
        raise QueryError("set LAKEHOUSE_TRINO_URL (e.g. http://127.0.0.1:8080) to query with Trino")
    password = os.environ.get("LAKEHOUSE_TRINO_PASSWORD")
    return TrinoResource.from_url(settings.trino_url, password=password, catalog=catalog)


def register_tables(settings: Settings, tables: Sequence[TableRef]) -> list[TableRef]:
    """Run :func:`register_statements` on ``LAKEHOUSE_TRINO_URL``; returns the tables registered
    now. A table registered before is left as it is (Trino reads its newest version anyway):
    one ``SHOW TABLES`` per schema finds them, instead of one failing call per table."""
    resource = _resource(settings, CATALOGS["delta"])
    statements = register_statements(settings, tables)
    schemas, calls = statements[: len(statements) - len(tables)], statements[len(statements) - len(tables) :]
    for statement in schemas:
        resource.query(statement)
    known = set()
    for namespace in sorted({t.namespace for t in tables}):
        shown = resource.query(f"SHOW TABLES FROM {quote_qualified(CATALOGS['delta'], namespace)}")
        known |= {(namespace, name) for name in shown.to_series(0).to_list()} if shown.width else set()
    registered = []
    for ref, statement in zip(tables, calls, strict=True):
        if (ref.namespace, ref.name) in known:
            continue
        try:
            resource.query(statement)
        except QueryError as exc:
            if "already exists" not in str(exc):  # registered by someone else meanwhile
                raise
            continue
        registered.append(ref)
    return registered


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


# -- catalog files of a Trino server over this lake -------------------------------------------------

#: environment variables the generated catalog files name (``${ENV:...}``): the server reads the
#: secrets from its environment, so no file Trino reads, logs or serves carries them
S3_KEY_ENV = "LAKEHOUSE_S3_ACCESS_KEY_ID"
S3_SECRET_ENV = "LAKEHOUSE_S3_SECRET_ACCESS_KEY"  # noqa: S105 - the name of a variable, not a secret
CATALOG_PASSWORD_ENV = "LAKEHOUSE_TRINO_CATALOG_PASSWORD"  # noqa: S105 - a variable name


@dataclass(frozen=True)
class TrinoCatalogs:
    """Catalog files (``<catalog>.properties`` text, without secrets) for a Trino server over the
    lake, and the environment the server needs to resolve their ``${ENV:...}`` references."""

    files: dict[str, str]
    env: dict[str, str] = field(repr=False)


def delta_metastore_dir(settings: Settings) -> str:
    """Where the ``delta_lake`` catalog keeps its file metastore: beside the warehouse (never in
    it, where the lake lists its tables), e.g. ``s3://lake/prod/warehouse`` -> ``s3://lake/prod/trino-metastore``."""
    parts = urllib.parse.urlsplit(settings.warehouse)
    parent = parts.path.rstrip("/").rsplit("/", 1)[0]
    return join_uri(f"{parts.scheme}://{parts.netloc}{parent}", "trino-metastore")


def _properties(values: dict[str, str], comment: str) -> str:
    return "".join(f"# {line}\n" for line in comment.splitlines()) + "".join(f"{k}={v}\n" for k, v in values.items())


def _s3_properties(settings: Settings) -> dict[str, str]:
    s3 = settings.s3
    props = {"fs.native-s3.enabled": "true", "s3.region": s3.region}
    if s3.endpoint:
        props["s3.endpoint"] = s3.endpoint
    props["s3.path-style-access"] = "true" if s3.path_style else "false"
    if s3.access_key_id and s3.secret_access_key:
        props["s3.aws-access-key"] = f"${{ENV:{S3_KEY_ENV}}}"
        props["s3.aws-secret-key"] = f"${{ENV:{S3_SECRET_ENV}}}"
    return props


def trino_catalogs(settings: Settings) -> TrinoCatalogs:
    """The ``iceberg`` and ``delta_lake`` catalogs of a Trino server over this lake, generated from
    its settings so Trino reads the same tables DuckDB and the pipeline do: Iceberg through the
    same JDBC catalog (PostgreSQL) pyiceberg commits to, Delta through a file metastore where
    ``lakehouse trino register`` records each table's location.

    Raises:
        QueryError: when the warehouse is not on S3 (Trino reads the lake from object storage).
    """
    if not settings.warehouse_is_s3:
        raise QueryError(
            f"Trino reads the lake from S3, and LAKEHOUSE_WAREHOUSE={settings.warehouse!r} is a local "
            "folder: point the lake at S3 (LAKEHOUSE_WAREHOUSE=s3://..., LAKEHOUSE_S3_ENDPOINT)"
        )
    env: dict[str, str] = {}
    if settings.s3.access_key_id and settings.s3.secret_access_key:
        env = {S3_KEY_ENV: settings.s3.access_key_id, S3_SECRET_ENV: settings.s3.secret_access_key}
    s3 = _s3_properties(settings)
    files = {
        "delta_lake.properties": _properties(
            {
                "connector.name": "delta_lake",
                "hive.metastore": "file",
                "hive.metastore.catalog.dir": delta_metastore_dir(settings),
                "delta.register-table-procedure.enabled": "true",
                "delta.enable-non-concurrent-writes": "false",
                **s3,
            },
            "Delta tables of the lake, registered by location: lakehouse trino register --execute\n"
            "(generated by `lakehouse trino catalogs` from the lake's settings)",
        )
    }
    if settings.catalog_uri.startswith(("postgresql://", "postgresql+psycopg2://")):
        url = urllib.parse.urlsplit(settings.catalog_uri)
        jdbc = {
            "connector.name": "iceberg",
            "iceberg.catalog.type": "jdbc",
            "iceberg.jdbc-catalog.catalog-name": settings.catalog_name,
            "iceberg.jdbc-catalog.driver-class": "org.postgresql.Driver",
            "iceberg.jdbc-catalog.connection-url": (
                f"jdbc:postgresql://{url.hostname or '127.0.0.1'}:{url.port or 5432}{url.path}"
            ),
        }
        if url.username:
            jdbc["iceberg.jdbc-catalog.connection-user"] = urllib.parse.unquote(url.username)
        if url.password:
            jdbc["iceberg.jdbc-catalog.connection-password"] = f"${{ENV:{CATALOG_PASSWORD_ENV}}}"
            env[CATALOG_PASSWORD_ENV] = urllib.parse.unquote(url.password)
        jdbc["iceberg.jdbc-catalog.default-warehouse-dir"] = settings.warehouse
        files["iceberg.properties"] = _properties(
            {**jdbc, **s3},
            "Iceberg tables of the lake: the JDBC catalog pyiceberg commits to, so every commit is\n"
            "visible at once (generated by `lakehouse trino catalogs` from the lake's settings)",
        )
    # an SQLite catalog (the embedded default) has no Trino connector: Iceberg stays DuckDB's there
    return TrinoCatalogs(files=files, env=env)


def write_catalogs(settings: Settings, folder: Path) -> TrinoCatalogs:
    """Write :func:`trino_catalogs` into ``folder`` (replacing the catalog files there)."""
    catalogs = trino_catalogs(settings)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.properties"):
        old.unlink()
    for name, text in catalogs.files.items():
        (folder / name).write_text(text)
    return catalogs
