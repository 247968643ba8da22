"""Trino fixtures shared by every live-Trino test module (registered as a plugin by
tests/conftest.py): one Trino 476 server per session (tests/trinoserver.py) over this session's S3
server, Iceberg on a JDBC catalog in a fresh PostgreSQL database, Delta in a file metastore, and a
2-day demo per table format built while the JVM starts. Test modules using these fixtures mark
themselves ``xdist_group("trino")`` so one worker pays for the server.

The server authenticates (HTTPS, password file) and enforces the governance roles: once the demos
are built, the access-control rules are rendered for both lakes' tables (``TrinoSession.rules_file``,
re-read by Trino within a second) and the session's masking key is loaded into the server. ``TrinoSession.env`` logs
in as the service user ``lakehouse``; ``TrinoSession.user_env("analyst")`` as another user."""

from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import FORMATS, LAKEHOUSE_BIN, port_open, require

from lakehouse.query.trino import trino_query, write_catalogs
from lakehouse.settings import get_settings
from lakehouse.sql import quote_ident

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
DEMO_DAYS = 2


@dataclass
class TrinoSession:
    """The server, and the lake settings (S3 prefix, Iceberg catalog database) its catalogs serve."""

    server: Any
    s3: Any
    prefix: str
    env: dict[str, str]
    database: str
    #: the access-control rules the server reads (rewritten by :meth:`write_rules`)
    rules_file: Path | None = None

    @property
    def masking_key(self) -> str:
        """The session's ``LAKEHOUSE_MASKING_KEY`` (the lakes' and Trino's rules')."""
        return self.env["LAKEHOUSE_MASKING_KEY"]

    def user_env(self, user: str) -> dict[str, str]:
        """:attr:`env` logging in as ``user`` (``analyst``, ``steward``) instead of ``lakehouse``."""
        return {**self.env, **self.server.client_env(user)}

    def lake_env(self, fmt: str) -> dict[str, str]:
        """Settings of a lake of its own on the S3 server. Only the Iceberg lake uses the catalog
        database Trino reads: the lake guards each name in its catalog against the other format,
        so a Delta lake sharing it would collide with the Iceberg lake's tables."""
        env = {**self.env, **self.s3.env(f"{self.prefix}-{fmt}")}
        if fmt != "iceberg":
            del env["LAKEHOUSE_CATALOG_URI"]
        return env

    def write_rules(self, lakes: list[Any], *, timeout: float = 60) -> None:
        """Render the rules for the tables of ``lakes`` (settings) as `lakehouse trino rules`
        does (no key in them), load the masking key into the server, and wait until Trino has
        read the rules (it re-reads the file every second)."""
        from lakehouse.governance.masking import TRINO_KEY_TABLE, trino_rule_tables, trino_rules
        from lakehouse.governance.policy import load_policy
        from lakehouse.query.trino import load_masking_key

        assert self.rules_file is not None
        tables = [t for settings in lakes for t in trino_rule_tables(settings)]
        rules = trino_rules(load_policy(), tables, key_table=TRINO_KEY_TABLE)
        tmp = self.rules_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(rules, indent=2))
        tmp.replace(self.rules_file)
        load_masking_key(get_settings({**os.environ, **self.env}))
        ref, _, _, catalog = tables[0]
        probe = f"SELECT count(*) FROM {catalog}.{quote_ident(ref.namespace)}.{quote_ident(ref.name)}"
        deadline = time.monotonic() + timeout
        while True:  # the analyst reads a listed table once Trino has the new rules
            conn = self.server.connect("analyst")
            try:
                conn.cursor().execute(probe).fetchall()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
            finally:
                conn.close()


@pytest.fixture(scope="session")
def trino_session(s3_server, tmp_path_factory):
    """Trino over this session's S3 server and a fresh PostgreSQL database, launched (not waited
    for: the demos build meanwhile)."""
    import psycopg2
    import trinoserver

    require(trinoserver.java_home() is not None, "no JDK >= 24 for Trino 476 (Temurin 25 expected in /usr/lib/jvm)")
    require(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    try:
        trinoserver.install()
    except Exception as exc:  # no network to Maven Central, no disk: a missing service, not a bug
        require(False, f"Trino 476 could not be installed: {exc}")
    database = f"lakehouse_trino_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {quote_ident(database)}")
    prefix = f"trino-{uuid.uuid4().hex[:8]}"
    env = {
        **s3_server.env(prefix),
        "LAKEHOUSE_CATALOG_URI": f"{PG}/{database}",
        "LAKEHOUSE_MASKING_KEY": secrets.token_hex(32),
    }
    catalog_dir = tmp_path_factory.mktemp("trino-catalog")
    catalogs = write_catalogs(get_settings({**env, "LAKEHOUSE_HOME": str(catalog_dir)}), catalog_dir)
    # until the lakes exist: the service users' rules only (every other user is denied everything)
    from lakehouse.governance.masking import trino_rules
    from lakehouse.governance.policy import load_policy

    rules_file = tmp_path_factory.mktemp("trino-rules") / "rules.json"
    rules_file.write_text(json.dumps(trino_rules(load_policy(), [])))
    server = trinoserver.start(catalog_dir, catalogs.env, rules_file=rules_file)
    env.update(server.client_env())  # LAKEHOUSE_TRINO_URL, _PASSWORD, _CA_FILE of `lakehouse`
    yield TrinoSession(server=server, s3=s3_server, prefix=prefix, env=env, database=database, rules_file=rules_file)
    server.stop()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)")
    admin.close()


@dataclass
class TrinoDemo:
    home: Path
    format: str
    env: dict[str, str]
    seconds: float

    @property
    def settings(self) -> Any:
        return get_settings({**os.environ, **self.env})

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **self.env}
        full_env.pop("DAGSTER_HOME", None)
        return subprocess.run([str(LAKEHOUSE_BIN), *args], env=full_env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def trino_demos(trino_session, tmp_path_factory) -> dict[str, TrinoDemo]:
    """`lakehouse demo --days 2` once per format on S3, both at once while Trino starts; Delta's
    tables registered with `lakehouse trino register --execute`."""
    demos: dict[str, TrinoDemo] = {}
    running = []
    for fmt in FORMATS:
        home = tmp_path_factory.mktemp(f"trino-demo-{fmt}")
        env = {**trino_session.lake_env(fmt), "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLE_FORMAT": fmt}
        demo = TrinoDemo(home=home, format=fmt, env=env, seconds=0.0)
        full_env = {**os.environ, **env}
        full_env.pop("DAGSTER_HOME", None)
        with open(home / "demo.json", "w") as out, open(home / "demo.err", "w") as err:  # no pipe to fill
            process = subprocess.Popen(
                [str(LAKEHOUSE_BIN), "demo", "--days", str(DEMO_DAYS), "--json"], env=full_env, stdout=out, stderr=err
            )
        running.append((demo, process, time.monotonic()))
    for demo, process, t0 in running:
        process.wait(timeout=900)
        demo.seconds = time.monotonic() - t0
        assert process.returncode in (0, 1), (demo.home / "demo.err").read_text()[-4000:]
        summary = json.loads((demo.home / "demo.json").read_text())
        assert summary["failed_runs"] == [] and summary["daily_runs"] == DEMO_DAYS, summary["failed_runs"]
        demos[demo.format] = demo
    trino_session.server.wait()
    done = demos["delta"].cli("trino", "register", "--execute")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("registered "), done.stdout
    trino_session.write_rules([demo.settings for demo in demos.values()])
    return demos


@pytest.fixture(params=FORMATS)
def trino_demo(request, trino_demos) -> TrinoDemo:
    return trino_demos[str(request.param)]


def trino_rows(settings: Any, sql: str, fmt: str) -> list[dict[str, Any]]:
    return trino_query(settings, sql, fmt=fmt).to_dicts()  # type: ignore[arg-type]


def same_number(a: Any, b: Any) -> bool:
    """Integers and decimals exactly; floating point (summed in another order) to 1e-9."""
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return Decimal(str(a)) == Decimal(str(b))
