"""The one place that reads the environment.

Every ``LAKEHOUSE_*`` variable is read here and nowhere else. The defaults make a fresh clone
work with no services at all: a state folder ``.lakehouse/`` in the project root holding the
warehouse (a local folder), the landing zone, the Iceberg SQL catalog (SQLite) and Dagster's
storage.

Secrets are read here too: the S3 keys, the password inside ``LAKEHOUSE_CATALOG_URI`` (and any
other URI), the Trino and SMTP passwords, the webhook URL (its path is a token), the masking key
and the Redis URL. They are kept out of ``repr`` and out of every error message (:func:`redact`
is the one helper that makes a URI or a message safe to show), and Dagster resources receive them
only through ``dg.EnvVar`` (see ``resources/``), so neither the UI nor Dagster's storage holds them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal, cast, get_args

from lakehouse.exceptions import SettingsError

__all__ = [
    "ONLINE_STORES",
    "QUERY_ROLES",
    "TABLE_FORMATS",
    "AlertSettings",
    "QueryEngine",
    "S3Settings",
    "Settings",
    "TableFormat",
    "get_settings",
    "project_root",
    "redact",
    "scoped_environ",
]

TableFormat = Literal["delta", "iceberg"]
QueryEngine = Literal["duckdb", "trino"]
TABLE_FORMATS: tuple[TableFormat, ...] = get_args(TableFormat)
OnlineStore = Literal["sqlite", "redis"]
ONLINE_STORES: tuple[OnlineStore, ...] = get_args(OnlineStore)
QUERY_ROLES = ("analyst", "steward")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


#: ``scheme://user:PASSWORD@`` in a URI (the password may be empty; the user is kept)
_URI_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:'\"]*):[^\s/@'\"]*@")
#: ``?password=...`` / ``&token=...`` and their kin in a query string
_SECRET_PARAMETER = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|secret|token|key|api[_-]?key|access[_-]?key|secret[_-]?key|"
    r"signature|sig|x-amz-signature|x-amz-credential)=)[^&;\s'\"]*",
    re.IGNORECASE,
)
_REDACTED = "***"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` (a URI, a message, a traceback) safe to show: the password of every URI in it
    becomes ``***`` (``postgresql://lakehouse:***@db:5432/lake``: where and as whom stays
    visible, which is what someone debugging needs), as do secret-looking query parameters and
    every value of ``secrets`` (e.g. a webhook URL whose path is its token, an SMTP password).

    The one redaction helper of the project: use it wherever a setting or an error that may
    carry one reaches a message, a log line, metadata or a ``repr``.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    text = _URI_PASSWORD.sub(lambda m: f"{m.group('head')}:{_REDACTED}@", text)
    return _SECRET_PARAMETER.sub(lambda m: f"{m.group('head')}{_REDACTED}", text)


def _safe_repr(obj: object) -> str:
    """A dataclass ``repr`` that leaves out ``repr=False`` fields and redacts URIs in the others."""
    parts = []
    for f in fields(obj):  # type: ignore[arg-type]
        if not f.repr:
            continue
        value = getattr(obj, f.name)
        parts.append(f"{f.name}={redact(value)!r}" if isinstance(value, str) else f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def project_root() -> Path:
    """The folder holding ``pyproject.toml`` (the package is installed in editable mode).

    Falls back to the current directory when the package was installed elsewhere.
    """
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd()


@dataclass(frozen=True)
class S3Settings:
    """How to reach an S3-compatible object store (MinIO, SeaweedFS, AWS)."""

    endpoint: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    allow_http: bool = False
    path_style: bool = True

    def __repr__(self) -> str:
        return _safe_repr(self)

    @property
    def endpoint_host(self) -> str | None:
        """``host:port`` of the endpoint without its scheme (DuckDB's secrets want this)."""
        if not self.endpoint:
            return None
        return self.endpoint.split("://", 1)[-1].rstrip("/")


@dataclass(frozen=True)
class AlertSettings:
    """Where failure alerts go: always a JSON-lines log file, plus a webhook and e-mail when set."""

    log_path: Path | None = None
    webhook_url: str | None = field(default=None, repr=False)  # Slack-style URLs carry a token
    smtp_host: str | None = None
    smtp_port: int = 587
    #: upgrade a plain connection with STARTTLS when the server offers it (required with a login)
    smtp_starttls: bool = True
    #: SMTPS: TLS from the first byte (port 465)
    smtp_ssl: bool = False
    #: PEM file of the CA(s) that signed the SMTP server's certificate (default: the system's)
    smtp_ca_file: Path | None = None
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    email_from: str = "lakehouse@localhost"
    email_to: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return _safe_repr(self)


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one lake, built from the environment by :func:`get_settings`."""

    home: Path
    warehouse: str
    landing: str
    table_format: TableFormat = "delta"
    catalog_uri: str = ""
    catalog_name: str = "lakehouse"
    s3: S3Settings = field(default_factory=S3Settings)
    start_date: dt.date = dt.date(2024, 1, 1)
    query_engine: QueryEngine = "duckdb"
    trino_url: str | None = None
    #: PEM file of the CA that signed the Trino server's certificate (an https LAKEHOUSE_TRINO_URL)
    trino_ca_file: str | None = None
    #: the password of LAKEHOUSE_TRINO_URL's user (LAKEHOUSE_TRINO_PASSWORD)
    trino_password: str | None = field(default=None, repr=False)
    spark_master: str | None = None
    owner: str = "team:data-platform"
    alerts: AlertSettings = field(default_factory=AlertSettings)
    ui_url: str = "http://127.0.0.1:3000"
    #: seconds between evaluations of the automation sensor and the landing sensor
    sensor_interval_seconds: int = 30
    #: online feature store: an SQLite file under the state folder (default) or Redis
    online_store: OnlineStore = "sqlite"
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    #: PII findings below this confidence are not reported
    pii_min_confidence: float = 0.8
    #: key of the keyed hash that masks identifiers for analysts (None: a key file under the state folder)
    masking_key: str | None = field(default=None, repr=False)
    #: Ed25519 key (hex seed) signing audit checkpoints (None: a key file under the state folder)
    audit_signing_key: str | None = field(default=None, repr=False)
    #: Ed25519 public key (hex) that `lakehouse audit verify` trusts (None: the state folder's .pub file)
    audit_verify_key: str | None = None
    #: role of `lakehouse query` when --role is not given
    query_role: str = "steward"

    def __repr__(self) -> str:
        """Every field but the secrets; the catalog URI shows its user and host, not its password."""
        return _safe_repr(self)

    @property
    def dagster_home(self) -> Path:
        """Folder used as ``DAGSTER_HOME`` for the embedded instance (SQLite storage)."""
        return self.home / "dagster"

    @property
    def warehouse_is_s3(self) -> bool:
        return self.warehouse.startswith("s3://")

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (validated like the environment would be)."""
        new = replace(self, **changes)  # type: ignore[arg-type]
        _validate(new)
        return new


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not valid; accepted values: true/false, 1/0, yes/no, on/off")


def _env_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={raw!r} is not valid; accepted values: {', '.join(choices)}")
    return value


def _secret_values(settings: Settings) -> list[str | None]:
    """The secrets of ``settings``, for :func:`redact` to hide wherever a message might quote one."""
    a = settings.alerts
    return [
        settings.s3.access_key_id,
        settings.s3.secret_access_key,
        a.webhook_url,
        a.smtp_password,
        settings.masking_key,
        settings.trino_password,
    ]


def _validate(settings: Settings) -> None:
    def shown(value: str) -> str:
        return redact(value, _secret_values(settings))

    if settings.table_format not in TABLE_FORMATS:
        raise SettingsError(
            f"LAKEHOUSE_TABLE_FORMAT={settings.table_format!r} is not valid; "
            f"accepted values: {', '.join(TABLE_FORMATS)}"
        )
    for name, uri in (("LAKEHOUSE_WAREHOUSE", settings.warehouse), ("LAKEHOUSE_LANDING", settings.landing)):
        if "://" in uri and not uri.startswith(("s3://", "file://")):
            raise SettingsError(
                f"{name}={shown(uri)!r} is not valid; accepted values: a local path, file://PATH or s3://BUCKET/PREFIX"
            )
        if uri.startswith("s3://") and len(uri) <= len("s3://"):
            raise SettingsError(f"{name}={uri!r} is not valid: the bucket name is missing")
    if not settings.catalog_uri.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg2://")):
        raise SettingsError(
            f"LAKEHOUSE_CATALOG_URI={shown(settings.catalog_uri)!r} is not valid; accepted values: "
            "sqlite:///PATH or postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB"
        )
    endpoint = settings.s3.endpoint
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise SettingsError(
            f"LAKEHOUSE_S3_ENDPOINT={shown(endpoint)!r} is not valid; accepted values: http://HOST:PORT or https://HOST:PORT"
        )
    # credentials have variables of their own: in a URL they would be shown wherever the URL is
    # (storage errors quote the endpoint, the Trino URL is split into plain resource fields)
    for name, url, instead in (
        ("LAKEHOUSE_S3_ENDPOINT", endpoint, "LAKEHOUSE_S3_ACCESS_KEY_ID/LAKEHOUSE_S3_SECRET_ACCESS_KEY"),
        ("LAKEHOUSE_TRINO_URL", settings.trino_url, "LAKEHOUSE_TRINO_PASSWORD"),
    ):
        if url and redact(url) != url:
            raise SettingsError(f"{name}={shown(url)!r} is not valid: it holds a password; set {instead} instead")
    if endpoint and endpoint.startswith("http://") and not settings.s3.allow_http:
        raise SettingsError(
            f"LAKEHOUSE_S3_ENDPOINT={shown(endpoint)!r} uses plain http but LAKEHOUSE_S3_ALLOW_HTTP is not true; "
            "set LAKEHOUSE_S3_ALLOW_HTTP=true for a local MinIO/SeaweedFS, or use https"
        )
    if settings.online_store not in ONLINE_STORES:
        raise SettingsError(
            f"LAKEHOUSE_ONLINE_STORE={settings.online_store!r} is not valid; accepted values: {', '.join(ONLINE_STORES)}"
        )
    if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("LAKEHOUSE_REDIS_URL is not valid; accepted values: redis://HOST:PORT/DB or rediss://...")
    if not 0.0 < settings.pii_min_confidence <= 1.0:
        raise SettingsError(
            f"LAKEHOUSE_PII_MIN_CONFIDENCE={settings.pii_min_confidence!r} is not valid; accepted values: a number in (0, 1]"
        )
    if settings.query_role not in QUERY_ROLES:
        raise SettingsError(
            f"LAKEHOUSE_QUERY_ROLE={settings.query_role!r} is not valid; accepted values: {', '.join(QUERY_ROLES)}"
        )
    if settings.sensor_interval_seconds < 1:
        raise SettingsError("LAKEHOUSE_SENSOR_INTERVAL must be a whole number of seconds >= 1")
    if settings.query_engine == "trino" and not settings.trino_url:
        raise SettingsError("LAKEHOUSE_QUERY_ENGINE='trino' needs LAKEHOUSE_TRINO_URL (e.g. http://127.0.0.1:8080)")


def _local(uri: str, name: str) -> str:
    """Resolve a local path (relative to the project root) to an absolute one; keep s3:// as is."""
    if "://" in uri and not uri.startswith(("s3://", "file://")):
        raise SettingsError(
            f"{name}={redact(uri)!r} is not valid; accepted values: a local path, file://PATH or s3://BUCKET/PREFIX"
        )
    if uri.startswith("s3://"):
        if not uri[len("s3://") :].strip("/"):
            raise SettingsError(f"{name}={uri!r} is not valid: the bucket name is missing")
        return uri.rstrip("/")
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    path = Path(uri).expanduser()
    if not path.is_absolute():
        path = project_root() / path
    return str(path.resolve())


def _alert_settings(env: Mapping[str, str], home: Path) -> AlertSettings:
    port_raw = env.get("LAKEHOUSE_ALERT_SMTP_PORT") or "587"
    if not port_raw.isdigit() or not 0 < int(port_raw) < 65536:
        raise SettingsError(f"LAKEHOUSE_ALERT_SMTP_PORT={port_raw!r} is not valid; accepted values: a port 1-65535")
    webhook = (env.get("LAKEHOUSE_ALERT_WEBHOOK_URL") or "").strip() or None
    # never echoed: the path of a Slack-style URL is its token. A space or control character would
    # make urllib raise an error quoting the whole path, so it is refused here instead.
    if webhook and (not webhook.startswith(("http://", "https://")) or re.search(r"[\s\x00-\x1f\x7f]", webhook)):
        raise SettingsError(
            "LAKEHOUSE_ALERT_WEBHOOK_URL is not valid; accepted values: an http(s) URL without spaces or control characters"
        )
    recipients = tuple(a.strip() for a in (env.get("LAKEHOUSE_ALERT_EMAIL_TO") or "").split(",") if a.strip())
    smtp_host = env.get("LAKEHOUSE_ALERT_SMTP_HOST") or None
    if smtp_host and not recipients:
        raise SettingsError("LAKEHOUSE_ALERT_SMTP_HOST is set but LAKEHOUSE_ALERT_EMAIL_TO names no recipient")
    smtp_ssl = _env_bool(env, "LAKEHOUSE_ALERT_SMTP_SSL", int(port_raw) == 465)
    smtp_starttls = _env_bool(env, "LAKEHOUSE_ALERT_SMTP_STARTTLS", True)
    smtp_user = env.get("LAKEHOUSE_ALERT_SMTP_USER") or None
    smtp_password = env.get("LAKEHOUSE_ALERT_SMTP_PASSWORD") or None
    if (smtp_user or smtp_password) and not (smtp_ssl or smtp_starttls):
        # a login over plain SMTP hands the password to anyone on the path: refuse it up front
        raise SettingsError(
            "LAKEHOUSE_ALERT_SMTP_USER/LAKEHOUSE_ALERT_SMTP_PASSWORD are set but LAKEHOUSE_ALERT_SMTP_STARTTLS is false "
            "and LAKEHOUSE_ALERT_SMTP_SSL is not true: a login needs TLS; set LAKEHOUSE_ALERT_SMTP_SSL=true (SMTPS) "
            "or LAKEHOUSE_ALERT_SMTP_STARTTLS=true, or use a relay without a login"
        )
    ca_raw = env.get("LAKEHOUSE_ALERT_SMTP_CA_FILE") or None
    smtp_ca_file = Path(_local(ca_raw, "LAKEHOUSE_ALERT_SMTP_CA_FILE")) if ca_raw else None
    if smtp_ca_file is not None and not smtp_ca_file.is_file():
        raise SettingsError(
            f"LAKEHOUSE_ALERT_SMTP_CA_FILE={str(smtp_ca_file)!r} is not valid; accepted values: a PEM file of CA certificates"
        )
    return AlertSettings(
        log_path=Path(_local(env.get("LAKEHOUSE_ALERT_LOG") or str(home / "alerts.log"), "LAKEHOUSE_ALERT_LOG")),
        webhook_url=webhook,
        smtp_host=smtp_host,
        smtp_port=int(port_raw),
        smtp_starttls=smtp_starttls,
        smtp_ssl=smtp_ssl,
        smtp_ca_file=smtp_ca_file,
        smtp_user=smtp_user,
        smtp_password=smtp_password,
        email_from=env.get("LAKEHOUSE_ALERT_EMAIL_FROM") or "lakehouse@localhost",
        email_to=recipients,
    )


def _env_number(env: Mapping[str, str], name: str, default: float, kind: type = float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(kind(raw.strip()))
    except ValueError:
        accepted = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{name}={raw!r} is not valid; accepted values: {accepted}") from None


def get_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: ``os.environ``), validating every value.

    Raises:
        SettingsError: naming the variable and the values it accepts.
    """
    env = os.environ if env is None else env
    home_raw = env.get("LAKEHOUSE_HOME") or str(project_root() / ".lakehouse")
    home = Path(_local(home_raw, "LAKEHOUSE_HOME"))
    warehouse = _local(env.get("LAKEHOUSE_WAREHOUSE") or str(home / "warehouse"), "LAKEHOUSE_WAREHOUSE")
    landing = _local(env.get("LAKEHOUSE_LANDING") or str(home / "landing"), "LAKEHOUSE_LANDING")
    table_format = _env_choice(env, "LAKEHOUSE_TABLE_FORMAT", TABLE_FORMATS, "delta")
    catalog_uri = env.get("LAKEHOUSE_CATALOG_URI") or f"sqlite:///{home / 'iceberg_catalog.db'}"
    start_raw = env.get("LAKEHOUSE_START_DATE", "2024-01-01")
    try:
        start_date = dt.date.fromisoformat(start_raw)
    except ValueError:
        raise SettingsError(
            f"LAKEHOUSE_START_DATE={start_raw!r} is not valid; accepted values: a date YYYY-MM-DD"
        ) from None
    s3 = S3Settings(
        endpoint=env.get("LAKEHOUSE_S3_ENDPOINT") or None,
        region=env.get("LAKEHOUSE_S3_REGION") or env.get("AWS_REGION") or "us-east-1",
        access_key_id=env.get("LAKEHOUSE_S3_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY_ID") or None,
        secret_access_key=env.get("LAKEHOUSE_S3_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_ACCESS_KEY") or None,
        allow_http=_env_bool(env, "LAKEHOUSE_S3_ALLOW_HTTP", False),
        path_style=_env_bool(env, "LAKEHOUSE_S3_PATH_STYLE", True),
    )
    settings = Settings(
        home=home,
        warehouse=warehouse,
        landing=landing,
        table_format=cast(TableFormat, table_format),
        catalog_uri=catalog_uri,
        catalog_name=env.get("LAKEHOUSE_CATALOG_NAME") or "lakehouse",
        s3=s3,
        start_date=start_date,
        query_engine=cast(QueryEngine, _env_choice(env, "LAKEHOUSE_QUERY_ENGINE", ("duckdb", "trino"), "duckdb")),
        trino_url=env.get("LAKEHOUSE_TRINO_URL") or None,
        trino_ca_file=env.get("LAKEHOUSE_TRINO_CA_FILE") or None,
        trino_password=env.get("LAKEHOUSE_TRINO_PASSWORD") or None,
        spark_master=env.get("LAKEHOUSE_SPARK_MASTER") or None,
        owner=env.get("LAKEHOUSE_DEFAULT_OWNER") or "team:data-platform",
        alerts=_alert_settings(env, home),
        ui_url=(env.get("LAKEHOUSE_UI_URL") or "http://127.0.0.1:3000").rstrip("/"),
        sensor_interval_seconds=int(_env_number(env, "LAKEHOUSE_SENSOR_INTERVAL", 30, int)),
        online_store=cast(OnlineStore, (env.get("LAKEHOUSE_ONLINE_STORE") or "sqlite").strip().lower()),
        redis_url=env.get("LAKEHOUSE_REDIS_URL") or "redis://127.0.0.1:6379/0",
        pii_min_confidence=_env_number(env, "LAKEHOUSE_PII_MIN_CONFIDENCE", 0.8),
        masking_key=env.get("LAKEHOUSE_MASKING_KEY") or None,
        audit_signing_key=env.get("LAKEHOUSE_AUDIT_SIGNING_KEY") or None,
        audit_verify_key=env.get("LAKEHOUSE_AUDIT_VERIFY_KEY") or None,
        query_role=(env.get("LAKEHOUSE_QUERY_ROLE") or "steward").strip().lower(),
    )
    _validate(settings)
    return settings


@contextlib.contextmanager
def scoped_environ(values: Mapping[str, str], *, keep: tuple[str, ...] = ()) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then put back what was there before
    (unset stays unset); the variables named in ``keep`` are also restored if the block changes them."""
    saved = {k: os.environ.get(k) for k in (*values, *keep)}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
