"""Masking personal data for roles without clear access, in DuckDB and in Trino.

Strategies (chosen per PII class in the policy, or per column):

``hash``        keyed HMAC-SHA256. Text becomes 32 hex characters, integers a 64-bit integer, so a
                masked key keeps its type and equal values stay equal: joins on it still work.
``partial``     only the last 4 characters are shown (``*******4425``).
``generalise``  a birth date becomes its year (1 January), a postcode its first 2 characters, an
                IP address its network (IPv4 /24, IPv6 /48).
``null``        the column is empty (same type).

The key is ``LAKEHOUSE_MASKING_KEY``. On the embedded default without it, a random key is created
once in ``$LAKEHOUSE_HOME/governance/masking.key`` (mode 0600), so hashes are stable on this
machine; a lake on S3 refuses to mask without the variable (every host must hash alike).
The key never reaches SQL text: DuckDB calls a Python function holding it, and the Trino rules
file is rendered with it only when written for deployment.

DuckDB runs inside the user's process, so the analyst role there guards against accidents (only
masked views, only plain SELECTs over them); the enforcement boundary for people who must not
see personal data is Trino with the generated access-control rules.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakehouse.exceptions import LakehouseError
from lakehouse.governance.classifier import PiiClass
from lakehouse.governance.policy import Policy, Strategy
from lakehouse.naming import TableRef
from lakehouse.settings import Settings
from lakehouse.sql import quote_ident
from lakehouse.tables.schema import is_text_type

__all__ = [
    "ANY_TABLE",
    "HASH_FUNCTION",
    "HASH_INT_FUNCTION",
    "KEY_FILE",
    "TRINO_KEY_CATALOG",
    "TRINO_KEY_TABLE",
    "ColumnMask",
    "MaskingKeyError",
    "QueryNotAllowedError",
    "check_analyst_sql",
    "duckdb_expression",
    "keyed_hash",
    "keyed_hash_int",
    "masking_key",
    "masks_for",
    "redact_literals",
    "redact_reason",
    "redact_reasons",
    "redact_value",
    "redaction_key",
    "tables_read",
    "trino_expression",
    "trino_rule_tables",
    "trino_rules",
    "trino_type",
]

KEY_FILE = Path("governance") / "masking.key"
HASH_FUNCTION = "lh_mask_hash"
HASH_INT_FUNCTION = "lh_mask_hash_int"
#: DuckDB functions an analyst query may not call: they read files or run SQL given as text
_DENIED_FUNCTIONS = {
    "query", "query_table", "getenv", "read_text", "read_blob", "glob", "sniff_csv", "current_setting",
    "duckdb_settings", "duckdb_views", "duckdb_functions", "duckdb_secrets", "duckdb_extensions", "which_secret",
}  # fmt: skip
_DENIED_PREFIXES = ("read_", "parquet_", "iceberg_", "delta_", "lh_")
_DENIED_SUFFIXES = ("_scan", "_metadata")


class MaskingKeyError(LakehouseError):
    """No masking key is available where one is required (a lake on S3 without LAKEHOUSE_MASKING_KEY)."""


class QueryNotAllowedError(LakehouseError, PermissionError):
    """A query of a role without clear access reads something other than the masked views."""


def masking_key(settings: Settings) -> bytes:
    """The keyed-hash key: ``LAKEHOUSE_MASKING_KEY``, else the state folder's key file (created once)."""
    if settings.masking_key:
        return settings.masking_key.encode("utf-8")
    if settings.warehouse_is_s3:
        raise MaskingKeyError(
            "LAKEHOUSE_MASKING_KEY is not set: a lake on S3 is read from several hosts, which must all hash "
            "personal data with the same key. Set it (e.g. `openssl rand -hex 32`) in every environment."
        )
    path = settings.home / KEY_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode("utf-8")


def keyed_hash(value: object, key: bytes) -> str | None:
    """HMAC-SHA256 of the value's text, first 16 bytes as lower-case hex (Trino computes the same)."""
    if value is None:
        return None
    return hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def keyed_hash_int(value: object, key: bytes) -> int | None:
    """The first 8 bytes of the HMAC as a signed 64-bit integer (masks integer keys, keeps the type)."""
    if value is None:
        return None
    digest = hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def redaction_key(settings: Settings) -> bytes | None:
    """The masking key for redacting values in metadata, logs and governance tables, or None
    where there is none (a lake on S3 without ``LAKEHOUSE_MASKING_KEY``: values are then dropped,
    not hashed). A Dagster resource's settings do not carry the key; this process's do."""
    if settings.masking_key is None:
        from lakehouse.settings import get_settings

        env_key = get_settings().masking_key
        if env_key:
            settings = settings.with_overrides(masking_key=env_key)
    try:
        return masking_key(settings)
    except MaskingKeyError:
        return None


def redact_value(value: object, key: bytes | None) -> str:
    """A value as it may appear outside the lake's tables (event log, audit log, governance
    tables, logs): ``hmac:<keyed hash>`` (the same hash analysts see for masked text columns, so a
    steward can find the row: ``keyed_hash(value, key)``), ``null``, or ``<redacted>`` without a key.

    Erasure cannot reach those places, so a personal value must never be copied there in clear."""
    if value is None:
        return "null"
    if key is None:
        return "<redacted>"
    return f"hmac:{keyed_hash(value, key)}"


#: reasons of the readers and of bronze typing that carry no value (kept as they are)
_VALUE_FREE_REASONS = re.compile(
    r"^(expected \d+ fields, found \d+"
    r"|invalid JSON: [A-Za-z ',:]+ at column \d+"
    r"|expected a JSON object, found \w+"
    r"|not a common/combined access log line \(truncated or malformed\)"
    r"|[A-Za-z_][A-Za-z0-9_]* is missing)$"
)
#: ``column <name>: <value> does not fit <type>`` (bronze typing), one per misfit column
_MISFIT = re.compile(
    r"column (?P<column>[A-Za-z0-9_]+): (?P<value>.*?) does not fit (?P<type>[^;]+?)(?=; column |$)", re.S
)


def redact_reason(reason: str | None, key: bytes | None) -> str | None:
    """A quarantine reason without the values it quotes: the column, the reason class and a keyed
    hash of the value (``column birth_date: hmac:3f9a... does not fit date``). The full reason
    stays in the quarantine table, which erasure reaches; this is for the copies outside it
    (materialization metadata, command output). A reason of an unknown shape is withheld whole."""
    if reason is None:
        return None
    parts = [p for p in reason.split("; ") if p]
    if parts and all(_VALUE_FREE_REASONS.match(p) for p in parts):
        return reason
    misfits = list(_MISFIT.finditer(reason))
    if misfits and "".join(m.group(0) for m in misfits).replace(" ", "") == reason.replace("; ", "").replace(" ", ""):
        return "; ".join(
            f"column {m.group('column')}: {redact_value(m.group('value'), key)} does not fit {m.group('type')}"
            for m in misfits
        )
    return f"reason withheld (may quote values; see the quarantine table), {redact_value(reason, key)}"


def redact_reasons(rows: Sequence[Mapping[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """Quarantine rows (``_source_file``, ``_source_line``, ``_reason``) with their ``_reason``
    redacted by :func:`redact_reason`: what metadata and command output may show of them."""
    key = redaction_key(settings)
    return [{**r, "_reason": redact_reason(r.get("_reason"), key)} for r in rows]


@dataclass(frozen=True)
class ColumnMask:
    column: str
    strategy: Strategy
    pii_class: PiiClass | None
    arrow_type: pa.DataType


def masks_for(policy: Policy, ref: TableRef, schema: pa.Schema, pii: Mapping[str, PiiClass]) -> list[ColumnMask]:
    """The masked columns of one table (columns shown in clear are left out)."""
    out = []
    for f in schema:
        strategy = policy.strategy_for(ref, f.name, pii.get(f.name))
        if strategy != "clear":
            out.append(ColumnMask(f.name, strategy, pii.get(f.name), f.type))
    return out


def _last4(text: str, engine: str) -> str:
    if engine == "duckdb":
        return (
            f"CASE WHEN {text} IS NULL THEN NULL WHEN length({text}) <= 4 THEN repeat('*', length({text})) "
            f"ELSE repeat('*', length({text}) - 4) || right({text}, 4) END"
        )
    return (
        f"CASE WHEN {text} IS NULL THEN NULL WHEN length({text}) <= 4 THEN rpad('', length({text}), '*') "
        f"ELSE concat(rpad('', length({text}) - 4, '*'), substr({text}, length({text}) - 3)) END"
    )


def _prefix2(text: str, engine: str) -> str:
    if engine == "duckdb":
        return f"CASE WHEN {text} IS NULL THEN NULL ELSE left({text}, 2) || repeat('*', greatest(length({text}) - 2, 0)) END"
    return f"CASE WHEN {text} IS NULL THEN NULL ELSE concat(substr({text}, 1, 2), rpad('', greatest(length({text}) - 2, 0), '*')) END"


def _network(text: str, engine: str) -> str:
    v6 = f"regexp_extract({text}, '^([0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f]*)', 1) || '::'"
    v4 = f"regexp_replace({text}, '\\.[0-9]+$', '.0')"
    if engine == "trino":
        v6 = f"concat(regexp_extract({text}, '^([0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f]*)', 1), '::')"
    return f"CASE WHEN {text} IS NULL THEN NULL WHEN strpos({text}, ':') > 0 THEN {v6} ELSE {v4} END"


def _generalised(mask: ColumnMask, column: str, text: str, engine: str) -> str | None:
    t = mask.arrow_type
    if pa.types.is_date(t):
        return f"CAST(date_trunc('year', {column}) AS DATE)"
    if pa.types.is_timestamp(t):
        return f"date_trunc('year', {column})"
    if not is_text_type(t):
        return None
    if mask.pii_class == "date_of_birth":  # ISO text: keep the year
        return (
            f"CASE WHEN {column} IS NULL THEN NULL ELSE left({column}, 4) || '-01-01' END"
            if engine == "duckdb"
            else f"CASE WHEN {column} IS NULL THEN NULL ELSE concat(substr({column}, 1, 4), '-01-01') END"
        )
    if mask.pii_class == "ip_address":
        return _network(text, engine)
    return _prefix2(text, engine)


def _null_of(column: str) -> str:
    return f"CASE WHEN FALSE THEN {column} END"  # NULL of the column's own type, in both engines


def duckdb_expression(mask: ColumnMask) -> str:
    """The DuckDB expression showing ``mask.column`` masked (aliased to the column name)."""
    column = quote_ident(mask.column)
    text = f"CAST({column} AS VARCHAR)"
    t = mask.arrow_type
    expr: str | None
    if mask.strategy == "hash":
        if pa.types.is_integer(t):
            expr = f"{HASH_INT_FUNCTION}({text})"
        elif is_text_type(t) or pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_decimal(t):
            expr = f"{HASH_FUNCTION}({text})"
        else:
            expr = None
    elif mask.strategy == "partial":
        expr = _last4(text, "duckdb") if is_text_type(t) or pa.types.is_integer(t) else None
    elif mask.strategy == "generalise":
        expr = _generalised(mask, column, text, "duckdb")
    else:
        expr = None
    return f"{expr or _null_of(column)} AS {column}"


def trino_type(t: pa.DataType) -> str:
    """Trino's name for an Arrow type (as the Delta and Iceberg connectors map it)."""
    if is_text_type(t):
        return "varchar"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t):
        return "integer"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_float32(t):
        return "real"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision}, {t.scale})"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp(6) with time zone" if t.tz else "timestamp(6)"
    return "varchar"


def trino_expression(mask: ColumnMask, key_sql: str | None) -> str:
    """A Trino column-mask expression of the column's own type (Trino requires it).

    ``key_sql`` is the key as a SQL varchar literal. Without it a keyed hash cannot be computed:
    the column is hidden entirely (NULL), never hashed with a key someone else could know (an
    unkeyed or public-key hash of an id is reversed by enumerating ids)."""
    column = quote_ident(mask.column)
    text = f"CAST({column} AS varchar)"
    t = mask.arrow_type
    digest = f"hmac_sha256(to_utf8({text}), to_utf8({key_sql}))"
    expr: str | None = None
    if mask.strategy == "hash" and key_sql is not None:
        if pa.types.is_integer(t) and trino_type(t) == "bigint":
            expr = f"CASE WHEN {column} IS NULL THEN NULL ELSE from_big_endian_64(substr({digest}, 1, 8)) END"
        elif is_text_type(t):
            expr = f"CASE WHEN {column} IS NULL THEN NULL ELSE lower(to_hex(substr({digest}, 1, 16))) END"
    elif mask.strategy == "partial" and is_text_type(t):
        expr = _last4(column, "trino")
    elif mask.strategy == "generalise":
        if pa.types.is_date(t) or pa.types.is_timestamp(t):
            expr = f"date_trunc('year', {column})"
        elif is_text_type(t):
            expr = _generalised(mask, column, column, "trino")
    return expr or f"CAST(NULL AS {trino_type(t)})"


#: where a Trino server keeps the masking key (a table of the ``memory`` connector, one row, one
#: ``value`` column): loaded at start by the service user from ``LAKEHOUSE_MASKING_KEY``
#: (``lakehouse trino load-key``), read by the column masks as the service user, never readable
#: by a masked role. Lost when Trino restarts: the hashed columns are then NULL until it is loaded.
TRINO_KEY_CATALOG = "lakehouse_secrets"
TRINO_KEY_TABLE = f"{TRINO_KEY_CATALOG}.masking.masking_key"


def trino_rules(
    policy: Policy,
    tables: Sequence[tuple[TableRef, pa.Schema, Mapping[str, PiiClass], str]],
    *,
    key_sql: str | None = None,
    key_table: str | None = None,
    service_users: Sequence[str] = ("lakehouse", "admin"),
) -> dict[str, Any]:
    """Trino file-based access control (``rules.json``) with column masks per role.

    ``tables`` holds ``(ref, schema, pii classes by column, trino catalog)``. Roles map to Trino
    groups of the same name (configure a group provider, e.g. the file group provider);
    ``service_users`` (the code location's own user, which registers tables) keep full access.

    The key of the hashed columns: with ``key_table`` (:data:`TRINO_KEY_TABLE`) the masks read it
    from that table as the first service user, so neither the rules nor a masked role's
    ``EXPLAIN`` (which prints each mask's expression, constants included) ever show it: what
    ``lakehouse trino rules`` renders. With ``key_sql`` it is written into the masks: anyone who may
    run EXPLAIN on a masked table can read it, so only for a server where no masked role logs in.
    Without either the rules fail closed: columns masked by a keyed hash are hidden entirely
    (Trino does not expand variables in this file, so a placeholder key would be a public key).
    """
    if key_table is not None:
        key: str | None = f"(SELECT value FROM {key_table})"
        environment: dict[str, Any] = {"mask_environment": {"user": service_users[0]}}
    else:
        key, environment = key_sql, {}
    rules: list[dict[str, Any]] = []
    for role in policy.roles.values():
        for ref, schema, pii, catalog in tables:
            masks = [] if role.clear else masks_for(policy, ref, schema, pii)
            rule: dict[str, Any] = {
                "group": role.name,
                "catalog": catalog,
                "schema": ref.namespace,
                "table": ref.name,
                "privileges": ["SELECT"],
            }
            if masks:
                rule["columns"] = [
                    {
                        "name": m.column,
                        "mask": trino_expression(m, key),
                        **(environment if m.strategy == "hash" else {}),
                    }
                    for m in masks
                ]
            rules.append(rule)
    # everything not listed is denied: governance tables and new tables need a rules refresh
    service = "|".join(service_users)
    everything = ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP", "GRANT_SELECT"]
    return {
        "catalogs": [
            {"user": service, "allow": "all"},
            {"group": "|".join(sorted(policy.roles)), "catalog": "iceberg|delta_lake", "allow": "read-only"},
        ],
        "schemas": [{"user": service, "owner": True}, {"group": "|".join(sorted(policy.roles)), "owner": False}],
        "tables": [{"user": service, "privileges": everything}, *rules, {"privileges": []}],
        # procedures (register_table, ...) and catalog functions, table functions included
        # (table_changes reads a table around its masks), for the service users only; everyone
        # keeps the built-in functions (Trino always allows those)
        "procedures": [{"user": service, "privileges": ["EXECUTE", "GRANT_EXECUTE"]}],
        "functions": [{"user": service, "privileges": ["EXECUTE", "GRANT_EXECUTE", "OWNERSHIP"]}],
        # without query rules anyone may view anyone's queries, text included (system.runtime.queries)
        "queries": [{"user": service, "allow": ["execute", "kill", "view"]}, {"allow": ["execute"]}],
        "system_information": [{"user": service, "allow": ["read", "write"]}],
    }


def trino_rule_tables(settings: Settings) -> list[tuple[TableRef, pa.Schema, dict[str, PiiClass], str]]:
    """The ``tables`` argument of :func:`trino_rules` for the lake of ``settings``: every table but
    the governance ones, its PII classes from the inventory (tables not scanned yet are classified
    now) and the contracts, and its Trino catalog."""
    from lakehouse.governance.contracts import load_contracts
    from lakehouse.governance.inventory import pii_columns
    from lakehouse.tables import Lake

    catalogs = {"iceberg": "iceberg", "delta": "delta_lake"}  # lakehouse.query.trino.CATALOGS
    lake = Lake(settings)
    infos = [i for i in lake.tables() if i.ref.layer != "governance"]
    pii = pii_columns(settings, [(i.ref, i.format) for i in infos], lake=lake)
    for contract in load_contracts():
        known = pii.setdefault(contract.ref, {})
        known.update({k: v for k, v in contract.pii.items() if k not in known})
    return [(i.ref, lake.store(i.format).schema(i.ref), pii.get(i.ref, {}), catalogs[i.format]) for i in infos]


def check_analyst_sql(sql: str, views: set[tuple[str, str]]) -> None:
    """Allow only read queries over the registered (masked) views: no table functions, no file
    paths, no functions that read files or run SQL text, one statement.

    Raises:
        QueryNotAllowedError: naming what is not allowed.
    """
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise QueryNotAllowedError(
            f"the analyst role runs plain SELECT statements; this one does not parse ({exc})"
        ) from None
    if len(statements) != 1:
        raise QueryNotAllowedError("the analyst role runs one SELECT statement at a time")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise QueryNotAllowedError(
            f"the analyst role may only run SELECT queries, not {tree.key.upper()} (ask a data steward)"
        )
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    allowed = {(s.lower(), t.lower()) for s, t in views}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise QueryNotAllowedError(
                f"the analyst role cannot read {table.this.sql(dialect='duckdb')[:80]}: only the lake's masked views"
            )
        name, schema = table.name.lower(), table.db.lower()
        if table.catalog or ((schema, name) not in allowed and not (not schema and name in ctes)):
            shown = ".".join(p for p in (table.catalog, table.db, table.name) if p)
            raise QueryNotAllowedError(
                f"the analyst role cannot read {shown!r}: only the lake's masked views (<layer>_<domain>.<table>)"
            )
    for func in tree.find_all(exp.Func):
        name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        if (
            name in _DENIED_FUNCTIONS
            or name.startswith(_DENIED_PREFIXES)
            or name.endswith(_DENIED_SUFFIXES)
            or isinstance(func, exp.ReadCSV)
        ):
            raise QueryNotAllowedError(f"the analyst role cannot call {name}()")


#: what :func:`tables_read` returns when it cannot tell (a parse error, a table function)
ANY_TABLE = ("*", "*")


def tables_read(sql: str) -> set[tuple[str, str]]:
    """``(schema, table)`` of every table a statement reads; :data:`ANY_TABLE` when it cannot tell."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError:
        return {ANY_TABLE}
    found: set[tuple[str, str]] = set()
    for tree in statements:
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                return {ANY_TABLE}
            if not table.db and table.name.lower() in ctes:
                continue
            found.add((table.db.lower(), table.name.lower()))
    return found


def redact_literals(sql: str) -> str:
    """The statement with every literal replaced by ``?``: audit entries keep the query's shape
    but not the values it filtered on (which may be personal data, e.g. an e-mail address)."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError:
        return "<statement that does not parse; not recorded>"

    def scrub(node: exp.Expression) -> exp.Expression:
        return exp.Placeholder() if isinstance(node, exp.Literal) else node

    return "; ".join(s.transform(scrub).sql(dialect="duckdb") for s in statements)
