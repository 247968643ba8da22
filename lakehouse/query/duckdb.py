"""DuckDB in-process over the lake: every table visible as ``<layer>_<domain>.<table>``.

Extensions come from the pinned ``duckdb-extension-*`` wheels and are loaded straight from the
wheel's file (``LOAD '<path>'``): nothing is downloaded and nothing is installed into the
user's ``~/.duckdb``. Auto-install is switched off so no query ever tries the network.

With a ``role`` (``lakehouse query --role``), the session follows the governance policy: a role
without clear access sees every table through a masked view (``lakehouse.governance.masking``)
and may only run SELECTs over those views; a role with clear access sees the tables as they are,
and each of its queries that reads personal data is recorded in the audit log.
"""

from __future__ import annotations

import importlib
import importlib.resources
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from lakehouse.exceptions import QueryError
from lakehouse.naming import TableRef, table_location
from lakehouse.settings import Settings
from lakehouse.sql import quote_ident, quote_literal, quote_qualified

if TYPE_CHECKING:
    from lakehouse.governance.masking import ColumnMask

__all__ = ["Query", "configure", "connect", "extension_path", "register_tables", "scan_sql"]

# extensions that must be loaded before another one (DuckDB would try to auto-install them)
_REQUIRES = {"iceberg": ("avro",)}


def extension_path(name: str) -> Path:
    """The bundled extension file of ``duckdb-extension-<name>`` for the running DuckDB version."""
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        raise QueryError(
            f"DuckDB extension {name!r} is not installed; add duckdb-extension-{name}=={duckdb.__version__} "
            "to the environment (extensions cannot be downloaded at run time)"
        ) from None
    root = Path(str(importlib.resources.files(module)))
    version = "v" + duckdb.__version__.lstrip("v")
    path = root / "extensions" / version / f"{name}.duckdb_extension"
    if not path.is_file():
        raise QueryError(f"DuckDB extension file {path} is missing (duckdb {duckdb.__version__})")
    return path


def _load(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"LOAD {quote_literal(str(extension_path(name)))}")


def connect(
    settings: Settings,
    *,
    database: str = ":memory:",
    extensions: Iterable[str] = ("delta", "iceberg"),
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake's extensions loaded offline and S3 configured."""
    con = duckdb.connect(
        database,
        read_only=read_only,
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"},
    )
    configure(con, settings, extensions=extensions)
    return con


def configure(
    con: duckdb.DuckDBPyConnection, settings: Settings, *, extensions: Iterable[str] = ("delta", "iceberg")
) -> None:
    """Load the lake's extensions offline and create the S3 secret on an existing connection
    (also one that dbt-duckdb opened: see ``lakehouse.dbt.plugin``)."""
    wanted = list(extensions)
    if settings.warehouse_is_s3:
        wanted = ["httpfs", "aws", *wanted]
    ordered = [dep for name in wanted for dep in (*_REQUIRES.get(name, ()), name)]
    for name in dict.fromkeys(ordered):
        _load(con, name)
    if settings.warehouse_is_s3:
        s3 = settings.s3
        parts = ["TYPE s3", f"REGION {quote_literal(s3.region)}"]
        if s3.access_key_id:
            parts.append(f"KEY_ID {quote_literal(s3.access_key_id)}")
        if s3.secret_access_key:
            parts.append(f"SECRET {quote_literal(s3.secret_access_key)}")
        if s3.endpoint_host:
            parts.append(f"ENDPOINT {quote_literal(s3.endpoint_host)}")
            parts.append(f"USE_SSL {'false' if (s3.endpoint or '').startswith('http://') else 'true'}")
        parts.append(f"URL_STYLE {quote_literal('path' if s3.path_style else 'vhost')}")
        con.execute(f"CREATE OR REPLACE SECRET lakehouse_s3 ({', '.join(parts)})")


def scan_sql(settings: Settings, ref: TableRef, fmt: str) -> str:
    """The SELECT that reads the current version of a table (DuckDB's delta_scan or iceberg_scan)."""
    if fmt == "delta":
        return f"SELECT * FROM delta_scan({quote_literal(table_location(ref, settings))})"
    # Iceberg: read the current metadata file the catalog points at
    from lakehouse.tables.iceberg import open_catalog

    table = open_catalog(settings).load_table((ref.namespace, ref.name))
    return f"SELECT * FROM iceberg_scan({quote_literal(table.metadata_location)})"


def register_tables(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    tables: Sequence[tuple[TableRef, str]],
    *,
    masks: Mapping[TableRef, Sequence[ColumnMask]] | None = None,
) -> list[str]:
    """Create a schema per ``<layer>_<domain>`` and a view per table; returns the view names.

    ``masks``: tables whose view shows some columns masked (every other column as it is)."""
    names = []
    for ref, fmt in tables:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(ref.namespace)}")
        scan = scan_sql(settings, ref, fmt)
        masked = {m.column: m for m in (masks or {}).get(ref, ())}
        if masked:
            from lakehouse.governance.masking import duckdb_expression

            columns = [row[0] for row in con.execute(f"DESCRIBE {scan}").fetchall()]
            select = ", ".join(duckdb_expression(masked[c]) if c in masked else quote_ident(c) for c in columns)
            scan = f"SELECT {select} FROM ({scan}) AS lake_table"
        con.execute(f"CREATE OR REPLACE VIEW {quote_qualified(ref.namespace, ref.name)} AS {scan}")
        names.append(ref.sql_name)
    return names


class Query:
    """A DuckDB session over every table in the lake.

    ``role`` (a role of the governance policy) masks personal data for roles without clear
    access and audits the privileged queries of the others; ``None`` is the library's own use:
    tables as they are, no audit.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tables: Sequence[tuple[TableRef, str]] | None = None,
        role: str | None = None,
        actor: str | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
        self.actor = actor
        self.con = connect(settings)
        if tables is None:
            from lakehouse.tables import Lake

            tables = [(info.ref, info.format) for info in Lake(settings).tables()]
        self._clear = True
        self._pii_tables: set[tuple[str, str]] = set()
        masks: dict[TableRef, list[ColumnMask]] = {}
        if role is not None:
            masks = self._govern(tables, role)
        self.views = register_tables(self.con, settings, tables, masks=masks)
        self._view_keys = {(ref.namespace, ref.name) for ref, _ in tables}
        if not self._clear:
            self.con.execute("SET lock_configuration = true")  # the session's settings stay as set up

    def _govern(self, tables: Sequence[tuple[TableRef, str]], role: str) -> dict[TableRef, list[ColumnMask]]:
        """Masks for a role without clear access (and the hash functions they call)."""
        import pyarrow as pa

        from lakehouse.governance.inventory import pii_columns
        from lakehouse.governance.masking import (
            HASH_FUNCTION,
            HASH_INT_FUNCTION,
            keyed_hash,
            keyed_hash_int,
            masking_key,
            masks_for,
        )
        from lakehouse.governance.policy import load_policy
        from lakehouse.tables import Lake

        policy = load_policy()
        self._clear = policy.role(role).clear
        lake = Lake(self.settings)
        pii = pii_columns(self.settings, tables, lake=lake)
        self._pii_tables = {(ref.namespace, ref.name) for ref, columns in pii.items() if columns}
        if self._clear:
            return {}
        key = masking_key(self.settings)

        # annotated with Any: DuckDB evaluates the annotations in this module's globals
        def hash_text(values: Any) -> Any:
            return pa.array([keyed_hash(v, key) for v in values.to_pylist()], pa.string())

        def hash_int(values: Any) -> Any:
            return pa.array([keyed_hash_int(v, key) for v in values.to_pylist()], pa.int64())

        self.con.create_function(HASH_FUNCTION, hash_text, ["VARCHAR"], "VARCHAR", type="arrow")  # type: ignore[call-overload]
        self.con.create_function(HASH_INT_FUNCTION, hash_int, ["VARCHAR"], "BIGINT", type="arrow")  # type: ignore[call-overload]
        masks = {}
        for ref, fmt in tables:
            table_masks = masks_for(policy, ref, lake.store(fmt).schema(ref), pii.get(ref, {}))  # type: ignore[arg-type]
            if table_masks:
                masks[ref] = table_masks
        return masks

    def sql(self, statement: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        """Run a statement (values only as ``params``) and return a polars DataFrame."""
        if self.role is not None:
            self._authorise(statement)
        try:
            return self.con.execute(statement, params).pl()
        except duckdb.Error as exc:
            raise QueryError(f"DuckDB: {exc}\n  in: {statement.strip()[:500]}") from None

    def _authorise(self, statement: str) -> None:
        """Masked roles: only SELECTs over the views. Clear roles: audit a query over personal data."""
        from lakehouse.governance.masking import ANY_TABLE, check_analyst_sql, redact_literals, tables_read

        if not self._clear:
            check_analyst_sql(statement, self._view_keys)
            return
        read = tables_read(statement)
        touched = sorted(self._pii_tables if ANY_TABLE in read else read & self._pii_tables)
        if touched:
            from lakehouse.governance.audit import record

            record(
                self.settings,
                action="privileged_query",
                target=", ".join(f"{s}.{t}" for s, t in touched),
                details={"role": self.role, "sql": redact_literals(statement)[:4000]},
                actor=self.actor,
            )

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Query:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
