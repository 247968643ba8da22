"""The one place that reads the environment.

Every ``LAKEHOUSE_*`` variable is read here and nowhere else. The defaults make a fresh clone
work with no services at all: a state folder ``.lakehouse/`` in the project root holding the
warehouse (a local folder), the landing zone, the Iceberg SQL catalog (SQLite) and Dagster's
storage.

Secrets (S3 keys) are read here too, but are kept out of ``repr`` and never logged; Dagster
resources receive them through ``dg.EnvVar`` (see ``resources/``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
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
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    email_from: str = "lakehouse@localhost"
    email_to: tuple[str, ...] = ()


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
    #: role of `lakehouse query` when --role is not given
    query_role: str = "steward"

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


def _validate(settings: Settings) -> None:
    if settings.table_format not in TABLE_FORMATS:
        raise SettingsError(
            f"LAKEHOUSE_TABLE_FORMAT={settings.table_format!r} is not valid; "
            f"accepted values: {', '.join(TABLE_FORMATS)}"
        )
    for name, uri in (("LAKEHOUSE_WAREHOUSE", settings.warehouse), ("LAKEHOUSE_LANDING", settings.landing)):
        if "://" in uri and not uri.startswith(("s3://", "file://")):
            raise SettingsError(
                f"{name}={uri!r} is not valid; accepted values: a local path, file://PATH or s3://BUCKET/PREFIX"
            )
        if uri.startswith("s3://") and len(uri) <= len("s3://"):
            raise SettingsError(f"{name}={uri!r} is not valid: the bucket name is missing")
    if not settings.catalog_uri.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg2://")):
        raise SettingsError(
            f"LAKEHOUSE_CATALOG_URI={settings.catalog_uri!r} is not valid; accepted values: "
            "sqlite:///PATH or postgresql+psycopg2://USER@HOST:PORT/DB"
        )
    endpoint = settings.s3.endpoint
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise SettingsError(
            f"LAKEHOUSE_S3_ENDPOINT={endpoint!r} is not valid; accepted values: http://HOST:PORT or https://HOST:PORT"
        )
    if endpoint and endpoint.startswith("http://") and not settings.s3.allow_http:
        raise SettingsError(
            f"LAKEHOUSE_S3_ENDPOINT={endpoint!r} uses plain http but LAKEHOUSE_S3_ALLOW_HTTP is not true; "
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
            f"{name}={uri!r} is not valid; accepted values: a local path, file://PATH or s3://BUCKET/PREFIX"
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
    webhook = env.get("LAKEHOUSE_ALERT_WEBHOOK_URL") or None
    if webhook and not webhook.startswith(("http://", "https://")):
        raise SettingsError("LAKEHOUSE_ALERT_WEBHOOK_URL is not valid; accepted values: an http(s) URL")
    recipients = tuple(a.strip() for a in (env.get("LAKEHOUSE_ALERT_EMAIL_TO") or "").split(",") if a.strip())
    smtp_host = env.get("LAKEHOUSE_ALERT_SMTP_HOST") or None
    if smtp_host and not recipients:
        raise SettingsError("LAKEHOUSE_ALERT_SMTP_HOST is set but LAKEHOUSE_ALERT_EMAIL_TO names no recipient")
    return AlertSettings(
        log_path=Path(_local(env.get("LAKEHOUSE_ALERT_LOG") or str(home / "alerts.log"), "LAKEHOUSE_ALERT_LOG")),
        webhook_url=webhook,
        smtp_host=smtp_host,
        smtp_port=int(port_raw),
        smtp_starttls=_env_bool(env, "LAKEHOUSE_ALERT_SMTP_STARTTLS", True),
        smtp_user=env.get("LAKEHOUSE_ALERT_SMTP_USER") or None,
        smtp_password=env.get("LAKEHOUSE_ALERT_SMTP_PASSWORD") or None,
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
        spark_master=env.get("LAKEHOUSE_SPARK_MASTER") or None,
        owner=env.get("LAKEHOUSE_DEFAULT_OWNER") or "team:data-platform",
        alerts=_alert_settings(env, home),
        ui_url=(env.get("LAKEHOUSE_UI_URL") or "http://127.0.0.1:3000").rstrip("/"),
        sensor_interval_seconds=int(_env_number(env, "LAKEHOUSE_SENSOR_INTERVAL", 30, int)),
        online_store=cast(OnlineStore, (env.get("LAKEHOUSE_ONLINE_STORE") or "sqlite").strip().lower()),
        redis_url=env.get("LAKEHOUSE_REDIS_URL") or "redis://127.0.0.1:6379/0",
        pii_min_confidence=_env_number(env, "LAKEHOUSE_PII_MIN_CONFIDENCE", 0.8),
        masking_key=env.get("LAKEHOUSE_MASKING_KEY") or None,
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
