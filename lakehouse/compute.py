"""Where heavy transformations run: polars in this process (the default), or Spark (local or a
cluster) when ``LAKEHOUSE_SPARK_MASTER`` is set. Spark is an optional extra (``pip install
.[spark]``, Java 17): nothing imports pyspark unless a Spark master is configured.

With its connectors (``deploy/local/spark.sh install`` resolves them once from Maven Central
into ``~/.cache/lakehouse/spark-jars/spark-<pyspark version>``; :func:`connector_jars` finds
them) Spark reads and writes the lake's tables natively: Delta by location (the one
:func:`~lakehouse.naming.table_location`), Iceberg through a JDBC catalog named like the lake's
on the same database as pyiceberg's SQL catalog, on a local folder or on S3 (S3A). Deletion
vectors and delete files are then honoured by the connectors themselves. Without them (no
connectors are published for this pyspark, or they are not installed) Spark can only read a
table's current data files, listed by the TableStore (:meth:`ComputeResource.read_parquet`).
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from lakehouse.exceptions import SettingsError
from lakehouse.naming import TableRef, table_location
from lakehouse.settings import Settings, TableFormat
from lakehouse.sql import quote_qualified

__all__ = [
    "ComputeResource",
    "connector_jars",
    "default_jars_folder",
    "iceberg_catalog_config",
    "lake_session",
    "native_formats",
    "read_table",
    "s3a_config",
    "spark_config",
    "spark_path",
]

_DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
_ICEBERG_EXTENSION = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"


def default_jars_folder() -> Path | None:
    """Where ``deploy/local/spark.sh install`` puts the connectors of the installed pyspark."""
    try:
        import pyspark
    except ImportError:
        return None
    return Path.home() / ".cache" / "lakehouse" / "spark-jars" / f"spark-{pyspark.__version__}"


def connector_jars(folder: str | Path | None = None) -> list[str]:
    """The connector jars of a complete install in ``folder`` (default :func:`default_jars_folder`),
    or an empty list: an install is complete once the script wrote its ``.lakehouse-install`` stamp."""
    where = Path(folder) if folder else default_jars_folder()
    if where is None or not (where / ".lakehouse-install").is_file():
        return []
    return sorted(str(p) for p in where.glob("*.jar"))


def _formats_of(jars: Sequence[str]) -> set[TableFormat]:
    names = [Path(j).name for j in jars]
    found: set[TableFormat] = set()
    if any(n.startswith("delta-spark_") for n in names):
        found.add("delta")
    if any(n.startswith("iceberg-spark-runtime-") for n in names):
        found.add("iceberg")
    return found


def spark_config(master: str, jars: Sequence[str] = (), *, jvm_running: bool = False) -> dict[str, str]:
    """A Spark session in UTC without the UI; a local one stays on loopback, a cluster's executors
    reach the driver at this host's name (set ``SPARK_LOCAL_IP``/``spark.driver.host`` to change).

    With connector ``jars`` (local files: nothing is resolved at run time): their SQL extensions,
    Delta's catalog as the session catalog, and ``s3://`` served by S3A (the lake's URIs are
    ``s3://``). A cluster gets the jars with ``spark.jars``; a local Spark, whose executors run in
    the driver's JVM, on the driver's class path when that JVM is yet to start (``spark.jars``
    would copy the ~700 MB into every session's temporary folder). Settings of a particular lake
    (catalog, S3 endpoint and keys) are applied per session by :func:`lake_session`, never here.
    """
    loopback = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
    config = {
        "spark.master": master,
        "spark.app.name": "lakehouse",
        **(loopback if master.startswith("local") else {}),
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    formats = _formats_of(jars)
    if not formats:
        return config
    extensions = [e for f, e in (("delta", _DELTA_EXTENSION), ("iceberg", _ICEBERG_EXTENSION)) if f in formats]
    if master.startswith("local") and not jvm_running:
        config["spark.driver.extraClassPath"] = os.pathsep.join(jars)
    else:
        config["spark.jars"] = ",".join(jars)
    config.update(
        {
            "spark.sql.extensions": ",".join(extensions),
            "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "spark.hadoop.fs.AbstractFileSystem.s3.impl": "org.apache.hadoop.fs.s3a.S3A",
        }
    )
    if "delta" in formats:
        config["spark.sql.catalog.spark_catalog"] = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        # the state of a small table in a few tasks, not Delta's default 50
        config["spark.databricks.delta.snapshotPartitions"] = "2"
    return config


def native_formats(session: Any) -> set[TableFormat]:
    """The table formats ``session`` reads natively (its SQL extensions are loaded)."""
    extensions = session.sparkContext.getConf().get("spark.sql.extensions", "") or ""
    found: set[TableFormat] = set()
    if _DELTA_EXTENSION in extensions:
        found.add("delta")
    if _ICEBERG_EXTENSION in extensions:
        found.add("iceberg")
    return found


def spark_path(uri: str) -> str:
    """A table location as Hadoop reads it: ``s3://`` stays (served by S3A), a local path becomes absolute."""
    if "://" in uri:
        return uri
    return str(Path(uri).resolve())


def s3a_config(settings: Settings) -> dict[str, str]:
    """Hadoop settings of S3A for the lake's S3 service (keys included: apply, never log them)."""
    if not (settings.warehouse_is_s3 or settings.s3.endpoint):
        return {}
    s3 = settings.s3
    config = {
        "fs.s3a.endpoint.region": s3.region,
        "fs.s3a.path.style.access": "true" if s3.path_style else "false",
    }
    if s3.endpoint:
        config["fs.s3a.endpoint"] = s3.endpoint
        config["fs.s3a.connection.ssl.enabled"] = "false" if s3.endpoint.startswith("http://") else "true"
    if s3.access_key_id and s3.secret_access_key:
        config["fs.s3a.aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        config["fs.s3a.access.key"] = s3.access_key_id
        config["fs.s3a.secret.key"] = s3.secret_access_key
    return config


def _jdbc(catalog_uri: str) -> tuple[str, dict[str, str]]:
    """The JDBC URL and connection properties of the SQLAlchemy URI pyiceberg's catalog uses."""
    if catalog_uri.startswith("sqlite:///"):
        return "jdbc:sqlite:" + str(Path(catalog_uri[len("sqlite:///") :]).resolve()), {}
    url = urllib.parse.urlsplit(catalog_uri)
    if url.scheme not in ("postgresql", "postgresql+psycopg2"):
        raise SettingsError(f"no JDBC driver for the catalog URI scheme {url.scheme!r} (postgresql or sqlite)")
    jdbc = f"jdbc:postgresql://{url.hostname or '127.0.0.1'}:{url.port or 5432}{url.path}"
    props = {}
    if url.username:
        props["jdbc.user"] = urllib.parse.unquote(url.username)
    if url.password:
        props["jdbc.password"] = urllib.parse.unquote(url.password)
    return jdbc, props


def iceberg_catalog_config(settings: Settings) -> dict[str, str]:
    """Spark settings of an Iceberg catalog named like the lake's: Iceberg's JdbcCatalog on the
    database pyiceberg's SqlCatalog uses (its ``iceberg_tables`` layout is the JdbcCatalog's
    schema V0), files through Hadoop (S3A on S3). The password is included: apply, never log."""
    jdbc, props = _jdbc(settings.catalog_uri)
    prefix = f"spark.sql.catalog.{settings.catalog_name}"
    config = {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
        f"{prefix}.uri": jdbc,
        f"{prefix}.jdbc.schema-version": "V0",
        f"{prefix}.warehouse": spark_path(settings.warehouse),
        f"{prefix}.io-impl": "org.apache.iceberg.hadoop.HadoopFileIO",
        # commits by pyiceberg (the TableStore) are seen at the next read
        f"{prefix}.cache-enabled": "false",
    }
    config.update({f"{prefix}.{k}": v for k, v in props.items()})
    return config


_LOCK = threading.Lock()
_SESSIONS: dict[tuple[int, tuple[tuple[str, str], ...]], Any] = {}
_APPLIED_S3: dict[int, dict[str, str]] = {}


def lake_session(session: Any, settings: Settings) -> Any:
    """A session of ``session``'s Spark (same JVM, its own SQL settings and catalogs) set up for the
    lake of ``settings``: its Iceberg catalog, S3A for its S3 service, and double-quoted
    identifiers (so :func:`~lakehouse.sql.quote_qualified` quotes names here as everywhere)."""
    formats = native_formats(session)
    conf: dict[str, str] = {"spark.sql.ansi.enabled": "true", "spark.sql.ansi.doubleQuotedIdentifiers": "true"}
    if "iceberg" in formats:
        conf.update(iceberg_catalog_config(settings))
    s3 = s3a_config(settings)
    context = session.sparkContext
    key = (id(context), tuple(sorted({**conf, **s3}.items())))
    with _LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        jvm = context._jvm
        if s3 and _APPLIED_S3.get(id(context)) != s3:
            hadoop = context._jsc.hadoopConfiguration()
            for name, value in s3.items():
                hadoop.set(name, value)
            if id(context) in _APPLIED_S3:  # cached S3A clients hold the previous endpoint/keys
                jvm.org.apache.hadoop.fs.FileSystem.closeAll()
            _APPLIED_S3[id(context)] = s3
        lake = session.newSession()
        for name, value in conf.items():
            lake.conf.set(name, value)
        _SESSIONS[key] = lake
        return lake


def read_table(session: Any, settings: Settings, ref: TableRef, fmt: TableFormat) -> Any:
    """A table as a Spark DataFrame, read by its connector (deletion vectors and delete files
    applied): Delta by location, Iceberg through the lake's catalog. ``session`` is a
    :func:`lake_session`."""
    if fmt not in native_formats(session):
        raise SettingsError(
            f"this Spark session has no {fmt} connector (deploy/local/spark.sh install, for a pyspark it supports)"
        )
    if fmt == "delta":
        return session.read.format("delta").load(spark_path(table_location(ref, settings)))
    return session.sql(f"SELECT * FROM {quote_qualified(settings.catalog_name, ref.namespace, ref.name)}")


class ComputeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The compute engine for jobs that can run on Spark."""

    spark_master: str | None = None
    #: folder of connector jars (default: where deploy/local/spark.sh installs them for this pyspark)
    spark_jars: str | None = None

    @property
    def uses_spark(self) -> bool:
        return bool(self.spark_master)

    def connector_jars(self) -> list[str]:
        return connector_jars(self.spark_jars)

    def spark(self) -> Any:
        """The process's Spark session (created once, by dagster-pyspark's builder), with the
        connectors when they are installed."""
        if not self.spark_master:
            raise SettingsError("no Spark master configured: set LAKEHOUSE_SPARK_MASTER (e.g. local[2])")
        from dagster_pyspark.resources import spark_session_from_config
        from pyspark import SparkContext

        jvm_running = getattr(SparkContext, "_jvm", None) is not None  # its class path is set
        config = spark_config(self.spark_master, self.connector_jars(), jvm_running=jvm_running)
        return spark_session_from_config(config)  # type: ignore[no-untyped-call]

    def lake_spark(self, settings: Settings) -> Any:
        """:meth:`spark` set up for the lake of ``settings`` (see :func:`lake_session`)."""
        return lake_session(self.spark(), settings)

    def reads_natively(self, fmt: TableFormat) -> bool:
        """Whether the Spark session reads ``fmt`` tables with their connector."""
        return fmt in native_formats(self.spark())

    def read_table(self, settings: Settings, ref: TableRef, fmt: TableFormat) -> Any:
        """A table as a Spark DataFrame through its connector (see :func:`read_table`)."""
        return read_table(self.lake_spark(settings), settings, ref, fmt)

    def read_parquet(self, files: Sequence[str], root: str | None) -> Any:
        """A Spark DataFrame over data files; ``root`` recovers partition columns kept in paths.

        Only for a Spark without the table connectors: it sees neither Delta deletion vectors nor
        Iceberg delete files (the TableStore's writers produce neither; other writers may)."""
        reader = self.spark().read
        if root is not None:
            reader = reader.option("basePath", root)
        return reader.parquet(*files)
