"""Trino over the same tables: one Trino schema per ``<layer>_<domain>``, in the ``iceberg`` or
``delta_lake`` catalog of ``deploy/trino/catalog``. Queries are written in DuckDB's dialect (the
project's SQL files) and transpiled with sqlglot, so one SQL file runs on both engines."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import secrets
import urllib.parse
from collections.abc import Mapping, Sequence
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
    "PASSWORD_ENV",
    "SERVICE_USER",
    "SHARED_SECRET_ENV",
    "TrinoCatalogs",
    "TrinoResource",
    "TrinoTls",
    "delta_metastore_dir",
    "http_session",
    "load_masking_key",
    "password_file",
    "register_statements",
    "register_tables",
    "to_trino",
    "trino_catalogs",
    "trino_passwords",
    "trino_query",
    "write_catalogs",
    "write_password_file",
    "write_tls",
]

CATALOGS: dict[str, str] = {"iceberg": "iceberg", "delta": "delta_lake"}
#: the pipeline's own Trino user (registers tables, dbt writes models): full access in the rules
SERVICE_USER = "lakehouse"
#: the service user's password; ``LAKEHOUSE_TRINO_PASSWORD_<USER>`` is another user's (a server's
#: password file is made from these variables at start, see :func:`trino_passwords`)
PASSWORD_ENV = "LAKEHOUSE_TRINO_PASSWORD"  # noqa: S105 - the name of a variable, not a secret
#: the secret Trino's nodes sign their internal requests with (``internal-communication.shared-secret``)
SHARED_SECRET_ENV = "LAKEHOUSE_TRINO_SHARED_SECRET"  # noqa: S105 - a variable name


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
    #: PEM file of the CA that signed the server's certificate (``LAKEHOUSE_TRINO_CA_FILE``);
    #: without it an https server is verified against the system's trusted CAs
    ca_file: str | None = None

    @classmethod
    def from_url(
        cls, url: str, *, password: Any = None, catalog: str = "iceberg", ca_file: str | None = None
    ) -> TrinoResource:
        parts = urllib.parse.urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8443 if parts.scheme == "https" else 8080),
            user=parts.username or SERVICE_USER,
            http_scheme=parts.scheme or "http",
            password=password,
            catalog=catalog,
            ca_file=ca_file,
        )

    def connect(self) -> Any:
        import trino

        if self.ca_file and not Path(self.ca_file).is_file():
            raise QueryError(f"LAKEHOUSE_TRINO_CA_FILE={self.ca_file!r} is not a file (the PEM CA of the Trino server)")
        auth = trino.auth.BasicAuthentication(self.user, self.password) if self.password else None
        return trino.dbapi.connect(  # type: ignore[no-untyped-call]
            host=self.host,
            port=self.port,
            user=self.user,
            http_scheme=self.http_scheme,
            auth=auth,
            catalog=self.catalog,
            http_session=http_session(self.ca_file),
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


def http_session(ca_file: str | None = None) -> Any:
    """The HTTP session of a Trino connection: it verifies the server against ``ca_file`` (else
    the system's CAs), and never turns verification off. requests lets ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` override a session's own ``verify``; here the session's choice stands."""
    import requests

    class _Session(requests.Session):
        def merge_environment_settings(self, *args: Any, **kwargs: Any) -> Any:
            merged = super().merge_environment_settings(*args, **kwargs)
            merged["verify"] = self.verify
            return merged

    session = _Session()
    session.verify = ca_file or True
    return session


def trino_query(settings: Settings, sql: str, *, fmt: TableFormat | None = None) -> pl.DataFrame:
    """Run DuckDB-dialect ``sql`` on Trino (``LAKEHOUSE_TRINO_URL``) in the lake format's catalog."""
    return _resource(settings, CATALOGS[fmt or settings.table_format]).query(to_trino(sql))


def _resource(settings: Settings, catalog: str) -> TrinoResource:
    if not settings.trino_url:
        raise QueryError("set LAKEHOUSE_TRINO_URL (e.g. https://lakehouse@127.0.0.1:8443) to query with Trino")
    password = settings.trino_password
    return TrinoResource.from_url(
        settings.trino_url, password=password, catalog=catalog, ca_file=settings.trino_ca_file
    )


def load_masking_key(settings: Settings) -> None:
    """Put ``LAKEHOUSE_MASKING_KEY`` into the server's key table (``TRINO_KEY_TABLE``, a memory
    table the column masks read; see :func:`lakehouse.governance.masking.trino_rules`), as the
    service user. The key travels as a query parameter over the authenticated HTTPS connection;
    only the service user may see its own queries (the rules' query rules)."""
    from lakehouse.governance.masking import TRINO_KEY_TABLE, masking_key

    key = masking_key(settings).decode("utf-8")
    catalog, schema, table = TRINO_KEY_TABLE.split(".")
    resource = _resource(settings, catalog)
    try:
        resource.query(f"CREATE SCHEMA IF NOT EXISTS {quote_qualified(catalog, schema)}")
        resource.query(f"DROP TABLE IF EXISTS {quote_qualified(catalog, schema, table)}")
        resource.query(
            f"CREATE TABLE {quote_qualified(catalog, schema, table)} AS SELECT CAST(? AS varchar) AS value", [key]
        )
    except QueryError as exc:  # a server's message may quote the statement it ran, parameters included
        raise QueryError(redact(str(exc), [key])) from None


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


# -- authentication and TLS of a Trino server (deploy/local/trino.sh, the tests' server) ----------

#: PBKDF2 rounds of the password file (Trino's file authenticator requires >= 1000 and caches
#: each verified login, so a slow hash costs once per user)
PBKDF2_ITERATIONS = 100_000


def trino_passwords(env: Mapping[str, str]) -> dict[str, str]:
    """Who may log in, by user: the service user with ``LAKEHOUSE_TRINO_PASSWORD``, any other user
    with ``LAKEHOUSE_TRINO_PASSWORD_<USER>`` (e.g. ``..._ANALYST`` for ``analyst``). A user without
    a variable has no password, so cannot log in."""
    out: dict[str, str] = {}
    if env.get(PASSWORD_ENV):
        out[SERVICE_USER] = env[PASSWORD_ENV]
    for name, value in env.items():
        if name.startswith(PASSWORD_ENV + "_") and value:
            user = name[len(PASSWORD_ENV) + 1 :].lower()
            if user:
                out[user] = value
    return out


def password_file(passwords: Mapping[str, str], *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Trino's password file (``file.password-file``): ``user:iterations:salt:hash`` per line, the
    PBKDF2-HMAC-SHA1 form its file authenticator checks (hex, lower case). No clear password in it."""
    lines = []
    for user, password in sorted(passwords.items()):
        if not user or ":" in user or "\n" in user:
            raise QueryError(f"not a valid Trino user name for the password file: {user!r}")
        salt = secrets.token_bytes(16)
        digest = hashlib.pbkdf2_hmac("sha1", password.encode("utf-8"), salt, iterations, dklen=32)
        lines.append(f"{user}:{iterations}:{salt.hex()}:{digest.hex()}\n")
    return "".join(lines)


@dataclass(frozen=True)
class TrinoTls:
    """A server certificate and the CA that signed it: ``keystore`` (key + chain, PEM, mode 0600)
    is ``http-server.https.keystore.path``, ``ca_file`` is what clients verify with
    (``LAKEHOUSE_TRINO_CA_FILE``)."""

    ca_file: Path
    keystore: Path


def write_tls(folder: Path, hosts: Sequence[str] = ("127.0.0.1", "localhost"), *, days: int = 397) -> TrinoTls:
    """A private CA and a server certificate for ``hosts`` in ``folder`` (``ca.pem``,
    ``server.pem``); kept when they are there, cover ``hosts`` and stay valid for a day more, so
    clients that trust the CA keep trusting the server across restarts. The CA's key is not kept:
    nothing else can be signed with it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    tls = TrinoTls(ca_file=folder / "ca.pem", keystore=folder / "server.pem")
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    if tls.ca_file.is_file() and tls.keystore.is_file():
        try:
            current = x509.load_pem_x509_certificate(tls.keystore.read_bytes())
            covered = set(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
            if set(names) <= covered and current.not_valid_after_utc > now + dt.timedelta(days=1):
                return tls
        except (ValueError, x509.ExtensionNotFound):
            pass
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lakehouse Trino local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "trino")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    keystore = folder / "server.pem.tmp"
    fd = os.open(keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
        out.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    keystore.replace(tls.keystore)
    tls.ca_file.write_bytes(ca_cert.public_bytes(pem))
    return tls


def write_password_file(folder: Path, env: Mapping[str, str]) -> Path:
    """``folder/password.db`` from :func:`trino_passwords` (mode 0600); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "password.db"
    tmp = folder / "password.db.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password_file(trino_passwords(env)))
    tmp.replace(path)
    return path
